//! The Key Vault harness against the real service's recordings (../shared/vectors/keyvault/),
//! the production challenge path (a real Key Vault host name resolved to loopback inside
//! the test, through akv-env's library seam `AzureSource::with_http`), tokens only for Key
//! Vault audiences, and akv-env's read limits.

mod common;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use akv_env::config::EnvConfig;
use akv_env::keyvault::http::HttpSetup;
use akv_env::keyvault::AzureSource;
use akv_env::plan::Plan;
use common::*;
use serde_json::{json, Value};

// ---- helpers --------------------------------------------------------------------------

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/keyvault")
}

/// The recording's entries as (status, headers, body), headers with lower-case names.
fn recording(file: &str) -> Vec<(u64, Value, Value)> {
    let path = vectors().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read the recording {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("recording json");
    let entries = doc["Entries"]
        .as_array()
        .or_else(|| doc["recordings"].as_array())
        .expect("entries");
    entries
        .iter()
        .map(|e| {
            let status = e["StatusCode"]
                .as_u64()
                .or(e["status"].as_u64())
                .expect("status");
            let headers = e
                .get("ResponseHeaders")
                .or(e.get("responseHeaders"))
                .expect("headers");
            let headers: serde_json::Map<String, Value> = headers
                .as_object()
                .expect("headers")
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            let body = e
                .get("ResponseBody")
                .or(e.get("response"))
                .cloned()
                .unwrap_or(Value::Null);
            let body = match body {
                Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
                other => other,
            };
            (status, Value::Object(headers), body)
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A plain HTTPS client that trusts the test CAs and resolves `resolve` to loopback.
fn https(resolve: &[(String, SocketAddr)]) -> reqwest::Client {
    // The provider akv-env uses; set here too, whichever test runs first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    for pem in roots() {
        b = b.tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).expect("ca"));
    }
    for (host, addr) in resolve {
        b = b.resolve(host, *addr);
    }
    b.build().expect("client")
}

/// GET url → (status, www-authenticate, body as JSON).
fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, String, Value) {
    runtime().block_on(async {
        let mut req = client.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let rsp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = rsp.status().as_u16();
        let challenge = rsp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = rsp.bytes().await.expect("body");
        (
            status,
            challenge,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    })
}

/// An access token for `pod`, from the harness's token endpoint (the exchange akv-env makes).
fn access_token(tb: &Testbed, pod: &Pod, scope: &str) -> String {
    let assertion = std::fs::read_to_string(&pod.token_file).expect("token file");
    let body = format!(
        "client_assertion={assertion}&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_id={}&grant_type=client_credentials&scope={scope}",
        pod.client_id
    );
    let url = format!(
        "https://localhost:{}/{}/oauth2/v2.0/token",
        tb.token, pod.tenant_id
    );
    runtime().block_on(async {
        let rsp = https(&[])
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("token request");
        let v: Value = serde_json::from_slice(&rsp.bytes().await.expect("body")).expect("json");
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    })
}

/// A test CA and a wildcard server certificate for every Key Vault and Managed HSM
/// suffix, made once per test run with openssl.
struct NamedTls {
    ca: Vec<u8>,
    cert: String,
    key: String,
}

fn named_tls() -> &'static NamedTls {
    static TLS: OnceLock<NamedTls> = OnceLock::new();
    TLS.get_or_init(|| {
        let tb = testbed();
        let dir = std::env::temp_dir().join(format!("akv-env-named-tls-{}", random_hex(10)));
        std::fs::create_dir_all(&dir).expect("dir");
        let o = |args: &[&str]| openssl(tb, &dir, args);
        self_signed(
            tb,
            &dir,
            "ca.key",
            "ca.pem",
            "/CN=akv-env named vault test CA",
            &[
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        );
        o(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=vault.azure.net",
        ]);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:*.vault.azure.net,DNS:*.vault.azure.cn,DNS:*.vault.usgovcloudapi.net,DNS:*.vault.microsoftazure.de,DNS:*.managedhsm.azure.net\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write");
        o(&[
            "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf",
        ]);
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("read");
        NamedTls {
            ca: read("ca.pem").into_bytes(),
            cert: read("server.pem"),
            key: read("server.key"),
        }
    })
}

fn roots() -> Vec<Vec<u8>> {
    let tb = testbed();
    vec![
        std::fs::read(tb.path("AKV_TESTBED_CA")).expect("testbed ca"),
        named_tls().ca.clone(),
    ]
}

