//! akv-env against the test bed: oauth2-mock-server as the Entra ID token endpoint and
//! the Key Vault REST harness, over HTTPS with a test CA (see scripts/testbed-keyvault).

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn env_of(seen: &Value) -> BTreeMap<String, String> {
    seen["env"]
        .as_object()
        .expect("env")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_string()))
        .collect()
}

#[test]
fn resolves_secrets_across_two_vaults_and_execs_the_app() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a").grant(tb, "b");
    let (db, user, api) = (unique("db"), unique("user"), unique("api"));
    let v1 = tb.secret("a", &db, "old-password");
    tb.secret("a", &db, "p@ss word$1");
    tb.secret("a", &user, "app");
    tb.secret("b", &api, "api-key-b");
    let b = tb.vault_b_host();

    let vars = [
        ("DB_PASSWORD", format!("akv:{db}")),
        ("DB_PASSWORD_OLD", format!("akv:{db}/{v1}")),
        (
            "DB_URL",
            format!(
                "postgres://${{akv:{user}}}:${{akv:{}}}@db:5432/app",
                db.to_uppercase()
            ),
        ),
        ("API_KEY", format!("akv://{b}/{api}")),
        ("PLAIN", "jdbc:akv:not-a-reference".to_string()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let arg_pw = format!("--password=${{akv:{db}}}");
    let arg_api = format!("akv://{b}/{api}");
    let (out, seen, pid) = pod.run_app(tb, &vars, &[&arg_pw, &arg_api, "plain"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = seen.expect("the app ran");

    // The application is akv-env's process: same PID.
    assert_eq!(seen["pid"].as_u64(), Some(u64::from(pid)));
    assert_eq!(
        seen["argv"],
        json!(["--password=p@ss word$1", "api-key-b", "plain"])
    );
    let mut want: BTreeMap<String, String> = pod
        .env
        .iter()
        .filter(|(k, _)| !k.starts_with("AKV_INJECTOR_"))
        .cloned()
        .collect();
    for (k, v) in [
        ("DB_PASSWORD", "p@ss word$1"),
        ("DB_PASSWORD_OLD", "old-password"),
        ("DB_URL", "postgres://app:p@ss word$1@db:5432/app"),
        ("API_KEY", "api-key-b"),
        ("PLAIN", "jdbc:akv:not-a-reference"),
    ] {
        want.insert(k.into(), v.into());
    }
    assert_eq!(
        env_of(&seen),
        want,
        "the app sees exactly the resolved env, without AKV_INJECTOR_*"
    );

    // Each distinct object once (the latest db serves three references), one token.
    let ok =
        |vault: &str, path: String| tb.requests(vault, &path).2.get("200").copied().unwrap_or(0);
    assert_eq!(ok("a", format!("/secrets/{db}")), 1);
    assert_eq!(ok("a", format!("/secrets/{db}/{v1}")), 1);
    assert_eq!(ok("a", format!("/secrets/{user}")), 1);
    assert_eq!(ok("b", format!("/secrets/{api}")), 1);
    assert_eq!(
        tb.tokens(&pod.client_id),
        (1, 0),
        "one token for the Key Vault audience"
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn no_references_needs_no_identity() {
    let tb = testbed();
    let mut pod = Pod::new(tb);
    pod.set("AZURE_CLIENT_ID", None)
        .set("AZURE_FEDERATED_TOKEN_FILE", None);
    let (out, seen, _) = pod.run_app(tb, &[("A", "b")], &["x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let env = env_of(&seen.expect("ran"));
    assert_eq!(env.get("A").map(String::as_str), Some("b"));
    assert!(env.keys().all(|k| !k.starts_with("AKV_INJECTOR_")));
}

fn make_chain(tb: &Testbed, dir: &std::path::Path) {
    let o = |args: &[&str]| openssl(tb, dir, args);
    self_signed(
        tb,
        dir,
        "root.key",
        "root.pem",
        "/CN=Test Root",
        &["-addext", "basicConstraints=critical,CA:TRUE"],
    );
    o(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "int.key",
        "-out",
        "int.csr",
        "-subj",
        "/CN=Test Intermediate",
    ]);
    std::fs::write(dir.join("ca.ext"), "basicConstraints=critical,CA:TRUE\n").expect("write");
    o(&[
        "x509",
        "-req",
        "-in",
        "int.csr",
        "-CA",
        "root.pem",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-out",
        "int.pem",
        "-days",
        "2",
        "-extfile",
        "ca.ext",
    ]);
    o(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "leaf.key",
    ]);
    o(&[
        "req",
        "-new",
        "-key",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=app.example.com",
    ]);
    o(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "int.pem",
        "-CAkey",
        "int.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
    ]);
    o(&[
        "x509", "-in", "leaf.pem", "-outform", "DER", "-out", "leaf.der",
    ]);
}

#[test]
fn certificate_parts_match_openssl_for_pem_and_pkcs12() {
    use base64::Engine as _;
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let dir = &pod.dir;
    make_chain(tb, dir);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("read");
    let cer = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(dir.join("leaf.der")).expect("der"));
    // Key Vault's PEM form: key, then leaf, then the rest of the chain.
    let pem_value = format!(
        "{}{}{}{}",
        read("leaf.key"),
        read("leaf.pem"),
        read("int.pem"),
        read("root.pem")
    );
    std::fs::write(
        dir.join("chain.pem"),
        format!("{}{}", read("int.pem"), read("root.pem")),
    )
    .expect("write");
    let p12 = |extra: &[&str], out: &str| {
        let mut args = vec![
            "pkcs12",
            "-export",
            "-inkey",
            "leaf.key",
            "-in",
            "leaf.pem",
            "-certfile",
            "chain.pem",
            "-passout",
            "pass:",
            "-out",
            out,
        ];
        args.extend_from_slice(extra);
        openssl(tb, dir, &args);
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join(out)).expect("p12"))
    };
    let modern = p12(&[], "modern.p12");
    let legacy = p12(&["-legacy"], "legacy.p12");

    let (c_pem, c_p12, c_legacy) = (unique("tls-pem"), unique("tls-p12"), unique("tls-legacy"));
    for (name, value, ct) in [
        (&c_pem, &pem_value, "application/x-pem-file"),
        (&c_p12, &modern, "application/x-pkcs12"),
        (&c_legacy, &legacy, "application/x-pkcs12"),
    ] {
        tb.control(
            "/vault/a/certificate",
            json!({"name": name, "value": value, "contentType": ct, "cer": cer}),
        );
    }
    let mut vars = Vec::new();
    for (tag, name) in [("PEM", &c_pem), ("P12", &c_p12), ("LEGACY", &c_legacy)] {
        for part in ["cert", "key", "chain"] {
            vars.push((
                format!("{tag}_{}", part.to_uppercase()),
                format!("akv:{name}#{part}"),
            ));
        }
    }
    let vars_ref: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (out, seen, _) = pod.run_app(tb, &vars_ref, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let env = env_of(&seen.expect("ran"));

    // What openssl says about the same objects.
    let cert_text = |pem: &str| {
        std::fs::write(dir.join("got.pem"), pem).expect("write");
        openssl(tb, dir, &["x509", "-in", "got.pem"])
    };
    let want_cert = openssl(tb, dir, &["x509", "-in", "leaf.pem"]);
    let want_chain = [("leaf.pem"), ("int.pem"), ("root.pem")]
        .iter()
        .map(|f| openssl(tb, dir, &["x509", "-in", f]))
        .collect::<String>();
    let want_pub = openssl(tb, dir, &["pkey", "-in", "leaf.key", "-pubout"]);
    for tag in ["PEM", "P12", "LEGACY"] {
        let cert = &env[&format!("{tag}_CERT")];
        assert_eq!(cert, &want_cert, "{tag} #cert");
        assert_eq!(cert_text(cert), want_cert);
        // The chain: leaf first, each certificate as openssl prints it.
        let chain = &env[&format!("{tag}_CHAIN")];
        assert_eq!(chain, &want_chain, "{tag} #chain");
        // The key: the same key pair as the certificate's.
        std::fs::write(dir.join("got.key"), &env[&format!("{tag}_KEY")]).expect("write");
        assert_eq!(
            openssl(tb, dir, &["pkey", "-in", "got.key", "-pubout"]),
            want_pub,
            "{tag} #key"
        );
    }
    assert_eq!(
        env["PEM_KEY"],
        read("leaf.key"),
        "a PEM key is passed through as stored"
    );
    // #cert needs the certificate only; #key/#chain add its secret: 2 reads per certificate.
    assert_eq!(
        tb.requests("a", &format!("/certificates/{c_pem}"))
            .2
            .get("200"),
        Some(&1)
    );
    let stats = tb.stats();
    let secret_reads: u64 = stats["vaults"]["a"]
        .as_object()
        .expect("stats")
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("GET /secrets/{c_pem}/")))
        .map(|(_, v)| v["statuses"]["200"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        secret_reads, 1,
        "the backing secret, by the version in the certificate's sid"
    );
}

#[test]
fn public_keys_match_openssl() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "b");
    let dir = &pod.dir;
    openssl(
        tb,
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.key",
        ],
    );
    openssl(
        tb,
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "ec.key",
        ],
    );
    let (rsa, ec) = (unique("rsa"), unique("ec"));
    for (name, file) in [(&rsa, "rsa.key"), (&ec, "ec.key")] {
        let pem = std::fs::read_to_string(dir.join(file)).expect("read");
        tb.control("/vault/b/key", json!({"name": name, "pem": pem}));
    }
    let b = tb.vault_b_host();
    let (r, e) = (
        format!("akv://{b}/{rsa}#pubkey"),
        format!("akv://{b}/{ec}#pubkey"),
    );
    let (out, seen, _) = pod.run_app(tb, &[("RSA_PUB", &r), ("EC_PUB", &e)], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let env = env_of(&seen.expect("ran"));
    assert_eq!(
        env["RSA_PUB"],
        openssl(tb, dir, &["pkey", "-in", "rsa.key", "-pubout"])
    );
    assert_eq!(
        env["EC_PUB"],
        openssl(tb, dir, &["pkey", "-in", "ec.key", "-pubout"])
    );
}

