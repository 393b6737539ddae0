//! Restart on change (`AKV_INJECTOR_REFRESH`) against the Key Vault harness: akv-env stays
//! as the application's parent, and restarts it (exit 75) when a secret it read at
//! "latest" gets a new version. A 1 s interval through the same variable the webhook
//! writes (akv-env accepts 1s–24h there; the annotation 1m–24h).
//!
//! The application is a shell script that records what reaches it in files of the pod's
//! scratch directory.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const INTERVAL: &str = "1s";

/// The application: writes its pid and `$VALUE` to files, appends the name of every
/// signal it gets to `signals`, and exits 0 on SIGTERM.
const APP: &str = r#"
d="$APP_DIR"
for s in HUP INT QUIT USR1 USR2 WINCH; do trap "echo $s >> $d/signals" $s; done
trap 'echo TERM >> $d/signals; exit 0' TERM
printf '%s' "$VALUE" > "$d/value.tmp" && mv "$d/value.tmp" "$d/value"
echo $$ > "$d/ready"
while :; do sleep 0.05; done
"#;

struct Running {
    child: Child,
    dir: PathBuf,
}

impl Running {
    fn start(tb: &Testbed, pod: &Pod, value: &str, extra: &[(&str, &str)]) -> Running {
        let dir = pod.dir.join(random_hex(6));
        std::fs::create_dir_all(&dir).expect("dir");
        let dir_s = dir.to_str().expect("utf-8").to_string();
        let mut vars = vec![
            ("AKV_INJECTOR_REFRESH", INTERVAL),
            ("VALUE", value),
            ("APP_DIR", dir_s.as_str()),
        ];
        vars.extend_from_slice(extra);
        let child = pod
            .command(tb, &vars, &["/bin/sh", "-c", APP])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn akv-env");
        let running = Running { child, dir };
        running.wait_for("ready");
        running
    }

    fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(name)).ok()
    }

    fn wait_for(&self, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(text) = self.file(name) {
                return text;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {name}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn app_pid(&self) -> i32 {
        self.wait_for("ready").trim().parse().expect("pid")
    }

    fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// Waits for akv-env to end (30 s at most); its status and stderr.
    fn end(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let out = self.child.wait_with_output().expect("output");
                return (status, String::from_utf8_lossy(&out.stderr).into_owned());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let out = self.child.wait_with_output().expect("output");
                panic!(
                    "akv-env did not end; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn still_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }
}

fn pod_with_secret(tb: &Testbed, value: &str) -> (Pod, String, String) {
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let name = unique("rotating");
    let version = tb.secret("a", &name, value);
    (pod, name, version)
}

fn latest_requests(tb: &Testbed, name: &str) -> u64 {
    tb.requests("a", &format!("/secrets/{name}")).0
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_rotated_secret_stops_the_application_and_akv_env_exits_75() {
    let tb = testbed();
    let (pod, name, v1) = pod_with_secret(tb, "MARKER-first-value");
    let reference = format!("akv:{name}");
    let app = Running::start(tb, &pod, &reference, &[]);
    assert_eq!(app.file("value").as_deref(), Some("MARKER-first-value"));
    // The first check comes about one interval after the start, and finds nothing new.
    wait_until("a first check", || latest_requests(tb, &name) >= 2);
    let v2 = tb.secret("a", &name, "MARKER-second-value");
    let (status, stderr) = app.end();
    assert_eq!(status.code(), Some(75), "{stderr}");
    let line = format!(
        "akv-env: vault {}, secret {name} has a new version ({v1} → {v2}): restarting the application",
        tb.vault_url("a")
    );
    assert!(stderr.contains(&line), "{stderr}");
    assert!(!stderr.contains("MARKER"), "no value in stderr: {stderr}");
    // The restart is a fresh start: the new container gets the new value.
    let again = Running::start(tb, &pod, &reference, &[]);
    assert_eq!(again.file("value").as_deref(), Some("MARKER-second-value"));
    again.signal("TERM");
    let (status, _) = again.end();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_application_got_sigterm_before_the_restart() {
    let tb = testbed();
    let (pod, name, _) = pod_with_secret(tb, "one");
    let app = Running::start(tb, &pod, &format!("akv:{name}"), &[]);
    let dir = app.dir.clone();
    tb.secret("a", &name, "two");
    let (status, stderr) = app.end();
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert_eq!(read(&dir, "signals").as_deref(), Some("TERM\n"));
}

#[test]
fn an_application_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let tb = testbed();
    let (pod, name, _) = pod_with_secret(tb, "one");
    let dir = pod.dir.join("stubborn");
    std::fs::create_dir_all(&dir).expect("dir");
    let script = format!(
        "trap 'echo TERM >> {d}/signals' TERM; echo $$ > {d}/ready; while :; do sleep 0.05; done",
        d = dir.display()
    );
    let reference = format!("akv:{name}");
    let mut child = pod
        .command(
            tb,
            &[
                ("AKV_INJECTOR_REFRESH", INTERVAL),
                ("AKV_INJECTOR_GRACE", "1s"),
                ("VALUE", &reference),
            ],
            &["/bin/sh", "-c", &script],
        )
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_until("ready", || dir.join("ready").exists());
    tb.secret("a", &name, "two");
    let started = Instant::now();
    wait_until("akv-env ends", || child.try_wait().expect("wait").is_some());
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("sending SIGKILL"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(25));
    assert_eq!(read(&dir, "signals").as_deref(), Some("TERM\n"));
}

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

#[test]
fn a_pinned_version_is_never_checked() {
    let tb = testbed();
    let (pod, name, v1) = pod_with_secret(tb, "pinned-value");
    let app = Running::start(tb, &pod, &format!("akv:{name}/{v1}"), &[]);
    let mut app = app;
    tb.secret("a", &name, "newer");
    std::thread::sleep(Duration::from_secs(4));
    assert!(app.still_running(), "a pinned version restarts nothing");
    assert_eq!(
        latest_requests(tb, &name),
        0,
        "nothing asks for the latest version"
    );
    // One read at the start (after the vault's 401 challenge, which has no token).
    let (total, unauthenticated, _) = tb.requests("a", &format!("/secrets/{name}/{v1}"));
    assert_eq!(total - unauthenticated, 1);
    app.signal("TERM");
    let (status, stderr) = app.end();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn a_failing_check_restarts_nothing_and_checking_goes_on() {
    let tb = testbed();
    let (pod, name, _) = pod_with_secret(tb, "one");
    let mut app = Running::start(tb, &pod, &format!("akv:{name}"), &[]);
    let before = latest_requests(tb, &name);
    tb.fault(
        "a",
        &format!("/secrets/{name}"),
        json!({"status": 503, "times": 3}),
    );
    wait_until("three failed checks", || {
        tb.requests("a", &format!("/secrets/{name}"))
            .2
            .get("503")
            .copied()
            .unwrap_or(0)
            >= 3
    });
    assert!(app.still_running(), "a 503 restarts nothing");
    let after = latest_requests(tb, &name);
    assert!(
        after - before >= 3,
        "one request per check: {before} → {after}"
    );
    // Checking goes on after the failures, and a rotation then restarts.
    tb.secret("a", &name, "two");
    let (status, stderr) = app.end();
    assert_eq!(status.code(), Some(75), "{stderr}");
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("checks for new versions failed"))
        .count();
    assert_eq!(warnings, 1, "rate-limited to one warning: {stderr}");
    assert!(stderr.contains("503"), "{stderr}");
}

#[test]
fn signals_reach_the_application_and_its_status_is_akv_envs() {
    let tb = testbed();
    let (pod, name, _) = pod_with_secret(tb, "one");
    let app = Running::start(tb, &pod, &format!("akv:{name}"), &[]);
    let sent = ["HUP", "INT", "QUIT", "USR1", "USR2", "WINCH"];
    for s in sent {
        app.signal(s);
        wait_until(s, || {
            app.file("signals")
                .is_some_and(|t| t.lines().any(|l| l == s))
        });
    }
    app.signal("TERM");
    let dir = app.dir.clone();
    let (status, stderr) = app.end();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let got: Vec<String> = read(&dir, "signals")
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got, ["HUP", "INT", "QUIT", "USR1", "USR2", "WINCH", "TERM"]);

    // An application killed by a signal: akv-env exits with 128 + signal.
    let app = Running::start(tb, &pod, &format!("akv:{name}"), &[]);
    let pid = app.app_pid();
    let ok = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let (status, _) = app.end();
    assert_eq!(status.code(), Some(137));
    assert_eq!(status.signal(), None, "akv-env itself exits, not killed");
}

/// The orphan check: the app starts a grandchild (1 s) and leaves it behind; its parent
/// must then be akv-env, and within 15 s its /proc entry must be gone (reaped by akv-env),
/// not a zombie. Prints the grandchild's parent and its state afterwards.
const ORPHAN: &str = r#"
( sleep 1 & echo $! > "$APP_DIR/orphan" )
o=$(cat "$APP_DIR/orphan")
ppid=$(cut -d' ' -f4 /proc/$o/stat)
i=0
while [ -e /proc/$o ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done
state=$(cut -d' ' -f3 /proc/$o/stat 2>/dev/null)
echo "akv-env=$PPID orphan-parent=$ppid after=${state:-reaped}" > "$APP_DIR/result"
"#;

#[test]
fn orphans_are_reaped_as_a_child_subreaper() {
    let tb = testbed();
    let pod = Pod::new(tb);
    let dir = pod.dir.join("orphans");
    std::fs::create_dir_all(&dir).expect("dir");
    let out = pod
        .command(
            tb,
            &[
                ("AKV_INJECTOR_REFRESH", INTERVAL),
                ("APP_DIR", dir.to_str().expect("utf-8")),
            ],
            &["/bin/sh", "-c", ORPHAN],
        )
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = read(&dir, "result").expect("result");
    let fields: Vec<&str> = result.split_whitespace().collect();
    let parent = fields[0].trim_start_matches("akv-env=");
    assert_eq!(fields[1], format!("orphan-parent={parent}"), "{result}");
    assert_eq!(fields[2], "after=reaped", "{result}");
}

#[test]
fn as_pid_1_it_forwards_and_reaps() {
    // PID 1 of a new PID namespace, as in a container: needs root and util-linux's unshare,
    // which the test bed has (this test fails, never skips, without them).
    let tb = testbed();
    let pod = Pod::new(tb);
    let dir = pod.dir.join("pid1");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut cmd = std::process::Command::new("unshare");
    cmd.args([
        "--pid",
        "--fork",
        "--mount-proc",
        tb.bin,
        "--",
        "/bin/sh",
        "-c",
        ORPHAN,
    ])
    .env_clear()
    .envs(pod.env.iter().cloned())
    .env("AKV_INJECTOR_REFRESH", INTERVAL)
    .env("APP_DIR", &dir);
    let out = cmd
        .output()
        .expect("unshare (util-linux) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = read(&dir, "result").expect("result");
    assert_eq!(result.trim(), "akv-env=1 orphan-parent=1 after=reaped");
}

#[test]
fn a_failed_start_in_refresh_mode_fails_as_without_refresh() {
    let tb = testbed();
    let pod = Pod::new(tb); // no grant: 403
    let name = unique("forbidden");
    tb.secret("a", &name, "MARKER-never-read");
    let dir = pod.dir.join("failed-start");
    std::fs::create_dir_all(&dir).expect("dir");
    let reference = format!("akv:{name}");
    let out = pod
        .command(
            tb,
            &[
                ("AKV_INJECTOR_REFRESH", INTERVAL),
                ("VALUE", &reference),
                ("APP_DIR", dir.to_str().expect("utf-8")),
            ],
            &["/bin/sh", "-c", APP],
        )
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("403"), "{stderr}");
    assert!(
        read(&dir, "ready").is_none(),
        "the application never started"
    );
}
