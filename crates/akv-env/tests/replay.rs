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

/// Runs `cmd` with `stdin` written to it; panics with `how_to_get` when it cannot start.
fn run_with_stdin(mut cmd: Command, stdin: &[u8], how_to_get: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} ({e}): {how_to_get}"));
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write to the child's stdin");
    drop(input);
    child.wait_with_output().expect("wait for the child")
}

/// Runs the oracle; panics with how to get Python `cryptography` when it cannot.
fn oracle(args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg(testbed_file("replay_oracle.py")).args(args);
    let out = run_with_stdin(
        cmd,
        stdin.unwrap_or_default().as_bytes(),
        "install Python 3 with the `cryptography` package (Debian: apt-get install python3-cryptography; or pip install cryptography)",
    );
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

/// Runs openssl (the independent reader of every file akv-env writes); panics with its
/// stderr when it refuses.
fn openssl(args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    let out = run_with_stdin(
        cmd,
        stdin.unwrap_or_default(),
        "install it (Debian: apt-get install openssl)",
    );
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The recorded certificates (PKCS#12 and PEM backing secrets, as Key Vault wrote them)
/// as files: `#cert`, `#key`, `#chain`, `#pfx` and a templated file, plus `#pfx` in an env
/// var; openssl reads each of them, and the key, the certificate and the archive agree.
#[test]
fn recorded_certificates_as_files_are_read_by_openssl() {
    use std::os::unix::fs::PermissionsExt;
    let tb = testbed();
    for recording in [
        "net-certs-DownloadLatestCertificate-pkcs12.excerpt.json",
        "net-certs-DownloadLatestCertificate-pem.excerpt.json",
    ] {
        let path = recordings_dir().join(recording);
        let recorded: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let cert_entry = recorded["Entries"]
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| {
                e["RequestMethod"] == "GET"
                    && e["RequestUri"]
                        .as_str()
                        .is_some_and(|u| u.contains("/certificates/"))
            })
            .expect("a GET of the certificate");
        let uri = cert_entry["RequestUri"].as_str().expect("uri");
        let name = uri
            .split("/certificates/")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?']).next())
            .expect("certificate name")
            .to_string();
        let cer = cert_entry["ResponseBody"]["cer"].as_str().expect("cer");
        let recorded_fp = openssl(
            &[
                "x509",
                "-inform",
                "DER",
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
            Some(&base64_decode(cer)),
        );

        let replay = Replay::start(tb, &path);
        let dir = std::env::temp_dir().join(format!("akv-files-{}-{}", std::process::id(), name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("files dir");
        std::fs::write(dir.join("stale"), "from an earlier start").expect("stale file");
        let mut pod = Pod::new(tb);
        let files = [
            ("tls.crt", format!("akv:{name}#cert")),
            ("tls.key", format!("{name}#key")),
            ("chain.pem", format!("akv:{name}#chain")),
            ("tls.pfx", format!("akv:{name}#pfx")),
            (
                "both.pem",
                format!("${{akv:{name}#cert}}${{akv:{name}#key}}"),
            ),
        ];
        pod.set("AKV_INJECTOR_VAULT", Some(&replay.vault()))
            .set("AKV_INJECTOR_ALLOW_VAULT_HOSTS", Some("127.0.0.1"))
            .set(
                "AKV_INJECTOR_FILES_PATH",
                Some(dir.to_str().expect("utf-8")),
            );
        for (file, reference) in &files {
            pod.set(&format!("AKV_INJECTOR_FILE_{file}"), Some(reference));
        }
        let pfx_ref = format!("akv:{name}#pfx");
        let (output, seen, _) = pod.run_app(tb, &[("TLS_PFX", pfx_ref.as_str())], &[]);
        let seen = seen.unwrap_or_else(|| {
            panic!(
                "{recording}: the application did not start:\n{}",
                stderr(&output)
            )
        });
        drop(replay.finish());

        let mut listing: Vec<String> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        listing.sort();
        assert_eq!(
            listing,
            ["both.pem", "chain.pem", "tls.crt", "tls.key", "tls.pfx"],
            "{recording}: exactly the declared files"
        );
        for file in &listing {
            let mode = std::fs::metadata(dir.join(file))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o400, "{recording}: {file} mode {mode:o}");
        }
        let file = |f: &str| dir.join(f).display().to_string();
        let fp = openssl(
            &[
                "x509",
                "-in",
                &file("tls.crt"),
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
            None,
        );
        assert_eq!(fp, recorded_fp, "{recording}: #cert is the recorded cer");
        let cert_pub = openssl(
            &["x509", "-in", &file("tls.crt"), "-noout", "-pubkey"],
            None,
        );
        let key_pub = openssl(&["pkey", "-in", &file("tls.key"), "-pubout"], None);
        assert_eq!(key_pub, cert_pub, "{recording}: #key belongs to #cert");
        let chain_fp = openssl(
            &[
                "x509",
                "-in",
                &file("chain.pem"),
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
            None,
        );
        assert_eq!(
            chain_fp, recorded_fp,
            "{recording}: #chain starts with the leaf"
        );
        let both_pub = openssl(&["pkey", "-in", &file("both.pem"), "-pubout"], None);
        assert_eq!(
            both_pub, cert_pub,
            "{recording}: the templated file holds the key"
        );

        // The archive: openssl reads it with an empty password, its MAC verifies, and it
        // holds the recorded certificate and the key; it is PBES2 with AES-256-CBC.
        let info = Command::new("openssl")
            .args([
                "pkcs12",
                "-in",
                &file("tls.pfx"),
                "-info",
                "-noout",
                "-passin",
                "pass:",
            ])
            .output()
            .expect("openssl pkcs12 -info");
        let info_text = String::from_utf8_lossy(&info.stderr).into_owned();
        assert!(
            info.status.success(),
            "{recording}: openssl pkcs12 -info:\n{info_text}"
        );
        for want in ["MAC: sha256", "PBES2, PBKDF2, AES-256-CBC"] {
            assert!(
                info_text.contains(want),
                "{recording}: {want:?} in\n{info_text}"
            );
        }
        let dumped = openssl(
            &[
                "pkcs12",
                "-in",
                &file("tls.pfx"),
                "-nodes",
                "-passin",
                "pass:",
            ],
            None,
        );
        let pfx_fp = openssl(
            &["x509", "-noout", "-fingerprint", "-sha256"],
            Some(dumped.as_bytes()),
        );
        assert_eq!(
            pfx_fp, recorded_fp,
            "{recording}: the archive's first certificate is the leaf"
        );
        let pfx_pub = openssl(&["pkey", "-pubout"], Some(dumped.as_bytes()));
        assert_eq!(
            pfx_pub, cert_pub,
            "{recording}: the archive's key belongs to the leaf"
        );

        // In an env var the same archive comes as base64.
        let env_pfx = base64_decode(seen["env"]["TLS_PFX"].as_str().expect("TLS_PFX"));
        let dumped = openssl(&["pkcs12", "-nodes", "-passin", "pass:"], Some(&env_pfx));
        let env_pub = openssl(&["pkey", "-pubout"], Some(dumped.as_bytes()));
        assert_eq!(env_pub, cert_pub, "{recording}: #pfx in an env var");
        for (var, _) in &files {
            assert!(
                seen["env"]
                    .get(format!("AKV_INJECTOR_FILE_{var}"))
                    .is_none(),
                "akv-env's own variables are removed"
            );
        }
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}

/// Standard or URL-safe base64 (Key Vault's `cer` is base64url), padded or not.
fn base64_decode(text: &str) -> Vec<u8> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    let text = text.trim();
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .expect("base64")
}
