//! Real Key Vault traffic, replayed: every recording in ../shared/vectors/keyvault/ (found
//! by glob, so a recording added later is tested without code changes) is served by
//! tests/testbed/replay.mjs exactly as recorded, and the real akv-env binary reads from it
//! (tokens from the test bed's token endpoint, see common/). What akv-env produces is
//! compared with what tests/testbed/replay_oracle.py computes from the recorded bytes with
//! Python `cryptography`, never with akv-env's own parser.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use common::*;
use serde_json::Value;

fn recordings_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/keyvault");
    assert!(
        dir.is_dir(),
        "the recordings of real Key Vault traffic are missing: expected the directory {} \
         (../shared/vectors/keyvault next to the repository)",
        dir.display()
    );
    dir
}

fn recordings() -> Vec<PathBuf> {
    let dir = recordings_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.json recordings in {}",
        dir.display()
    );
    files
}

fn testbed_file(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testbed")
        .join(name)
        .display()
        .to_string()
}

/// Runs the oracle; panics with how to get Python `cryptography` when it cannot.
fn oracle(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("python3")
        .arg(testbed_file("replay_oracle.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): install Python 3 with the `cryptography` package (Debian: apt-get install python3-cryptography; or pip install cryptography)")
        });
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write to the oracle");
    drop(input);
    let out = child.wait_with_output().expect("oracle");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("No module named 'cryptography'"),
        "python3 lacks the `cryptography` package: apt-get install python3-cryptography, or pip install cryptography"
    );
    assert!(
        out.status.success(),
        "replay_oracle.py {args:?} failed:\n{err}"
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// One running replay server.
struct Replay {
    child: Child,
    stdout: BufReader<ChildStdout>,
    port: u16,
    challenge_from: Option<String>,
}

impl Replay {
    fn start(tb: &Testbed, recording: &Path) -> Replay {
        let mut child = Command::new(tb.path("AKV_TESTBED_NODE"))
            .arg(testbed_file("replay.mjs"))
            .arg(recording)
            .env("AKV_TESTBED_CERT", tb.path("AKV_TESTBED_CERT"))
            .env("AKV_TESTBED_KEY", tb.path("AKV_TESTBED_KEY"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start replay.mjs (node)");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the replay port");
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("replay.mjs did not start ({e}): {line:?}"));
        Replay {
            port: ready["port"].as_u64().expect("port") as u16,
            challenge_from: ready["challenge"].as_str().map(str::to_string),
            child,
            stdout,
        }
    }

    fn vault(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Stops the server; returns every request it saw.
    fn finish(mut self) -> Vec<Value> {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).expect("replay log");
        let _ = self.child.wait();
        let log: Value = serde_json::from_str(rest.trim())
            .unwrap_or_else(|e| panic!("replay.mjs log ({e}): {rest:?}"));
        log["requests"].as_array().cloned().unwrap_or_default()
    }
}

/// What one recording gave: checks made and problems found.
#[derive(Default)]
struct Outcome {
    checks: usize,
    problems: Vec<String>,
    notes: Vec<String>,
}

impl Outcome {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.problems.push(what());
        }
    }
}