/// A new harness vault named `host` (a real Key Vault host name) with a fresh name;
/// returns (control name, its loopback address).
fn named_vault(host: &str) -> (String, SocketAddr) {
    let tb = testbed();
    let tls = named_tls();
    let name = unique("named");
    let port = tb.control(
        "/vault-add",
        json!({"name": name, "hostname": host, "cert": tls.cert, "key": tls.key}),
    )["port"]
        .as_u64()
        .expect("port") as u16;
    (name, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A new harness vault at 127.0.0.1:PORT (an operator-allowed host): (name, https URL).
fn loopback_vault() -> (String, String) {
    let tb = testbed();
    let name = unique("lo");
    let port = tb.control("/vault-add", json!({"name": name}))["port"]
        .as_u64()
        .expect("port");
    (name, format!("https://127.0.0.1:{port}"))
}

/// Runs akv-env's library in this process for `vars` (env var → reference), with the
/// given HTTP set-up. Ok: env var → value; Err: the error text as akv-env prints it.
fn resolve_in_process(
    pod: &Pod,
    vars: &[(&str, &str)],
    http: &HttpSetup,
) -> Result<Vec<(String, String)>, String> {
    let env: Vec<(OsString, OsString)> = pod
        .env
        .iter()
        .map(|(k, v)| (k.into(), v.into()))
        .chain(vars.iter().map(|(k, v)| (k.into(), v.into())))
        .collect();
    let cfg = EnvConfig::from_env(&env).map_err(|e| e.to_string())?;
    let plan = Plan::build(&env, &[], cfg.default_vault.as_ref(), &cfg.hosts)
        .map_err(|e| e.to_string())?;
    let identity = cfg.identity().map_err(|e| e.to_string())?;
    let resolved = runtime().block_on(async {
        let source = AzureSource::with_http(&identity, &plan, cfg.timeout, http)
            .map_err(|e| e.to_string())?;
        akv_env::resolve::resolve(&plan, &source, cfg.ignore_missing, &identity.client_id)
            .await
            .map_err(|errors| {
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
    })?;
    Ok(vars
        .iter()
        .map(|(k, v)| {
            let r: akv_core::Reference = v.parse().expect("reference");
            (
                k.to_string(),
                resolved
                    .values
                    .text(&r, cfg.default_vault.as_ref())
                    .expect("text")
                    .to_string(),
            )
        })
        .collect())
}

/// Token requests the harness received from `client_id`, by scope.
fn scopes(tb: &Testbed, client_id: &str) -> Value {
    tb.stats()["scopes"][client_id].clone()
}

fn setup_for(host: &str, addr: SocketAddr) -> HttpSetup {
    HttpSetup {
        resolve: vec![(host.to_string(), addr)],
        extra_roots_pem: roots(),
    }
}

// ---- issue 9 item 3: the harness answers as the recordings show ----------------------

#[test]
fn challenge_names_the_vault_tenant_as_recorded() {
    let tb = testbed();
    let (status, headers, body) = recording("net-secrets-GetSecretWithVersion.json")
        .into_iter()
        .next()
        .expect("first entry");
    assert_eq!(status, 401);
    let recorded_tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let want = headers["www-authenticate"]
        .as_str()
        .expect("challenge")
        .replace(recorded_tenant, &tb.tenant);
    let url = format!(
        "{}/secrets/{}?api-version=2025-07-01",
        tb.vault_url("a"),
        unique("x")
    );
    let (got_status, challenge, got_body) = get(&https(&[]), &url, None);
    assert_eq!(got_status, 401);
    assert_eq!(challenge, want);
    assert_eq!(
        challenge,
        format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"https://vault.azure.net\"",
            tb.tenant
        )
    );
    assert_eq!(got_body, body, "the recorded body text");
}

#[test]
fn token_from_another_tenant_or_issuer_is_refused_like_the_service() {
    let tb = testbed();
    let other = guid();
    for (pod, found) in [
        (
            Pod::with_identity(tb, &other, json!({})),
            format!("https://sts.windows.net/{other}/"),
        ),
        (
            Pod::with_identity(
                tb,
                &tb.tenant,
                json!({"issuer": "https://sts.chinacloudapi.cn/x/"}),
            ),
            "https://sts.chinacloudapi.cn/x/".to_string(),
        ),
    ] {
        pod.grant(tb, "a");
        let s = unique("s");
        tb.secret("a", &s, "v");
        let r = format!("akv:{s}");
        let (out, seen, _) = pod.run_app(tb, &[("S", &r)], &[]);
        assert!(!out.status.success());
        assert!(seen.is_none());
        let err = stderr(&out);
        let want = format!(
            "HTTP 401 (Unauthorized): AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{t}/, https://login.microsoftonline.com/{t}/v2.0, found {found}",
            t = tb.tenant
        );
        assert!(err.contains(&want), "{err}");
        assert!(
            err.contains("Hint: the vault did not accept the identity's token"),
            "{err}"
        );
        let (_, _, statuses) = tb.requests("a", &format!("/secrets/{s}"));
        assert_eq!(statuses.get("200"), None, "{statuses:?}");
    }
}

#[test]
fn certificate_by_version_has_no_policy_and_its_key_is_managed() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let dir = &pod.dir;
    self_signed(tb, dir, "k.pem", "c.pem", "/CN=default", &[]);
    openssl(
        tb,
        dir,
        &["x509", "-in", "c.pem", "-outform", "DER", "-out", "c.der"],
    );
    use base64::Engine as _;
    let cer = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(dir.join("c.der")).expect("der"));
    let pem_value = format!(
        "{}{}",
        std::fs::read_to_string(dir.join("k.pem")).expect("key"),
        std::fs::read_to_string(dir.join("c.pem")).expect("cert")
    );
    let name = unique("Tls");
    let version = tb.control(
        "/vault/a/certificate",
        json!({"name": name, "value": pem_value, "contentType": "application/x-pem-file", "cer": cer}),
    )["version"]
        .as_str()
        .expect("version")
        .to_string();
    let token = access_token(tb, &pod, "https://vault.azure.net/.default");
    let client = https(&[]);
    let base = tb.vault_url("a");
    let q = "?api-version=2025-07-01";
    let (s, _, latest) = get(
        &client,
        &format!("{base}/certificates/{name}/{q}"),
        Some(&token),
    );
    assert_eq!(s, 200);
    assert!(
        latest["policy"].is_object(),
        "latest has its policy: {latest}"
    );
    assert_eq!(
        latest["policy"]["secret_props"]["contentType"],
        "application/x-pem-file"
    );
    let (s, _, by_version) = get(
        &client,
        &format!("{base}/certificates/{name}/{version}{q}"),
        Some(&token),
    );
    assert_eq!(s, 200);
    assert!(by_version.get("policy").is_none(), "{by_version}");
    assert_eq!(by_version["cer"], latest["cer"]);
    // The shape of the recorded certificate bundle.
    let (_, _, recorded) = &recording("net-certs-DownloadLatestCertificate-pem.excerpt.json")[1];
    for field in ["id", "kid", "sid", "x5t", "cer", "attributes", "policy"] {
        assert!(
            recorded.get(field).is_some() && latest.get(field).is_some(),
            "{field}"
        );
    }
    // The managed key, latest and by version.
    for path in [format!("/keys/{name}"), format!("/keys/{name}/{version}")] {
        let (s, _, key) = get(&client, &format!("{base}{path}{q}"), Some(&token));
        assert_eq!(s, 200, "{path}");
        assert_eq!(key["managed"], json!(true), "{key}");
        assert_eq!(key["key"]["kty"], "RSA");
        assert_eq!(
            key["key"]["kid"],
            json!(format!("{base}/keys/{name}/{version}"))
        );
    }
    // Through akv-env: the certificate's #pubkey is its key's, as openssl reads it, and a
    // pinned version (no policy in the answer) still gives #cert and #key.
    let (r, rv, rk) = (
        format!("akv:{name}#pubkey"),
        format!("akv:{name}/{version}#cert"),
        format!("akv:{name}/{version}#key"),
    );
    let (out, seen, _) = pod.run_app(tb, &[("PUB", &r), ("CERT", &rv), ("KEY", &rk)], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = seen.expect("ran");
    assert_eq!(
        seen["env"]["PUB"].as_str(),
        Some(openssl(tb, dir, &["x509", "-in", "c.pem", "-pubkey", "-noout"]).as_str())
    );
    assert_eq!(
        seen["env"]["CERT"].as_str(),
        Some(openssl(tb, dir, &["x509", "-in", "c.pem"]).as_str())
    );
    assert_eq!(
        seen["env"]["KEY"].as_str(),
        Some(
            std::fs::read_to_string(dir.join("k.pem"))
                .expect("key")
                .as_str()
        )
    );
}

#[test]
fn disabled_secret_is_forbidden_as_recorded() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let name = unique("off");
    tb.control(
        "/vault/a/secret",
        json!({"name": name, "value": "hidden", "enabled": false}),
    );
    let (status, _, body) = recording("js-secrets-cant_get_a_disabled_secret-403.excerpt.json")
        .into_iter()
        .find(|(s, _, _)| *s == 403)
        .expect("the 403");
    let token = access_token(tb, &pod, "https://vault.azure.net/.default");
    let url = format!(
        "{}/secrets/{name}/?api-version=2025-07-01",
        tb.vault_url("a")
    );
    let (got, _, got_body) = get(&https(&[]), &url, Some(&token));
    assert_eq!((u64::from(got), got_body), (status, body));
    let r = format!("akv:{name}");
    let (out, seen, _) = pod.run_app(tb, &[("S", &r)], &[]);
    assert!(!out.status.success() && seen.is_none());
    let err = stderr(&out);
    assert!(
        err.contains("HTTP 403 (Forbidden/SecretDisabled): Operation get is not allowed on a disabled secret"),
        "{err}"
    );
    assert!(!err.contains("hidden"), "{err}");
}

#[test]
fn not_found_echoes_the_name_as_sent() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let (status, _, body) = recording("net-secrets-StartDeleteSecretNonExisting-404.json")
        .into_iter()
        .find(|(s, _, _)| *s == 404)
        .expect("the 404");
    let recorded = body["error"]["message"].as_str().expect("message");
    let name = format!("MiXeD-Case-{}", random_hex(6));
    let want = recorded.replace("1071842684", &name);
    let token = access_token(tb, &pod, "https://vault.azure.net/.default");
    let url = format!(
        "{}/secrets/{name}?api-version=2025-07-01",
        tb.vault_url("a")
    );
    let (got, _, got_body) = get(&https(&[]), &url, Some(&token));
    assert_eq!(u64::from(got), status);
    assert_eq!(
        got_body,
        json!({"error": {"code": "SecretNotFound", "message": want}})
    );
    // akv-env passes the text on, and sends the name as written (objects differing only in
    // case are still fetched once), so the user sees their own spelling.
    let r = format!("akv:{name}");
    let (out, _, _) = pod.run_app(tb, &[("S", &r)], &[]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot read secret '{name}'")),
        "{err}"
    );
    assert!(err.contains(&format!("HTTP 404 (SecretNotFound): A secret with (name/id) {name} was not found in this key vault.")), "{err}");
}

