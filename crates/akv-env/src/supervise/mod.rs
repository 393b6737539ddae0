//! Restart on change (`AKV_INJECTOR_REFRESH`): akv-env stays as the application's parent,
//! checks Key Vault every interval, and restarts the container when an object it read at
//! "latest" has a new version. Used only when the variable is set; otherwise akv-env
//! `execve`s and nothing of it stays in memory.
//!
//! How the parent never holds a value: it forks **before anything is read from Key
//! Vault**. The child does what akv-env does without refresh (resolve every reference,
//! build the application's argv and environment) and writes to the parent, over a pipe
//! that closes on exec, only the ids and versions of the objects it read at "latest"
//! ([`crate::keyvault::current::encode`]); then it `execve`s the application with the same
//! argv and environment as the exec path. The values exist only in the child, and are
//! moved into the application's environment by the exec, which replaces the child's
//! memory. The parent's memory is the state before the fork (settings, no values) plus the
//! ids and versions. (Its checks read a secret's answer to learn the current version: only
//! `id` is decoded and the buffer is zeroed, see `keyvault/current.rs`.)
//!
//! The parent forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH to
//! the application, reaps every child (it is PID 1 of the container; elsewhere it makes
//! itself a child subreaper), and exits with the application's status, or 128 + signal.
//! On a change: one stderr line per changed object, SIGTERM, SIGKILL after
//! `AKV_INJECTOR_GRACE`, exit 75. A failed check restarts nothing.

pub mod changes;
pub mod parent;
pub mod process;
pub mod resident;
pub mod schedule;

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use crate::config::EnvConfig;
use crate::keyvault::current;
use crate::Error;

/// `akv-env -- CMD...` in refresh mode. In the child, returns what [`crate::run`] returns
/// (an error, after which akv-env exits non-zero; on success the child has become the
/// application). In the parent, never returns: it exits with the application's status.
pub fn run(argv: Vec<OsString>, cfg: &EnvConfig, interval: Duration) -> Error {
    let failed = |what: &str, e: nix::Error| Error::Supervise(format!("cannot {what}: {e}"));
    let old_mask = match process::block_signals() {
        Ok(m) => m,
        Err(e) => return failed("block signals", e),
    };
    // Before the fork, so that no orphan of the application can miss it (the flag is not
    // inherited by the child).
    if std::process::id() != 1 {
        if let Err(e) = process::become_subreaper() {
            eprintln!("akv-env: warning: cannot become a child subreaper ({e}): orphans of the application are not reaped by akv-env");
        }
    }
    let (read, write) = match process::report_pipe() {
        Ok(p) => p,
        Err(e) => return failed("create a pipe", e),
    };
    match process::fork() {
        Err(e) => failed("fork", e),
        Ok(process::Side::Child) => {
            drop(read);
            if let Err(e) = process::restore_signals(&old_mask) {
                return failed("restore the signal mask", e);
            }
            child(argv, write)
        }
        Ok(process::Side::Parent(app)) => {
            drop(write);
            std::process::exit(parent(app, read, cfg, interval))
        }
    }
}

/// The child: resolves, reports ids and versions, and becomes the application.
fn child(argv: Vec<OsString>, report: std::os::fd::OwnedFd) -> Error {
    let (app, watched) = match crate::prepare_watched(argv) {
        Ok(ready) => ready,
        Err(e) => return e,
    };
    let mut pipe = std::fs::File::from(report);
    if let Err(e) = pipe.write_all(current::encode(&watched).as_bytes()) {
        return Error::Supervise(format!("cannot report to akv-env's parent process: {e}"));
    }
    drop(pipe);
    app.exec()
}

fn parent(
    app: nix::unistd::Pid,
    report: std::os::fd::OwnedFd,
    cfg: &EnvConfig,
    interval: Duration,
) -> i32 {
    let signals = match process::signal_fd() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!(
                "akv-env: restart on change: cannot read signals ({e}); stopping the application"
            );
            process::send(app, nix::sys::signal::Signal::SIGKILL);
            return 1;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("akv-env: restart on change: cannot start the async runtime ({e}); stopping the application");
            process::send(app, nix::sys::signal::Signal::SIGKILL);
            return 1;
        }
    };
    let env: crate::config::Env = std::env::vars_os().collect();
    let settings = parent::Settings::from_config(cfg, &env, interval);
    drop(env);
    runtime.block_on(parent::supervise(app, report, signals, settings))
}