#[test]
fn missing_objects_fail_or_are_ignored() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let (gone, there) = (unique("gone"), unique("there"));
    tb.secret("a", &there, "v");
    let (g, t) = (format!("akv:{gone}"), format!("akv:{there}"));

    let (out, seen, _) = pod.run_app(tb, &[("GONE", &g), ("THERE", &t)], &[]);
    assert!(!out.status.success());
    assert!(seen.is_none(), "the app must not start");
    let err = stderr(&out);
    let vault = tb.vault_url("a");
    let want = format!(
        "akv-env: cannot read secret '{gone}' (latest version) from vault {vault} for env var GONE as client id {}: HTTP 404 (SecretNotFound): A secret with (name/id) {gone} was not found in this key vault.",
        pod.client_id
    );
    assert!(err.starts_with(&want), "{err}");
    assert!(err.contains("Hint: check the secret name and version in the reference, or set the pod annotation akv-injector.io/ignore-missing: \"true\""), "{err}");
    assert!(!err.contains("\"v\""));

    let (out, seen, _) = pod.run_app(
        tb,
        &[
            ("GONE", &g),
            ("THERE", &t),
            ("AKV_INJECTOR_IGNORE_MISSING", "true"),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let env = env_of(&seen.expect("ran"));
    assert_eq!((env["GONE"].as_str(), env["THERE"].as_str()), ("", "v"));
    assert!(stderr(&out).starts_with(&format!("akv-env: warning: secret '{gone}' (latest version) was not found in vault {vault} (HTTP 404)")), "{}", stderr(&out));
}

#[test]
fn forbidden_vault_is_reported_with_a_hint() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a"); // not b
    let (ok, denied) = (unique("ok"), unique("denied"));
    tb.secret("a", &ok, "fine");
    tb.secret("b", &denied, "hidden-value");
    let d = format!("${{akv://{}/{denied}}}", tb.vault_b_host());
    let o = format!("akv:{ok}");
    let (out, seen, _) = pod.run_app(tb, &[("OK", &o), ("URL", &format!("x{d}y"))], &[]);
    assert!(!out.status.success());
    assert!(seen.is_none());
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot read secret '{denied}' (latest version) from vault {} for env var URL as client id {}: HTTP 403 (Forbidden/ForbiddenByRbac)", tb.vault_url("b"), pod.client_id)), "{err}");
    assert!(err.contains(&format!("Hint: grant the identity (client id {}) the 'Key Vault Secrets User' role on the vault", pod.client_id)), "{err}");
    assert!(
        !err.contains("hidden-value") && !err.contains("fine"),
        "{err}"
    );
    // 403 is not retried.
    assert_eq!(
        tb.requests("b", &format!("/secrets/{denied}")).2.get("403"),
        Some(&1)
    );
}