#[test]
fn unknown_api_version_is_a_bad_parameter() {
    let tb = testbed();
    for (version, want) in [
        ("9.9", Some("The specified version (9.9) is not recognized. Consider using the latest supported version (2025-07-01).")),
        ("2025-07-01", None),
        ("7.6-preview.1", None),
    ] {
        let url = format!(
            "{}/secrets/{}?api-version={version}",
            tb.vault_url("a"),
            unique("x")
        );
        let (status, _, body) = get(&https(&[]), &url, None);
        match want {
            Some(message) => {
                assert_eq!(status, 400, "{version}");
                assert_eq!(
                    body,
                    json!({"error": {"code": "BadParameter", "message": message}})
                );
            }
            // a known version gets as far as the challenge
            None => assert_eq!(status, 401, "{version}"),
        }
    }
}

// ---- issue 13: a Key Vault host gets its token on the first request ----------------------

#[test]
fn known_cloud_vault_gets_no_unauthenticated_request() {
    let tb = testbed();
    let host = format!("kv{}.vault.azure.net", random_hex(8));
    let (vault, addr) = named_vault(&host);
    let pod = Pod::new(tb);
    pod.grant(tb, &vault);
    let name = unique("db");
    tb.secret(&vault, &name, "p@ss");
    let r = format!("akv://{host}/{name}");
    let got = resolve_in_process(&pod, &[("DB", &r)], &setup_for(&host, addr)).expect("resolved");
    assert_eq!(got, vec![("DB".to_string(), "p@ss".to_string())]);
    assert_eq!(
        scopes(tb, &pod.client_id),
        json!({"https://vault.azure.net/.default": 1})
    );
    let (total, unauthenticated, statuses) = tb.requests(&vault, &format!("/secrets/{name}"));
    assert_eq!((total, unauthenticated), (1, 0), "{statuses:?}");
    assert_one_start(tb, &pod, &vault, 1);

    // Many objects at once: still no request without the token, not even the first.
    let pod = Pod::new(tb);
    pod.grant(tb, &vault);
    let refs: Vec<(String, String)> = (0..40)
        .map(|i| {
            let name = unique("db");
            tb.secret(&vault, &name, "v");
            (format!("DB{i}"), format!("akv://{host}/{name}"))
        })
        .collect();
    let (before, _) = totals(&tb.stats()["vaults"][&vault]);
    let got = resolve_in_process(&pod, &as_vars(&refs), &setup_for(&host, addr)).expect("resolved");
    assert_eq!(got.len(), 40);
    let (after, unauthenticated) = totals(&tb.stats()["vaults"][&vault]);
    assert_eq!((after - before, unauthenticated), (40, 0));
}

