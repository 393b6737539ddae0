//! `#json:`, `#base64` and files against the Key Vault harness: fields and decoded bytes
//! go to env vars and files; binary data and NUL go to files only, and an env var that
//! would hold them is a start failure naming the variable.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

fn files_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("akv-env-files-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn json_fields_and_base64_in_env_vars_and_files() {
    let tb = testbed();
    let mut pod = Pod::new(tb);
    pod.grant(tb, "a");
    let (cfg, blob, text) = (unique("cfg"), unique("blob"), unique("text"));
    tb.secret(
        "a",
        &cfg,
        r#"{"db": {"user": "app", "password": "p@ss\u0000w", "port": 5432, "hosts": ["h1", "h2"]}}"#,
    );
    // 0x00 0xff 0xfe 'a': binary, URL-safe alphabet, no padding.
    tb.secret("a", &blob, "AP_-YQ");
    tb.secret("a", &text, "aGVsbG8gd29ybGQ=");
    let dir = files_dir("json");
    pod.set(
        "AKV_INJECTOR_FILES_PATH",
        Some(dir.to_str().expect("utf-8")),
    )
    .set(
        "AKV_INJECTOR_FILE_blob.bin",
        Some(&format!("akv:{blob}#base64")),
    )
    .set(
        "AKV_INJECTOR_FILE_password",
        Some(&format!("akv:{cfg}#json:db.password")),
    )
    .set(
        "AKV_INJECTOR_FILE_app.conf",
        Some(&format!(
            "user = ${{akv:{cfg}#json:db.user}}\nhost = ${{akv:{cfg}#json:db.hosts.1}}\n"
        )),
    );
    let vars = [
        ("DB_USER", format!("akv:{cfg}#json:db.user")),
        ("DB_PORT", format!("akv:{cfg}#json:db.port")),
        ("DB_HOSTS", format!("akv:{cfg}#json:db.hosts")),
        (
            "URL",
            format!("pg://${{akv:{cfg}#json:db.user}}@${{akv:{cfg}#json:db.hosts.0}}"),
        ),
        ("GREETING", format!("akv:{text}#base64")),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (out, seen, _) = pod.run_app(tb, &vars, &[]);
    let seen = seen.unwrap_or_else(|| panic!("the app did not start:\n{}", stderr(&out)));
    let env = &seen["env"];
    assert_eq!(env["DB_USER"], "app");
    assert_eq!(env["DB_PORT"], "5432");
    assert_eq!(env["DB_HOSTS"], r#"["h1","h2"]"#);
    assert_eq!(env["URL"], "pg://app@h1");
    assert_eq!(env["GREETING"], "hello world");
    assert_eq!(
        std::fs::read(dir.join("blob.bin")).expect("read"),
        [0x00, 0xff, 0xfe, b'a']
    );
    assert_eq!(
        std::fs::read(dir.join("password")).expect("read"),
        b"p@ss\0w"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("app.conf")).expect("read"),
        "user = app\nhost = h2\n"
    );
    for f in ["blob.bin", "password", "app.conf"] {
        let mode = std::fs::metadata(dir.join(f))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400, "{f}");
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn binary_nul_and_missing_fields_are_start_failures_naming_the_site() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let (cfg, blob) = (unique("cfg"), unique("blob"));
    tb.secret("a", &cfg, r#"{"password": "p@ss\u0000w", "user": "app"}"#);
    tb.secret("a", &blob, "AP_-YQ");
    let cases = [
        (
            "BLOB",
            format!("akv:{blob}#base64"),
            format!("env var BLOB: akv:{blob}#base64 is binary data (not UTF-8 text)"),
        ),
        (
            "PW",
            format!("akv:{cfg}#json:password"),
            "env var PW would hold a NUL byte".to_string(),
        ),
        (
            "MISSING",
            format!("akv:{cfg}#json:db.user"),
            "#json:db.user: field 'db' is missing".to_string(),
        ),
        (
            "NOT_JSON",
            format!("akv:{blob}#json:a"),
            "the secret's value is not JSON".to_string(),
        ),
    ];
    for (var, reference, want) in cases {
        let (out, seen, _) = pod.run_app(tb, &[(var, reference.as_str())], &[]);
        let err = stderr(&out);
        assert!(
            seen.is_none() && !out.status.success(),
            "{var}: started anyway"
        );
        assert!(err.contains(&want), "{var}: want {want:?} in\n{err}");
        assert!(!err.contains("p@ss"), "{var}: a value leaked:\n{err}");
    }
}

#[test]
fn a_file_that_cannot_be_written_is_a_start_failure_naming_it() {
    let tb = testbed();
    let mut pod = Pod::new(tb);
    pod.grant(tb, "a");
    let db = unique("db");
    tb.secret("a", &db, "v");
    let dir = files_dir("blocked");
    std::fs::create_dir_all(dir.join("tls.crt").join("x")).expect("mkdir");
    pod.set(
        "AKV_INJECTOR_FILES_PATH",
        Some(dir.to_str().expect("utf-8")),
    )
    .set("AKV_INJECTOR_FILE_tls.crt", Some(&format!("akv:{db}")));
    let (out, seen, _) = pod.run_app(tb, &[], &[]);
    let err = stderr(&out);
    assert!(seen.is_none() && !out.status.success(), "started anyway");
    assert!(
        err.contains(&format!("cannot write file {}/tls.crt", dir.display())),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}