fn replay_one(tb: &Testbed, recording: &Path) -> Outcome {
    let file = recording
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    let expected: Value =
        serde_json::from_str(&oracle(&["expect", &recording.display().to_string()], None))
            .expect("oracle json");
    let checks = expected["checks"].as_array().cloned().unwrap_or_default();
    let mut out = Outcome::default();
    out.check(!checks.is_empty(), || {
        format!("{file}: the recording gives nothing to check (no GET answered 200, 403 or 404)")
    });

    let replay = Replay::start(tb, recording);
    let mut pod = Pod::new(tb);
    pod.set("AKV_INJECTOR_VAULT", Some(&replay.vault()))
        .set("AKV_INJECTOR_ALLOW_VAULT_HOSTS", Some("127.0.0.1"));
    if let Some(from) = &replay.challenge_from {
        if *from != file {
            out.notes.push(format!(
                "{file}: no 401 challenge recorded; the challenge of {from} was used"
            ));
        }
    }

    // Everything that must resolve, in one run (fetched concurrently, as in a pod).
    let (good, bad): (Vec<&Value>, Vec<&Value>) = checks
        .iter()
        .partition(|c| c["expect"].get("failure").is_none());
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    if !good.is_empty() {
        let vars: Vec<(String, String)> = good
            .iter()
            .map(|c| (text(c, "var"), text(c, "reference")))
            .collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (output, seen, _) = pod.run_app(tb, &vars, &[]);
        match seen {
            None => out.check(false, || {
                format!(
                    "{file}: akv-env did not start the application (exit {:?}):\n{}",
                    output.status.code(),
                    stderr(&output)
                )
            }),
            Some(seen) => {
                for c in &good {
                    let (var, what) = (text(c, "var"), text(c, "what"));
                    let got = seen["env"][&var].as_str().unwrap_or_default().to_string();
                    let expect = &c["expect"];
                    if let Some(want) = expect["value"].as_str() {
                        out.check(got == want, || {
                            format!(
                                "{file}: {what} ({}): akv-env gave {} bytes that differ from the {} expected",
                                text(c, "reference"),
                                got.len(),
                                want.len()
                            )
                        });
                    } else if let Some(want) = expect["key_pkcs8"].as_str() {
                        let label_ok = got.starts_with("-----BEGIN PRIVATE KEY-----\n")
                            && got.matches("-----BEGIN").count() == 1;
                        out.check(label_ok, || {
                            format!("{file}: {what}: not one PEM block labelled PRIVATE KEY")
                        });
                        let norm = oracle(&["normalize-key"], Some(&got));
                        out.check(norm.trim() == want, || {
                            format!("{file}: {what}: the private key differs from the recorded one")
                        });
                    }
                }
            }
        }
    }

    // Each failure on its own: the application must not start, and the message must name
    // the variable, the object, the vault and the status.
    for c in &bad {
        let (var, reference, what) = (text(c, "var"), text(c, "reference"), text(c, "what"));
        let f = &c["expect"]["failure"];
        let (output, seen, _) = pod.run_app(tb, &[(var.as_str(), reference.as_str())], &[]);
        let err = stderr(&output);
        out.check(!output.status.success() && seen.is_none(), || {
            format!("{file}: {what}: akv-env started the application anyway")
        });
        let name = reference
            .trim_start_matches("akv:")
            .split(['/', '#'])
            .next()
            .unwrap_or_default()
            .to_string();
        // The object is named as the user wrote it, as the service does.
        out.check(err.contains(&format!("'{name}'")), || {
            format!(
                "{file}: {what}: the message does not name the object {name:?} as written:\n{err}"
            )
        });
        let mut wants = vec![
            format!("env var {var}"),
            replay.vault(),
            format!("HTTP {}", f["status"]),
        ];
        if let Some(code) = f["code"].as_str() {
            wants.push(code.to_string());
        }
        if let Some(inner) = f["inner"].as_str() {
            wants.push(inner.to_string());
        }
        if f["disabled"].as_bool() == Some(true) {
            wants.push("disabled".to_string());
        }
        for want in wants {
            out.check(err.contains(&want), || {
                format!("{file}: {what}: the message does not say {want:?}:\n{err}")
            });
        }
    }

    // The traffic: nothing unmatched, tokens for Key Vault, challenges where none was sent.
    let log = replay.finish();
    out.check(!log.is_empty(), || {
        format!("{file}: akv-env sent no request")
    });
    let mut api_versions = BTreeMap::new();
    for r in &log {
        let line = format!(
            "{} {}",
            r["method"].as_str().unwrap_or("?"),
            r["path"].as_str().unwrap_or("?")
        );
        out.check(r.get("unmatched").is_none(), || {
            format!(
                "{file}: request {line} matched nothing recorded: {}",
                r["unmatched"]
            )
        });
        if r["authenticated"].as_bool() == Some(true) {
            out.check(
                r["audience"].as_str() == Some("https://vault.azure.net"),
                || {
                    format!(
                        "{file}: {line} carried a token for {} (want https://vault.azure.net)",
                        r["audience"]
                    )
                },
            );
        } else {
            out.check(r["status"] == 401, || {
                format!("{file}: unauthenticated {line} was not challenged")
            });
        }
        if let (Some(sent), Some(rec)) =
            (r["apiVersion"].as_str(), r["recordedApiVersion"].as_str())
        {
            if sent != rec {
                api_versions.insert(sent.to_string(), rec.to_string());
            }
        }
        if let Some(via) = r["via"].as_str() {
            out.notes
                .push(format!("{file}: {line} answered with the recorded {via}"));
        }
    }
    for (sent, rec) in api_versions {
        out.notes.push(format!(
            "{file}: akv-env sends api-version {sent}; the recording has {rec}"
        ));
    }
    out
}

#[test]
fn every_recording_of_key_vault_replays_as_expected() {
    let tb = testbed();
    let files = recordings();
    let (mut checks, mut problems, mut notes) = (0, Vec::new(), Vec::new());
    for file in &files {
        let outcome = replay_one(tb, file);
        checks += outcome.checks;
        problems.extend(outcome.problems);
        notes.extend(outcome.notes);
    }
    eprintln!(
        "replayed {} recordings of {}: {checks} checks",
        files.len(),
        recordings_dir().display()
    );
    for note in &notes {
        eprintln!("note: {note}");
    }
    assert!(
        problems.is_empty(),
        "{} of {checks} checks failed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