#[test]
fn a_known_cloud_vault_is_never_asked_which_token_it_wants() {
    // A challenge naming another resource is never seen: the audience comes from the host.
    let tb = testbed();
    let host = format!("kv{}.vault.azure.net", random_hex(8));
    let (vault, addr) = named_vault(&host);
    tb.control(
        &format!("/vault/{vault}/challenge"),
        json!({"resource": "https://management.azure.com"}),
    );
    let pod = Pod::new(tb);
    pod.grant(tb, &vault);
    let name = unique("db");
    tb.secret(&vault, &name, "v");
    let r = format!("akv://{host}/{name}");
    let got = resolve_in_process(&pod, &[("DB", &r)], &setup_for(&host, addr)).expect("resolved");
    assert_eq!(got[0].1, "v");
    assert_eq!(
        scopes(tb, &pod.client_id),
        json!({"https://vault.azure.net/.default": 1})
    );
    assert_eq!(tb.requests(&vault, &format!("/secrets/{name}")).1, 0);
}

#[test]
fn foreign_resource_challenge_is_refused_before_any_token() {
    // An operator-allowed host learns its audience from the challenge, and may name only
    // a Key Vault audience.
    let tb = testbed();
    for (resource, scope) in [
        (Some("https://management.azure.com"), None),
        (Some("https://graph.microsoft.com"), None),
        (Some("https://azure.net"), None),
        (None, Some("https://management.azure.com/.default")),
    ] {
        let (vault, url) = loopback_vault();
        tb.control(
            &format!("/vault/{vault}/challenge"),
            json!({"resource": resource, "scope": scope}),
        );
        let pod = Pod::new(tb);
        pod.grant(tb, &vault);
        let names: Vec<String> = (0..5).map(|_| unique("db")).collect();
        for name in &names {
            tb.secret(&vault, name, "v");
        }
        let refs: Vec<(String, String)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    format!("DB{i}"),
                    format!("akv://{}/{n}", url.trim_start_matches("https://")),
                )
            })
            .collect();
        let vars = as_vars(&refs);
        let err = resolve_in_process(
            &pod,
            &vars,
            &HttpSetup {
                resolve: vec![],
                extra_roots_pem: roots(),
            },
        )
        .expect_err("refused");
        let asked = resource
            .or(scope.map(|s| s.trim_end_matches("/.default")))
            .unwrap_or_default();
        assert!(
            err.contains(&format!("the server at 127.0.0.1 challenged for a token for '{asked}', which is not a Key Vault audience")),
            "{resource:?} {scope:?}: {err}"
        );
        assert!(err.contains("Hint: check the vault URL"), "{err}");
        assert_eq!(scopes(tb, &pod.client_id), Value::Null, "no token request");
        assert_eq!(tb.tokens(&pod.client_id), (0, 0));
        // One challenge for the vault, whatever the number of objects; nothing after it.
        let stats = tb.stats();
        let (total, unauthenticated) = totals(&stats["vaults"][&vault]);
        assert_eq!(
            (total, unauthenticated),
            (1, 1),
            "only one unauthenticated request"
        );
        assert_eq!(stats["connections"][&vault], json!(1), "one TLS connection");
    }
}

