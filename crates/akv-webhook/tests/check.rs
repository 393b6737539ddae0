//! `akv-webhook check`, run as a user runs it: the real binary on manifests in
//! `tests/data/check/`, its lines and its exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/check")
        .join(name)
}

fn check(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_akv-webhook"))
        .arg("check")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("akv-webhook starts");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).expect("stdin written");
    }
    child.wait_with_output().expect("akv-webhook ends")
}

fn lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn path(name: &str) -> String {
    data(name).display().to_string()
}

#[test]
fn every_kind_in_one_file_passes_with_exit_0() {
    let file = path("workloads.yaml");
    let out = check(&[&file], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Nothing to say: every template with references is injectable, and the Pod
    // without any reference (and without the workload identity label) is not looked at.
    assert_eq!(lines(&out), Vec::<String>::new());
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("7 pod template(s) checked, none refused"),
        "{summary}"
    );
}

#[test]
fn a_refused_pod_is_exit_1_with_file_kind_and_name() {
    let file = path("refused.yaml");
    let out = check(&["-f", &file], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let got = lines(&out);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(
        got[0].starts_with(&format!(
            "{file}:Deployment/broken: container 'app', env DB_PASSWORD: "
        )),
        "{}",
        got[0]
    );
    assert!(
        got.iter().any(|l| l.starts_with(&format!(
            "{file}:Pod/no-identity: warning: pod has no label azure.workload.identity/use"
        ))),
        "{got:#?}"
    );
    assert!(
        got.iter().any(|l| l == &format!("{file}:Pod/no-identity: note: container 'app' has no command: the ENTRYPOINT/CMD of image 'registry.example/app:1' needs a registry lookup at admission")),
        "{got:#?}"
    );
}

#[test]
fn a_directory_and_stdin_are_read() {
    let dir = data("");
    let out = check(&[dir.to_str().expect("utf-8 path")], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "refused.yaml is in the directory: {out:?}"
    );
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("10 pod template(s) checked"), "{summary}");

    let json = std::fs::read(data("list.json")).expect("list.json");
    let out = check(&["-"], Some(&json));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("1 pod template(s) checked"), "{summary}");
}

#[test]
fn unreadable_input_is_exit_2_and_the_rest_is_still_checked() {
    let missing = path("no-such-file.yaml");
    let out = check(&[&missing], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read"),
        "{out:?}"
    );

    let out = check(&["-"], Some(b"kind: [Pod\n"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-: not YAML or JSON"),
        "{out:?}"
    );

    // A broken template in one document, a refused pod in the next: both reported, 2 wins.
    let mut input = b"kind: Job\nmetadata: {name: j}\nspec: {}\n---\n".to_vec();
    input.extend(std::fs::read(data("refused.yaml")).expect("refused.yaml"));
    let out = check(&["-"], Some(&input));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Job/j has no pod template"),
        "{out:?}"
    );
    assert!(
        lines(&out)
            .iter()
            .any(|l| l.starts_with("-:Deployment/broken: ")),
        "{out:?}"
    );
}

#[test]
fn without_a_file_it_says_how_to_use_it() {
    let out = check(&[], None);
    assert_eq!(out.status.code(), Some(2), "clap's usage error: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FILE|DIR|-"),
        "{out:?}"
    );
}

#[test]
fn file_annotations_are_checked_offline() {
    let manifest = br#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata:
      labels: {azure.workload.identity/use: "true"}
      annotations:
        akv-injector.io/vault: team-a-kv
        akv-injector.io/files-path: /etc/nginx/tls
        akv-injector.io/file.tls.crt: web-tls#cert
    spec:
      containers:
        - name: nginx
          image: nginx:1.27
          command: ["nginx"]
          volumeMounts: [{name: tls, mountPath: /etc/nginx}]
      volumes: [{name: tls, emptyDir: {}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: ok
  labels: {azure.workload.identity/use: "true"}
  annotations:
    akv-injector.io/vault: team-a-kv
    akv-injector.io/file.keystore.p12: web-tls#pfx
    akv-injector.io/file.app.conf: "user = ${akv:db-config#json:user}\n"
spec:
  containers: [{name: app, image: app:1, command: ["/app"]}]
"#;
    let out = check(&["-"], Some(manifest));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let got = lines(&out);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].starts_with("-:Deployment/web: annotation akv-injector.io/files-path: container 'nginx' already mounts volume 'tls' at /etc/nginx, which overlaps the files path /etc/nginx/tls"),
        "{}",
        got[0]
    );
}