#[test]
fn throttling_inside_the_budget_succeeds() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let (x, y) = (unique("throttled"), unique("flaky"));
    tb.secret("a", &x, "x-value");
    tb.secret("a", &y, "y-value");
    tb.fault(
        "a",
        &format!("/secrets/{x}"),
        json!({"status": 429, "retryAfter": 1, "times": 2}),
    );
    tb.fault(
        "a",
        &format!("/secrets/{y}"),
        json!({"status": 503, "times": 2}),
    );
    tb.fault(
        "a",
        &format!("/secrets/{y}"),
        json!({"drop": true, "times": 1}),
    );
    let (rx, ry) = (format!("akv:{x}"), format!("akv:{y}"));
    let started = Instant::now();
    let (out, seen, _) = pod.run_app(
        tb,
        &[("X", &rx), ("Y", &ry), ("AKV_INJECTOR_TIMEOUT", "10s")],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 was honoured twice"
    );
    let env = env_of(&seen.expect("ran"));
    assert_eq!(
        (env["X"].as_str(), env["Y"].as_str()),
        ("x-value", "y-value")
    );
    let (_, _, sx) = tb.requests("a", &format!("/secrets/{x}"));
    assert_eq!((sx.get("429"), sx.get("200")), (Some(&2), Some(&1)));
    let (_, _, sy) = tb.requests("a", &format!("/secrets/{y}"));
    assert_eq!(
        (sy.get("503"), sy.get("drop"), sy.get("200")),
        (Some(&2), Some(&1), Some(&1)),
        "{sy:?}"
    );
}