/// (requests, unauthenticated requests) over every path of one vault's stats.
fn totals(vault_stats: &Value) -> (u64, u64) {
    vault_stats
        .as_object()
        .map(|paths| {
            paths.values().fold((0, 0), |(t, u), s| {
                (
                    t + s["total"].as_u64().unwrap_or(0),
                    u + s["unauthenticated"].as_u64().unwrap_or(0),
                )
            })
        })
        .unwrap_or_default()
}

#[test]
fn a_start_costs_one_request_per_object_one_connection_per_vault_one_token() {
    let tb = testbed();
    // 3 vaults of 10 secrets, 1 vault of 60, 1 vault of 200 (all sent at once, on one
    // HTTP/2 connection opened during the token exchange).
    for (vaults, per_vault) in [(3usize, 10usize), (1, 60), (1, 200)] {
        let pod = Pod::new(tb);
        let mut resolve = vec![];
        let mut refs = vec![];
        let mut names = vec![];
        for _ in 0..vaults {
            let host = format!("kv{}.vault.azure.net", random_hex(8));
            let (vault, addr) = named_vault(&host);
            pod.grant(tb, &vault);
            resolve.push((host.clone(), addr));
            for _ in 0..per_vault {
                let name = unique("s");
                tb.secret(&vault, &name, &format!("value-of-{name}"));
                refs.push((format!("V{}", refs.len()), format!("akv://{host}/{name}")));
            }
            names.push(vault);
        }
        let vars = as_vars(&refs);
        let got = resolve_in_process(
            &pod,
            &vars,
            &HttpSetup {
                resolve,
                extra_roots_pem: roots(),
            },
        )
        .expect("resolved");
        assert_eq!(got.len(), vaults * per_vault);
        assert!(got.iter().all(|(_, v)| v.starts_with("value-of-")));
        for vault in &names {
            assert_one_start(tb, &pod, vault, per_vault as u64);
        }
    }
}

