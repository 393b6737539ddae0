//! Node processes of the test beds (the Key Vault harness, the e2e token endpoint front):
//! each prints one JSON line when it is ready and exits when its stdin closes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running node script; stopped on drop (stdin closed, then killed after 5 s).
pub struct NodeProcess {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl NodeProcess {
    /// Starts `node script` with `env`, its stderr going to `stderr`, and waits for its
    /// ready line; returns the process and that line, parsed. Panics when it does not
    /// start or prints no JSON.
    pub fn start(
        node: &str,
        script: &Path,
        env: &BTreeMap<String, String>,
        stderr: Stdio,
    ) -> (NodeProcess, Value) {
        let mut cmd = Command::new(node);
        cmd.arg(script).envs(env);
        let (mut process, line) = NodeProcess::spawn(cmd, stderr);
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            process.stop();
            panic!("{} did not start ({e}): {line:?}", script.display())
        });
        (process, ready)
    }

    /// Starts `cmd` (any program that prints a ready line and exits when its stdin
    /// closes, e.g. `scripts/lib/node/tcp_relay.py`) with its stderr going to `stderr`;
    /// returns the process and its first line of output (empty if it printed none).
    /// Panics when it cannot be started.
    pub fn spawn(mut cmd: Command, stderr: Stdio) -> (NodeProcess, String) {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            // An error leaves the line empty, which the caller reports with its name.
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let stdin = child.stdin.take();
        (NodeProcess { child, stdin }, line)
    }

    /// Closes its stdin (it exits then) and waits up to 5 s before killing it.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