#[test]
fn throttling_that_outlasts_the_budget_fails_clearly() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let (x, y) = (unique("storm"), unique("down"));
    tb.secret("a", &x, "x");
    tb.secret("a", &y, "y");
    tb.fault(
        "a",
        &format!("/secrets/{x}"),
        json!({"status": 429, "retryAfter": 30, "times": 1000}),
    );
    tb.fault(
        "a",
        &format!("/secrets/{y}"),
        json!({"status": 500, "times": 1000}),
    );
    let (rx, ry) = (format!("akv:{x}"), format!("akv:{y}"));
    let started = Instant::now();
    let (out, seen, _) = pod.run_app(
        tb,
        &[("X", &rx), ("Y", &ry), ("AKV_INJECTOR_TIMEOUT", "3s")],
        &[],
    );
    let took = started.elapsed();
    assert!(!out.status.success());
    assert!(seen.is_none());
    assert!(
        took < Duration::from_secs(8),
        "stays near the 3s budget: {took:?}"
    );
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot read secret '{x}'")) && err.contains("gave up after 1 attempt(s): the timeout of 3s ran out (the server asked to retry after 30s); last answer: HTTP 429 (Throttled)"), "{err}");
    assert!(
        err.contains("Hint: the vault kept throttling requests for the whole timeout"),
        "{err}"
    );
    assert!(
        err.contains(&format!("cannot read secret '{y}'"))
            && err.contains("the timeout of 3s ran out; last answer: HTTP 500"),
        "{err}"
    );
    assert!(
        tb.requests("a", &format!("/secrets/{y}")).2["500"] >= 3,
        "5xx retried with backoff"
    );
}

#[test]
fn federated_token_must_match_the_identity() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let s = unique("s");
    tb.secret("a", &s, "v");
    // A token for another service account: Entra ID refuses the exchange.
    let other = tb.control(
        "/mint",
        json!({"subject": "system:serviceaccount:other:sa"}),
    )["token"]
        .as_str()
        .expect("token")
        .to_string();
    std::fs::write(&pod.token_file, other).expect("write");
    let r = format!("akv:{s}");
    let (out, seen, _) = pod.run_app(tb, &[("S", &r)], &[]);
    assert!(!out.status.success());
    assert!(seen.is_none());
    let err = stderr(&out);
    assert!(
        err.contains("the token exchange with Entra ID failed (HTTP 400)")
            && err.contains("AADSTS700213"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "Hint: check the federated identity credential of client id {}",
            pod.client_id
        )),
        "{err}"
    );
    assert_eq!(tb.tokens(&pod.client_id), (0, 1));
}