#[test]
fn an_allowed_host_costs_one_challenge_then_one_request_per_object_on_one_connection() {
    let tb = testbed();
    let (vault, url) = loopback_vault();
    let pod = Pod::new(tb);
    pod.grant(tb, &vault);
    let n = 30;
    let refs: Vec<(String, String)> = (0..n)
        .map(|i| {
            let name = unique("s");
            tb.secret(&vault, &name, &format!("value-of-{name}"));
            (
                format!("V{i}"),
                format!("akv://{}/{name}", url.trim_start_matches("https://")),
            )
        })
        .collect();
    let got = resolve_in_process(
        &pod,
        &as_vars(&refs),
        &HttpSetup {
            resolve: vec![],
            extra_roots_pem: roots(),
        },
    )
    .expect("resolved");
    assert!(got.iter().all(|(_, v)| v.starts_with("value-of-")));
    let stats = tb.stats();
    assert_eq!(
        totals(&stats["vaults"][&vault]),
        (n + 1, 1),
        "one challenge"
    );
    assert_eq!(stats["connections"][&vault], json!(1), "one TLS connection");
    assert_eq!(tb.tokens(&pod.client_id), (1, 0));
}

#[test]
fn a_vault_without_http2_is_read_over_http1() {
    // A proxy that offers only HTTP/1.1: akv-env's own connection is HTTP/2 only, so the
    // requests go through the shared HTTP/1.1 client instead.
    let tb = testbed();
    let name = unique("h1");
    let port = tb.control("/vault-add", json!({"name": name, "http1Only": true}))["port"]
        .as_u64()
        .expect("port");
    let url = format!("127.0.0.1:{port}");
    let pod = Pod::new(tb);
    pod.grant(tb, &name);
    let n = 12;
    let refs: Vec<(String, String)> = (0..n)
        .map(|i| {
            let s = unique("s");
            tb.secret(&name, &s, &format!("value-of-{s}"));
            (format!("V{i}"), format!("akv://{url}/{s}"))
        })
        .collect();
    let got = resolve_in_process(
        &pod,
        &as_vars(&refs),
        &HttpSetup {
            resolve: vec![],
            extra_roots_pem: roots(),
        },
    )
    .expect("resolved over HTTP/1.1");
    for ((_, reference), (_, value)) in refs.iter().zip(&got) {
        let secret = reference.rsplit('/').next().expect("name");
        assert_eq!(value, &format!("value-of-{secret}"));
    }
    assert_eq!(totals(&tb.stats()["vaults"][&name]), (n + 1, 1));
    assert_eq!(tb.tokens(&pod.client_id), (1, 0));
}

/// What one start must have cost `vault`: `requests` authenticated requests over one TLS
/// connection, and one token for the pod's identity.
fn assert_one_start(tb: &Testbed, pod: &Pod, vault: &str, requests: u64) {
    let stats = tb.stats();
    assert_eq!(totals(&stats["vaults"][vault]), (requests, 0), "{vault}");
    assert_eq!(
        stats["connections"][vault],
        json!(1),
        "one TLS connection to {vault}"
    );
    assert_eq!(
        tb.tokens(&pod.client_id),
        (1, 0),
        "one token for the identity"
    );
}

