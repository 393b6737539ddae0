//! The ACR token exchange with the webhook's workload identity, against a local fake of
//! Entra ID's token endpoint and ACR's `/oauth2/exchange` (HTTPS, a test CA). No real ACR
//! or Entra ID is reachable from the test machines, so this checks the requests we send
//! and how answers are read, not Azure's side.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use akv_testkit::pki::TestCa;
use akv_webhook::registry::oci::{http_client, parse_ca_pem};
use akv_webhook::registry::{
    AcrTokenSource, HostPattern, HostRules, RegistryOptions, WorkloadIdentity, WorkloadIdentityAcr,
};
use akv_webhook::server::{serve_listener, Tuning};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Fake {
    token_calls: AtomicUsize,
    exchange_calls: AtomicUsize,
    forms: Mutex<Vec<BTreeMap<String, String>>>,
    refuse_exchange: bool,
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() + 1 => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf8")
}

fn form(body: &Bytes) -> BTreeMap<String, String> {
    std::str::from_utf8(body)
        .expect("utf8")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

async fn token(State(fake): State<Arc<Fake>>, body: Bytes) -> (StatusCode, String) {
    fake.token_calls.fetch_add(1, Ordering::SeqCst);
    fake.forms.lock().expect("lock").push(form(&body));
    (
        StatusCode::OK,
        r#"{"token_type":"Bearer","expires_in":3600,"access_token":"entra-access-token"}"#.into(),
    )
}

async fn exchange(State(fake): State<Arc<Fake>>, body: Bytes) -> (StatusCode, String) {
    fake.exchange_calls.fetch_add(1, Ordering::SeqCst);
    fake.forms.lock().expect("lock").push(form(&body));
    if fake.refuse_exchange {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.into(),
        );
    }
    (
        StatusCode::OK,
        r#"{"refresh_token":"acr-refresh-token"}"#.into(),
    )
}

/// Serves the fake over HTTPS on a loopback port; returns `host:port` and the CA PEM.
async fn serve(fake: Arc<Fake>) -> (String, String, CancellationToken) {
    akv_webhook::tls::install_default_provider();
    let ca = TestCa::new("fake azure CA");
    let config = ca.leaf("fake azure", &["127.0.0.1"]).server_config();
    let ca_pem = ca.pem;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = Router::new()
        .route("/tenant-1/oauth2/v2.0/token", post(token))
        .route("/oauth2/exchange", post(exchange))
        .with_state(fake);
    let stop = CancellationToken::new();
    tokio::spawn(serve_listener(
        listener,
        Some(tokio_rustls::TlsAcceptor::from(config)),
        router,
        Tuning::default(),
        stop.clone(),
    ));
    (addr.to_string(), ca_pem, stop)
}

fn acr(host: &str, ca_pem: &str, token_file: &std::path::Path) -> WorkloadIdentityAcr {
    // The fake lives on loopback, which registry traffic may reach only when allowed.
    let options = RegistryOptions {
        hosts: HostRules {
            allow: vec![HostPattern::parse("127.0.0.1").expect("host")],
            ..HostRules::default()
        },
        ..RegistryOptions::default()
    };
    let roots = parse_ca_pem(ca_pem.as_bytes()).expect("ca");
    let identity = WorkloadIdentity {
        client_id: "client-1".into(),
        tenant_id: "tenant-1".into(),
        token_file: token_file.to_path_buf(),
        authority_host: format!("https://{host}/"),
    };
    WorkloadIdentityAcr::new(identity, http_client(&roots, &options).expect("http"))
}

#[tokio::test]
async fn exchanges_the_workload_identity_for_an_acr_refresh_token() {
    let fake = Arc::new(Fake::default());
    let (host, ca_pem, stop) = serve(Arc::clone(&fake)).await;
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "federated-sa-token").expect("write");
    let acr = acr(&host, &ca_pem, &token_file);
    for _ in 0..3 {
        let token = acr.refresh_token(&host).await.expect("token");
        assert_eq!(token, "acr-refresh-token");
    }
    assert_eq!(
        fake.token_calls.load(Ordering::SeqCst),
        1,
        "cached per registry"
    );
    assert_eq!(
        fake.exchange_calls.load(Ordering::SeqCst),
        1,
        "cached per registry"
    );
    let forms = fake.forms.lock().expect("lock").clone();
    let entra = &forms[0];
    assert_eq!(entra["client_id"], "client-1");
    assert_eq!(entra["grant_type"], "client_credentials");
    assert_eq!(
        entra["scope"],
        "https://containerregistry.azure.net/.default"
    );
    assert_eq!(entra["client_assertion"], "federated-sa-token");
    assert_eq!(
        entra["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let exchange = &forms[1];
    assert_eq!(exchange["grant_type"], "access_token");
    assert_eq!(exchange["service"], host);
    assert_eq!(exchange["tenant"], "tenant-1");
    assert_eq!(exchange["access_token"], "entra-access-token");
    stop.cancel();
}

#[tokio::test]
async fn a_refused_exchange_says_what_to_grant() {
    let fake = Arc::new(Fake {
        refuse_exchange: true,
        ..Fake::default()
    });
    let (host, ca_pem, stop) = serve(Arc::clone(&fake)).await;
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "federated-sa-token").expect("write");
    let err = acr(&host, &ca_pem, &token_file)
        .refresh_token(&host)
        .await
        .expect_err("refused");
    assert!(
        err.contains(
            "refused to exchange the webhook's Entra ID token (client id client-1): HTTP 401"
        ),
        "{err}"
    );
    assert!(err.contains("AcrPull"), "{err}");
    let missing = acr(&host, &ca_pem, &dir.path().join("absent"));
    let err = missing
        .refresh_token(&host)
        .await
        .expect_err("no token file");
    assert!(
        err.contains("cannot read the webhook's federated token file"),
        "{err}"
    );
    stop.cancel();
}