#[test]
fn settings_errors_fail_before_any_request() {
    let tb = testbed();
    let mut pod = Pod::new(tb);
    pod.grant(tb, "a");
    let s = unique("s");
    let r = format!("akv:{s}");
    let b = format!("akv://{}/{s}", tb.vault_b_host());
    type Change<'a> = (&'a str, Option<&'a str>);
    let cases: Vec<(Vec<Change>, &str, String)> = vec![
        (vec![("AZURE_FEDERATED_TOKEN_FILE", Some("/nonexistent/token"))], r.as_str(), "cannot read the federated token file /nonexistent/token (AZURE_FEDERATED_TOKEN_FILE): No such file or directory".into()),
        (vec![("AZURE_FEDERATED_TOKEN_FILE", None)], r.as_str(), "AZURE_FEDERATED_TOKEN_FILE is not set".into()),
        (vec![("AZURE_CLIENT_ID", None)], r.as_str(), "no workload identity client id".into()),
        (vec![("AZURE_TENANT_ID", None)], r.as_str(), "no tenant id".into()),
        (vec![("AKV_INJECTOR_TIMEOUT", Some("forever"))], r.as_str(), "AKV_INJECTOR_TIMEOUT=\"forever\": 'forever' is not a duration".into()),
        (vec![("AZURE_AUTHORITY_HOST", Some("http://localhost/"))], r.as_str(), "AZURE_AUTHORITY_HOST=\"http://localhost/\": the authority host must be an https:// URL".into()),
        (vec![("AKV_INJECTOR_VAULT", None)], r.as_str(), format!("env var S: '{r}' names no vault and the pod has no default vault")),
        (vec![("AKV_INJECTOR_ALLOW_VAULT_HOSTS", Some("127.0.0.1"))], b.as_str(), "env var S: vault host '127.0.0.2' is not a Key Vault host".into()),
        (vec![], "akv:bad_name", "env var S: object name 'bad_name' contains '_'".into()),
    ];
    let base = pod.env.clone();
    for (changes, value, want) in cases {
        pod.env = base.clone();
        for (k, v) in &changes {
            pod.set(k, *v);
        }
        let (out, seen, _) = pod.run_app(tb, &[("S", value)], &[]);
        assert!(!out.status.success(), "{changes:?}");
        assert!(seen.is_none());
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("akv-env: {want}")),
            "{changes:?}: {err}"
        );
    }
    assert_eq!(tb.tokens(&pod.client_id), (0, 0), "no token was asked for");
    assert_eq!(
        tb.requests("a", &format!("/secrets/{s}")).0 + tb.requests("b", &format!("/secrets/{s}")).0,
        0,
        "no vault was contacted"
    );
}

#[test]
fn untrusted_server_certificate_is_refused() {
    let tb = testbed();
    let mut pod = Pod::new(tb);
    pod.grant(tb, "a");
    let s = unique("s");
    tb.secret("a", &s, "v");
    pod.set("SSL_CERT_FILE", Some(tb.path("AKV_TESTBED_OTHER_CA")));
    let r = format!("akv:{s}");
    let (out, seen, _) = pod.run_app(tb, &[("S", &r), ("AKV_INJECTOR_TIMEOUT", "2s")], &[]);
    assert!(!out.status.success());
    assert!(seen.is_none());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot read secret '{s}'"))
            && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    assert_eq!(
        tb.requests("a", &format!("/secrets/{s}")).0,
        0,
        "nothing reached the vault"
    );
}

#[test]
fn signals_reach_the_application() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let s = unique("s");
    tb.secret("a", &s, "v");
    let out_file = pod.dir.join("signal.txt");
    let r = format!("akv:{s}");
    let app = tb.app_path();
    let mut child = pod
        .command(
            tb,
            &[("S", &r)],
            &[
                tb.path("AKV_TESTBED_NODE"),
                &app,
                "wait",
                out_file.to_str().expect("utf-8"),
            ],
        )
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let ready = out_file.with_extension("txt.ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the app did not start");
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("akv-env exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read_to_string(&ready).expect("pid"),
        child.id().to_string()
    );
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert_eq!(
        std::fs::read_to_string(&out_file).expect("out"),
        format!("SIGTERM {}", child.id())
    );
}

#[test]
fn install_copies_the_binary_as_a_non_root_user() {
    let tb = testbed();
    let pod = Pod::new(tb);
    let dir = pod.dir.join("akv-injector");
    std::fs::create_dir(&dir).expect("mkdir");
    let mut cmd = std::process::Command::new(BIN);
    if std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
    {
        // As root here: run as nobody (65534), which owns only the target directory.
        std::process::Command::new("chown")
            .args(["65534:65534", dir.to_str().expect("utf-8")])
            .status()
            .expect("chown");
        std::process::Command::new("chmod")
            .args(["755", pod.dir.to_str().expect("utf-8")])
            .status()
            .expect("chmod");
        cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
    }
    let out = cmd.arg("install").arg(&dir).output().expect("run install");
    assert!(out.status.success(), "{}", stderr(&out));
    let installed = dir.join("akv-env");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&installed)
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777,
        0o555
    );
    assert_eq!(
        std::fs::read(&installed).expect("read"),
        std::fs::read(BIN).expect("read")
    );
    let version = std::process::Command::new(&installed)
        .arg("--version")
        .output()
        .expect("run installed");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("akv-env {}\n", env!("CARGO_PKG_VERSION"))
    );
}