/// `(name, reference)` pairs as the `vars` of [`resolve_in_process`].
fn as_vars(refs: &[(String, String)]) -> Vec<(&str, &str)> {
    refs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn a_storm_of_429_does_not_multiply_token_requests() {
    let tb = testbed();
    let host = format!("kv{}.vault.azure.net", random_hex(8));
    let (vault, addr) = named_vault(&host);
    let pod = Pod::new(tb);
    pod.grant(tb, &vault);
    let n = 200;
    let refs: Vec<(String, String)> = (0..n)
        .map(|i| {
            let name = unique("s");
            tb.secret(&vault, &name, "v");
            (format!("V{i}"), format!("akv://{host}/{name}"))
        })
        .collect();
    // Every object is throttled twice before it is served.
    tb.fault(
        &vault,
        "*",
        json!({"status": 429, "retryAfter": 0, "times": 2 * n}),
    );
    let vars = as_vars(&refs);
    let got = resolve_in_process(&pod, &vars, &setup_for(&host, addr)).expect("resolved");
    assert_eq!(got.len(), n);
    // Each throttled answer is retried with the token already held.
    assert_one_start(tb, &pod, &vault, 3 * n as u64);
}

// ---- issue 20 item 6: only Key Vault tokens ---------------------------------------------

#[test]
fn each_cloud_gets_its_own_audience() {
    let tb = testbed();
    for (suffix, audience) in [
        ("vault.azure.cn", "https://vault.azure.cn"),
        ("vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net"),
        ("vault.microsoftazure.de", "https://vault.microsoftazure.de"),
        ("managedhsm.azure.net", "https://managedhsm.azure.net"),
    ] {
        let host = format!("kv{}.{suffix}", random_hex(8));
        let (vault, addr) = named_vault(&host);
        let name = unique("s");
        tb.secret(&vault, &name, "cloud-value");
        let r = format!("akv://{host}/{name}");
        // Then with a challenge for another cloud's audience, which is never asked for.
        for challenge in [None, Some("https://vault.azure.net")] {
            if let Some(resource) = challenge {
                tb.control(
                    &format!("/vault/{vault}/challenge"),
                    json!({ "resource": resource }),
                );
            }
            let pod = Pod::new(tb);
            pod.grant(tb, &vault);
            let got = resolve_in_process(&pod, &[("S", &r)], &setup_for(&host, addr))
                .unwrap_or_else(|e| panic!("{host}: {e}"));
            assert_eq!(got[0].1, "cloud-value", "{host}");
            assert_eq!(
                scopes(tb, &pod.client_id),
                json!({ format!("{audience}/.default"): 1 }),
                "{host}"
            );
        }
    }
}

#[test]
fn allowed_host_gets_only_key_vault_tokens() {
    let tb = testbed();
    for resource in [
        "https://management.azure.com",
        "https://graph.microsoft.com",
    ] {
        let (vault, url) = loopback_vault();
        tb.control(
            &format!("/vault/{vault}/challenge"),
            json!({"resource": resource}),
        );
        let pod = Pod::new(tb);
        pod.grant(tb, &vault);
        let name = unique("s");
        tb.secret(&vault, &name, "never-sent");
        let r = format!("akv://{}/{name}", url.trim_start_matches("https://"));
        let (out, seen, _) = pod.run_app(tb, &[("S", &r)], &[]);
        assert!(!out.status.success() && seen.is_none());
        let err = stderr(&out);
        assert!(
            err.contains(&format!("cannot read secret '{name}' (latest version) from vault {url}"))
                && err.contains(&format!("the server at 127.0.0.1 challenged for a token for '{resource}', which is not a Key Vault audience (https://vault.azure.net, https://vault.azure.cn, https://vault.usgovcloudapi.net, https://vault.microsoftazure.de, https://managedhsm.azure.net)")),
            "{err}"
        );
        assert_eq!(
            scopes(tb, &pod.client_id),
            Value::Null,
            "no token request: {err}"
        );
        assert_eq!(tb.tokens(&pod.client_id), (0, 0));
    }
    // The same host with Key Vault's own challenge works.
    let (vault, url) = loopback_vault();
    let pod = Pod::new(tb);
    pod.grant(tb, &vault);
    let name = unique("s");
    tb.secret(&vault, &name, "fine");
    let r = format!("akv://{}/{name}", url.trim_start_matches("https://"));
    let (out, seen, _) = pod.run_app(tb, &[("S", &r)], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(seen.expect("ran")["env"]["S"], "fine");
    assert_eq!(
        scopes(tb, &pod.client_id),
        json!({"https://vault.azure.net/.default": 1})
    );
}

// ---- issue 20 item 8: reads within limits -------------------------------------------------

/// Runs akv-env under /usr/bin/time -v: (output, peak RSS in KiB).
fn run_measured(tb: &Testbed, pod: &Pod, vars: &[(&str, &str)]) -> (std::process::Output, u64) {
    let time = "/usr/bin/time";
    assert!(
        Path::new(time).exists(),
        "{time} is missing: install GNU time (Debian: apt-get install time)"
    );
    let app = tb.app_path();
    let out = Command::new(time)
        .arg("-v")
        .arg(BIN)
        .arg("--")
        .args([
            tb.path("AKV_TESTBED_NODE"),
            app.as_str(),
            "dump",
            "/dev/null",
        ])
        .env_clear()
        .envs(pod.env.iter().cloned())
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run akv-env under time");
    let err = stderr(&out);
    let rss = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {err}"));
    (out, rss)
}

#[test]
fn oversized_answers_are_cut_and_named() {
    let tb = testbed();
    let pod = Pod::new(tb);
    pod.grant(tb, "a");
    let (declared, chunked, fine) = (unique("declared"), unique("chunked"), unique("fine"));
    for n in [&declared, &chunked, &fine] {
        tb.secret("a", n, "v");
    }
    let big = 256u64 * 1024 * 1024;
    tb.fault(
        "a",
        &format!("/secrets/{declared}"),
        json!({"hugeBody": {"bytes": big, "declared": true}}),
    );
    tb.fault(
        "a",
        &format!("/secrets/{chunked}"),
        json!({"hugeBody": {"bytes": big, "declared": false}}),
    );
    let (d, c, f) = (
        format!("akv:{declared}"),
        format!("akv:{chunked}"),
        format!("akv:{fine}"),
    );
    let started = Instant::now();
    let (out, rss) = run_measured(tb, &pod, &[("D", &d), ("C", &c), ("F", &f)]);
    eprintln!(
        "akv-env peak RSS with two 256 MiB answers: {rss} KiB ({:?})",
        started.elapsed()
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    for name in [&declared, &chunked] {
        assert!(
            err.contains(&format!("cannot read secret '{name}' (latest version)"))
                && err.contains("the answer from 127.0.0.1 is larger than 1024 KiB"),
            "{name}: {err}"
        );
    }
    assert!(!err.contains(&format!("secret '{fine}'")), "{err}");
    assert!(
        err.contains("Hint: check the vault URL and what is stored in the object"),
        "{err}"
    );
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB");
    assert!(started.elapsed() < Duration::from_secs(15));
    let (_, _, statuses) = tb.requests("a", &format!("/secrets/{declared}"));
    assert_eq!(statuses.get("huge"), Some(&1), "not retried: {statuses:?}");

    // The token endpoint's answer is capped too.
    let pod = Pod::with_identity(
        tb,
        &tb.tenant,
        json!({"hugeTokenBody": {"bytes": big, "declared": false}}),
    );
    pod.grant(tb, "a");
    let (out, rss) = run_measured(tb, &pod, &[("F", &f)]);
    eprintln!("akv-env peak RSS with a 256 MiB token answer: {rss} KiB");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("cannot read secret '{fine}'"))
            && err.contains("the answer from localhost is larger than 1024 KiB"),
        "{err}"
    );
    assert!(rss < 64 * 1024, "peak RSS {rss} KiB");
}

#[test]
fn token_file_is_read_within_limits() {
    let tb = testbed();
    let mut pod = Pod::new(tb);
    pod.grant(tb, "a");
    let s = unique("s");
    tb.secret("a", &s, "v");
    let fifo = pod.dir.join("fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo (coreutils)");
    assert!(made.success());
    let big = pod.dir.join("big-token");
    std::fs::write(&big, vec![b'e'; 64 * 1024 + 1]).expect("write");
    let r = format!("akv:{s}");
    for (path, why) in [
        (
            fifo.display().to_string(),
            "it is a named pipe (FIFO), not a regular file holding a service account token",
        ),
        (
            "/dev/zero".to_string(),
            "it is a character device, not a regular file holding a service account token",
        ),
        (
            big.display().to_string(),
            "it holds 65537 bytes, more than the 64 KiB a service account token can take",
        ),
    ] {
        pod.set("AZURE_FEDERATED_TOKEN_FILE", Some(&path));
        let started = Instant::now();
        let (out, seen, _) = pod.run_app(tb, &[("S", &r)], &[]);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path}: fails fast"
        );
        assert!(!out.status.success() && seen.is_none());
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!(
                "akv-env: cannot read the federated token file {path} (AZURE_FEDERATED_TOKEN_FILE): {why}"
            )),
            "{err}"
        );
    }
    assert_eq!(tb.tokens(&pod.client_id), (0, 0));
    assert_eq!(tb.requests("a", &format!("/secrets/{s}")).0, 0);
}
