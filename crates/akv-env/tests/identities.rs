//! More identities against the test bed (issue 16): a service principal with a secret or
//! a certificate (PEM, PKCS#12 with a password) through the token endpoint's
//! client-credentials grant, the node's managed identity through the harness's loopback
//! IMDS (the `test-endpoints` build of akv-env), and one client id per vault with two
//! vaults that each trust only their own.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::{json, Value};

fn env_of(seen: &Value) -> BTreeMap<String, String> {
    seen["env"]
        .as_object()
        .expect("env")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// A pod whose identity is a service principal: the workload identity variables gone,
/// `AKV_INJECTOR_AUTH=service-principal`, and the principal registered with `creds`.
fn sp_pod(tb: &Testbed, creds: Value) -> Pod {
    let mut pod = Pod::new(tb);
    let client_id = guid();
    pod.client_id = client_id.clone();
    pod.set("AZURE_FEDERATED_TOKEN_FILE", None)
        .set("AZURE_CLIENT_ID", Some(&client_id))
        .set("AKV_INJECTOR_AUTH", Some("service-principal"));
    let mut body = json!({"client_id": pod.client_id, "tenant": pod.tenant_id});
    if let (Some(o), Some(c)) = (body.as_object_mut(), creds.as_object()) {
        o.extend(c.clone());
    }
    tb.control("/service-principal", body);
    pod.grant(tb, "a");
    pod
}

#[test]
fn service_principal_secret_resolves_and_its_variables_never_reach_the_app() {
    let tb = testbed();
    let pod = sp_pod(tb, json!({"secret": "s3cr3t-value"}));
    let name = unique("db");
    tb.secret("a", &name, "from-sp");
    let reference = format!("akv:{name}");
    let vars = [
        ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
        ("DB", reference.as_str()),
    ];
    let (out, seen, _) = pod.run_app(tb, &vars, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let env = env_of(&seen.expect("the app ran"));
    assert_eq!(env.get("DB").map(String::as_str), Some("from-sp"));
    for gone in [
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AKV_INJECTOR_AUTH",
    ] {
        assert!(!env.contains_key(gone), "{gone} reached the app");
    }
    assert_eq!(tb.tokens(&pod.client_id), (1, 0));

    // Kept when the pod asks for it.
    let keep = [
        ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
        ("DB", reference.as_str()),
        ("AKV_INJECTOR_KEEP_CREDENTIALS", "true"),
    ];
    let (out, seen, _) = pod.run_app(tb, &keep, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let env = env_of(&seen.expect("the app ran"));
    assert_eq!(
        env.get("AZURE_CLIENT_SECRET").map(String::as_str),
        Some("s3cr3t-value")
    );
    assert!(!env.contains_key("AKV_INJECTOR_KEEP_CREDENTIALS"));
}

#[test]
fn service_principal_secret_errors_name_the_kind_and_the_next_step() {
    let tb = testbed();
    let name = unique("db");
    tb.secret("a", &name, "x");
    let reference = format!("akv:{name}");
    let cases = [
        (
            json!({"secret": "right"}),
            "wrong",
            "AADSTS7000215",
            "Hint: AZURE_CLIENT_SECRET is not a secret of service principal",
        ),
        (
            json!({"secret": "old", "secretExpired": true}),
            "old",
            "AADSTS7000222",
            "Hint: the client secret of service principal",
        ),
    ];
    for (creds, given, code, hint) in cases {
        let pod = sp_pod(tb, creds);
        let (out, seen, _) = pod.run_app(
            tb,
            &[("AZURE_CLIENT_SECRET", given), ("DB", &reference)],
            &[],
        );
        let err = stderr(&out);
        assert!(!out.status.success() && seen.is_none(), "{err}");
        assert!(
            err.contains(&format!("as service principal client id {}", pod.client_id)),
            "{err}"
        );
        assert!(err.contains(code) && err.contains(hint), "{code}: {err}");
    }
}

/// A self-signed RSA certificate and key in `dir`: (cert PEM, key PEM).
fn certificate(tb: &Testbed, dir: &std::path::Path, stem: &str) -> (String, String) {
    let (key, cert) = (format!("{stem}.key"), format!("{stem}.pem"));
    self_signed(tb, dir, &key, &cert, &format!("/CN={stem}"), &[]);
    (
        std::fs::read_to_string(dir.join(&cert)).expect("cert"),
        std::fs::read_to_string(dir.join(&key)).expect("key"),
    )
}

#[test]
fn service_principal_certificate_pem_and_pkcs12_with_password() {
    let tb = testbed();
    let scratch = Pod::new(tb).dir;
    let (cert, key) = certificate(tb, &scratch, "sp");
    let pod = sp_pod(tb, json!({"certs": [cert]}));
    let name = unique("db");
    tb.secret("a", &name, "by-certificate");
    let reference = format!("akv:{name}");

    let pem_file = scratch.join("sp-with-key.pem");
    std::fs::write(&pem_file, format!("{key}{cert}")).expect("write");
    openssl(
        tb,
        &scratch,
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "sp.key",
            "-in",
            "sp.pem",
            "-passout",
            "pass:p12-pass",
            "-out",
            "sp.p12",
        ],
    );
    let p12_file = scratch.join("sp.p12");
    let before = tb.stats()["certificateAssertions"].as_u64().unwrap_or(0);
    for (file, password) in [(&pem_file, None), (&p12_file, Some("p12-pass"))] {
        let path = file.display().to_string();
        let mut vars = vec![
            ("AZURE_CLIENT_CERTIFICATE_PATH", path.as_str()),
            ("DB", reference.as_str()),
        ];
        if let Some(p) = password {
            vars.push(("AZURE_CLIENT_CERTIFICATE_PASSWORD", p));
        }
        let (out, seen, _) = pod.run_app(tb, &vars, &[]);
        assert!(out.status.success(), "{path}: {}", stderr(&out));
        let env = env_of(&seen.expect("the app ran"));
        assert_eq!(env.get("DB").map(String::as_str), Some("by-certificate"));
        assert!(!env.contains_key("AZURE_CLIENT_CERTIFICATE_PASSWORD"));
    }
    let after = tb.stats()["certificateAssertions"].as_u64().unwrap_or(0);
    assert_eq!(
        after - before,
        2,
        "the harness verified both assertions' signatures"
    );

    // A wrong password, and a certificate the app registration does not have.
    let path = p12_file.display().to_string();
    let (out, _, _) = pod.run_app(
        tb,
        &[
            ("AZURE_CLIENT_CERTIFICATE_PATH", &path),
            ("AZURE_CLIENT_CERTIFICATE_PASSWORD", "nope"),
            ("DB", &reference),
        ],
        &[],
    );
    let err = stderr(&out);
    assert!(
        !out.status.success()
            && err.contains("cannot use the certificate")
            && err.contains("does not open with the given password"),
        "{err}"
    );
    let (other_cert, other_key) = certificate(tb, &scratch, "other");
    let other = scratch.join("other-with-key.pem");
    std::fs::write(&other, format!("{other_key}{other_cert}")).expect("write");
    let other = other.display().to_string();
    let (out, _, _) = pod.run_app(
        tb,
        &[
            ("AZURE_CLIENT_CERTIFICATE_PATH", &other),
            ("DB", &reference),
        ],
        &[],
    );
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("AADSTS700027") && err.contains("Hint: the certificate in AZURE_CLIENT_CERTIFICATE_PATH is not registered on service principal"), "{err}");
}

#[test]
fn managed_identity_through_a_loopback_imds_never_tries_169_254() {
    let tb = testbed();
    let user = guid();
    tb.control("/managed-identity", json!({"client_id": user}));
    tb.grant("a", &user);
    let mut pod = Pod::new(tb);
    let imds = format!(
        "http://127.0.0.1:{}/metadata/identity/oauth2/token",
        tb.imds
    );
    pod.set("AZURE_FEDERATED_TOKEN_FILE", None)
        .set("AZURE_CLIENT_ID", None)
        .set("AKV_INJECTOR_AUTH", Some("managed-identity"))
        .set("AKV_ENV_TEST_IMDS_ENDPOINT", Some(&imds));
    let name = unique("db");
    tb.secret("a", &name, "from-imds");
    let reference = format!("akv:{name}");
    let (out, seen, _) = pod.run_app(
        tb,
        &[("AKV_INJECTOR_CLIENT_ID", &user), ("DB", &reference)],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        env_of(&seen.expect("ran")).get("DB").map(String::as_str),
        Some("from-imds")
    );
    assert_eq!(tb.tokens(&user), (1, 0));

    // Not assigned to the node: the hint says so.
    let stranger = guid();
    let (out, _, _) = pod.run_app(
        tb,
        &[("AKV_INJECTOR_CLIENT_ID", &stranger), ("DB", &reference)],
        &[],
    );
    let err = stderr(&out);
    assert!(
        !out.status.success()
            && err.contains(&format!("as managed identity client id {stranger}"))
            && err.contains("Identity not found")
            && err.contains("is not assigned to this node"),
        "{err}"
    );

    // Every connect() of akv-env, traced: loopback only, never 169.254.0.0/16.
    let strace = "/usr/bin/strace";
    assert!(
        std::path::Path::new(strace).exists(),
        "strace is needed for this test: apt-get install strace"
    );
    let trace = pod.dir.join("connect.trace");
    let cmd = pod.command(
        tb,
        &[("AKV_INJECTOR_CLIENT_ID", &user), ("DB", &reference)],
        &["/bin/true"],
    );
    let mut traced = std::process::Command::new(strace);
    traced
        .args(["-f", "-qq", "-e", "trace=connect", "-o"])
        .arg(&trace)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    let out = traced.output().expect("run strace");
    assert!(out.status.success(), "{}", stderr(&out));
    let log = std::fs::read_to_string(&trace).expect("trace");
    let inet: Vec<&str> = log.lines().filter(|l| l.contains("AF_INET")).collect();
    assert!(!inet.is_empty(), "strace saw no connect(): {log}");
    assert!(
        !log.contains("169.254."),
        "a connection to 169.254.0.0/16 was attempted:\n{log}"
    );
    assert!(
        inet.iter().all(|l| l.contains("127.0.0.")),
        "only loopback: {log}"
    );
}

#[test]
fn one_client_id_per_vault_each_trusted_by_its_own_vault() {
    let tb = testbed();
    let pod = Pod::new(tb);
    // A second app registration with a federated credential for the same service account.
    let second = guid();
    tb.identity(&second, &pod.tenant_id, &pod.subject);
    tb.grant("a", &pod.client_id);
    tb.grant("b", &second);
    let (a_name, b_name) = (unique("a"), unique("b"));
    tb.secret("a", &a_name, "from-a");
    tb.secret("b", &b_name, "from-b");
    let b_ref = format!("akv://{}/{b_name}", tb.vault_b_host());
    let a_ref = format!("akv:{a_name}");
    let ids = format!("{}={second}", tb.vault_url("b"));
    let (out, seen, _) = pod.run_app(
        tb,
        &[
            ("AKV_INJECTOR_VAULT_CLIENT_IDS", &ids),
            ("A", &a_ref),
            ("B", &b_ref),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let env = env_of(&seen.expect("ran"));
    assert_eq!((env["A"].as_str(), env["B"].as_str()), ("from-a", "from-b"));
    assert_eq!(
        tb.tokens(&pod.client_id),
        (1, 0),
        "one exchange per client id"
    );
    assert_eq!(tb.tokens(&second), (1, 0));

    // Without the per-vault client id, vault b refuses the pod's identity.
    let (out, _, _) = pod.run_app(tb, &[("B", &b_ref)], &[]);
    assert!(
        !out.status.success() && stderr(&out).contains("HTTP 403"),
        "{}",
        stderr(&out)
    );

    // A per-vault client id without a federated credential: the hint names the annotation.
    let missing = guid();
    tb.control("/identity", json!({"client_id": missing, "tenant": pod.tenant_id, "subject": "system:serviceaccount:other:sa"}));
    let ids = format!("{}={missing}", tb.vault_url("b"));
    let (out, _, _) = pod.run_app(
        tb,
        &[("AKV_INJECTOR_VAULT_CLIENT_IDS", &ids), ("B", &b_ref)],
        &[],
    );
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("AADSTS700213") && err.contains(&format!("Hint: client id {missing} is the one for this vault (annotation akv-injector.io/client-id.<VAULT>)")), "{err}");
}
