//! The parent's loop: it forwards signals, reaps, reads the child's report, runs the
//! checks, and restarts the application on a change. It holds ids and versions only.

use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::EnvConfig;
use crate::identities::Identities;
use crate::keyvault::azure::Clients;
use crate::keyvault::current::{self, Checker, Watched};
use crate::keyvault::http::HttpSetup;

use super::changes::{compare, Round};
use super::process::{self, EXIT_CHANGED};
use super::schedule::{draw, next_wait, WarnLimit};

/// The longest report the parent reads (ids and versions: about 200 bytes an object).
const MAX_REPORT: usize = 1024 * 1024;
/// At most one warning about failed checks per this long.
const WARN_EVERY: Duration = Duration::from_secs(300);

/// What the parent was told.
pub struct Settings {
    pub interval: Duration,
    pub grace: Duration,
    pub timeout: Duration,
    pub hosts: akv_core::HostPolicy,
    /// `None` when the pod has no identity (then it has no references either).
    pub identities: Option<Identities>,
}

impl Settings {
    pub fn from_config(cfg: &EnvConfig, env: &crate::config::Env, interval: Duration) -> Self {
        Settings {
            interval,
            grace: cfg.grace,
            timeout: cfg.timeout,
            hosts: cfg.hosts.clone(),
            identities: Identities::of_process(cfg, env).ok(),
        }
    }
}

/// Runs until the application has ended; returns akv-env's exit status.
pub async fn supervise(app: Pid, report: OwnedFd, signals: SignalFd, settings: Settings) -> i32 {
    let mut signals = match signal_reader(signals) {
        Ok(rx) => rx,
        Err(e) => return fatal(app, &format!("cannot watch signals: {e}")),
    };
    let mut report = match tokio::net::unix::pipe::Receiver::from_owned_fd(report) {
        Ok(r) => Some(r),
        Err(e) => return fatal(app, &format!("cannot read the start's report: {e}")),
    };
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    let mut rounds: Option<mpsc::Receiver<(Vec<Watched>, Round)>> = None;
    let mut kill_at: Option<Instant> = None;
    let mut restarting = false;
    let mut warn = WarnLimit::new(WARN_EVERY);
    loop {
        tokio::select! {
            signal = signals.recv() => {
                let Some(signal) = signal else {
                    return fatal(app, "the signal reader ended");
                };
                if signal == Signal::SIGCHLD {
                    if let Some(code) = process::reap(app) {
                        return if restarting { EXIT_CHANGED } else { code };
                    }
                } else {
                    process::send(app, signal);
                }
            }
            n = async {
                match report.as_mut() {
                    Some(r) => r.read(&mut buf).await,
                    None => std::future::pending().await,
                }
            }, if report.is_some() => {
                match n {
                    Ok(0) | Err(_) => {
                        report = None;
                        // End of file: the child has exec'd the application (or ended,
                        // which SIGCHLD tells).
                        let watched = match std::str::from_utf8(&text).map_err(|e| e.to_string())
                            .and_then(|t| current::decode(t, &settings.hosts)) {
                            Ok(w) => w,
                            Err(e) => {
                                eprintln!("akv-env: warning: {e}; nothing is checked for changes");
                                Vec::new()
                            }
                        };
                        text = Vec::new();
                        if let (false, Some(identities)) = (watched.is_empty(), settings.identities.clone()) {
                            let (tx, rx) = mpsc::channel(1);
                            tokio::spawn(check_loop(watched, identities, settings.interval, settings.timeout, tx));
                            rounds = Some(rx);
                        }
                        // From here on the parent mostly waits (see resident.rs).
                        super::resident::shed_own_code();
                    }
                    Ok(n) => {
                        if text.len() + n > MAX_REPORT {
                            eprintln!("akv-env: warning: the start's report is longer than {MAX_REPORT} bytes; nothing is checked for changes");
                            report = None;
                            text = Vec::new();
                        } else {
                            text.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
            round = async {
                match rounds.as_mut() {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            }, if rounds.is_some() && !restarting => {
                let Some((watched, round)) = round else { rounds = None; continue };
                if !round.failures.is_empty() {
                    if let Some(held) = warn.allow(std::time::Instant::now()) {
                        let (object, why) = &round.failures[0];
                        let more = if held > 0 { format!(" ({held} earlier warnings held back)") } else { String::new() };
                        eprintln!(
                            "akv-env: warning: {} of {} checks for new versions failed, e.g. {object}: {why}; nothing is restarted, the next check is in about {}{more}",
                            round.failures.len(),
                            watched.len(),
                            akv_core::settings::format_duration(settings.interval),
                        );
                    }
                }
                if !round.changes.is_empty() {
                    for change in &round.changes {
                        eprintln!("akv-env: {change}");
                    }
                    restarting = true;
                    rounds = None;
                    process::send(app, Signal::SIGTERM);
                    kill_at = Some(Instant::now() + settings.grace);
                } else {
                    // Until the next round the parent only waits: give back the code pages
                    // this round mapped; the next one reads them back from the file.
                    super::resident::shed_own_code();
                }
            }
            _ = async { if let Some(at) = kill_at { tokio::time::sleep_until(at).await } }, if kill_at.is_some() => {
                eprintln!(
                    "akv-env: the application did not end within {} of SIGTERM: sending SIGKILL",
                    akv_core::settings::format_duration(settings.grace)
                );
                kill_at = None;
                process::send(app, Signal::SIGKILL);
            }
        }
    }
}

/// Reads the signalfd on a thread of its own (a blocking read; every thread has the
/// signals blocked, so they arrive only here) and hands each signal to the loop.
fn signal_reader(signals: SignalFd) -> std::io::Result<mpsc::UnboundedReceiver<Signal>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            match signals.read_signal() {
                Ok(Some(info)) => {
                    if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                        if tx.send(signal).is_err() {
                            return;
                        }
                    }
                }
                Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        })?;
    Ok(rx)
}

/// Something the parent cannot do without: it stops the application and fails.
fn fatal(app: Pid, why: &str) -> i32 {
    eprintln!("akv-env: restart on change: {why}; stopping the application");
    process::send(app, Signal::SIGKILL);
    1
}

/// Every interval (± jitter; the first one interval after the start), the current version
/// of every watched object; each round is sent to the loop.
async fn check_loop(
    watched: Vec<Watched>,
    identities: Identities,
    interval: Duration,
    timeout: Duration,
    rounds: mpsc::Sender<(Vec<Watched>, Round)>,
) {
    let mut checker: Option<Checker> = None;
    loop {
        tokio::time::sleep(next_wait(interval, draw())).await;
        let round = match &mut checker {
            Some(c) => compare(&watched, &c.check(&watched).await),
            None => match Clients::new(
                &identities,
                std::time::Instant::now() + timeout,
                timeout,
                &HttpSetup::default(),
            ) {
                Ok(clients) => {
                    let mut c = Checker::new(clients, timeout);
                    let round = compare(&watched, &c.check(&watched).await);
                    checker = Some(c);
                    round
                }
                Err(e) => Round {
                    changes: Vec::new(),
                    failures: watched.iter().map(|w| (w.clone(), e.to_string())).collect(),
                },
            },
        };
        if rounds.send((watched.clone(), round)).await.is_err() {
            return;
        }
    }
}
