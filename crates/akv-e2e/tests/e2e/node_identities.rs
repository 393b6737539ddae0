//! More identities (issue 16) on the real node: a service principal's secret and
//! certificate mapped from the team's own Secret, one client id per vault with workload
//! identity against two vaults that each trust only their own, and managed identity refused
//! by a webhook started without `--allow-managed-identity`. The app prints digests, never a
//! value; the harness counts the token requests per client id.

use akv_e2e::app_output::{digest, parse_printed, Printed};
use akv_testkit::ids::guid;
use akv_testkit::keyvault_bed::self_signed;
use serde_json::{json, Value};

use crate::bed::{Ctx, CLIENT_ID, DENIED};
use crate::checks::assert_no_secret;
use crate::node::{print_digests, wait_finished};
use crate::node_pods::{app_container, logs, node_template, status_of, NODE_SA, NS_NODE};
use crate::objects::{in_ns, pod};

/// The variables a service principal needs, which akv-env removes before the app starts.
const CREDENTIALS: &str = "AZURE_CLIENT_ID AZURE_TENANT_ID AZURE_CLIENT_SECRET AZURE_CLIENT_CERTIFICATE_PATH AKV_INJECTOR_AUTH";

/// Runs the one-shot pod `name` from `t`, waits until it ends, checks every container in
/// `containers` exited 0 with no secret in its log, and returns what each printed.
fn run_to_completion(ctx: &Ctx, name: &str, t: &Value, containers: &[&str]) -> Vec<Printed> {
    ctx.k.apply_ok(&in_ns(&pod(name, t), NS_NODE));
    let p = wait_finished(ctx, name, 180);
    let printed = containers
        .iter()
        .map(|c| {
            let log = logs(ctx, name, c, false);
            assert_no_secret(ctx, &log, &format!("the log of {name}/{c}"));
            let s = status_of(&p, c);
            assert_eq!(
                s["state"]["terminated"]["exitCode"], 0,
                "{name}/{c}: {s}\nlog:\n{log}"
            );
            parse_printed(&log)
        })
        .collect();
    ctx.k
        .ok(&["-n", NS_NODE, "delete", "pod", name, "--wait=false"]);
    printed
}

fn assert_removed(p: &Printed, who: &str) {
    for var in CREDENTIALS.split(' ') {
        assert_eq!(
            p.digests.get(var).map(String::as_str),
            Some("unset"),
            "{who}: {var} reached the app"
        );
    }
}

pub(crate) fn service_principal_secret_and_certificate(ctx: &mut Ctx) {
    let tenant = ctx.kv.tenant.clone();
    let (with_secret, with_cert) = (guid(), guid());
    let client_secret = format!("sp-secret-{}", akv_testkit::random_hex(16));
    ctx.secrets
        .insert("sp-client-secret", client_secret.clone());
    let dir = ctx.work.path().join("node-sp");
    std::fs::create_dir_all(&dir).expect("dir");
    self_signed(&ctx.kv, &dir, "sp.key", "sp.pem", "/CN=e2e-sp", &[]);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("read");
    let cert_pem = read("sp.pem");
    ctx.kv.control(
        "/service-principal",
        json!({"client_id": with_secret, "tenant": tenant, "secret": client_secret}),
    );
    ctx.kv.control(
        "/service-principal",
        json!({"client_id": with_cert, "tenant": tenant, "certs": [cert_pem]}),
    );
    ctx.kv.grant("node", &with_secret);
    ctx.kv.grant("node", &with_cert);
    // The team's own Secret: the client secret, and the certificate with its key.
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    ctx.k.apply_ok(&json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "web-sp", "namespace": NS_NODE},
        "data": {"client-secret": b64(&client_secret),
                 "cert.pem": b64(&format!("{}{cert_pem}", read("sp.key")))},
    }));

    let digest_vars = format!("DB_PASSWORD {CREDENTIALS}");
    let common = |client_id: &str, extra: Value| {
        let mut env = vec![
            json!({"name": "AZURE_CLIENT_ID", "value": client_id}),
            json!({"name": "AZURE_TENANT_ID", "value": tenant}),
            // No workload identity webhook here: the pod names Entra ID's address itself.
            json!({"name": "AZURE_AUTHORITY_HOST", "value": ctx.authority_host}),
            json!({"name": "DB_PASSWORD", "value": "akv:db-password"}),
        ];
        env.push(extra);
        Value::Array(env)
    };
    let secret_env = common(
        &with_secret,
        json!({"name": "AZURE_CLIENT_SECRET",
               "valueFrom": {"secretKeyRef": {"name": "web-sp", "key": "client-secret"}}}),
    );
    let cert_env = common(
        &with_cert,
        json!({"name": "AZURE_CLIENT_CERTIFICATE_PATH", "value": "/etc/sp/cert.pem"}),
    );
    let secret_c = app_container(
        ctx,
        "with-secret",
        Some(print_digests()),
        secret_env,
        &digest_vars,
    );
    let mut cert_c = app_container(
        ctx,
        "with-cert",
        Some(print_digests()),
        cert_env,
        &digest_vars,
    );
    cert_c["volumeMounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"name": "sp", "mountPath": "/etc/sp", "readOnly": true}));
    let mut t = node_template(ctx, NODE_SA, "Never", json!([secret_c, cert_c]));
    t["metadata"]["labels"] = json!({});
    t["metadata"]["annotations"]["akv-injector.io/auth"] = json!("service-principal");
    t["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .push(json!({"name": "sp", "secret": {"secretName": "web-sp", "items": [{"key": "cert.pem", "path": "cert.pem"}]}}));
    let seen = run_to_completion(ctx, "sp-pod", &t, &["with-secret", "with-cert"]);
    let db = digest(&ctx.secrets["db-password"]);
    for (p, who) in seen.iter().zip(["with-secret", "with-cert"]) {
        assert_eq!(p.digests.get("DB_PASSWORD"), Some(&db), "{who}: {p:?}");
        assert_removed(p, who);
    }
    assert_eq!(
        ctx.kv.tokens(&with_secret),
        (1, 0),
        "one token for the secret's principal"
    );
    assert_eq!(
        ctx.kv.tokens(&with_cert),
        (1, 0),
        "one token for the certificate's principal"
    );
    eprintln!("e2e:      service principal: a client secret from secretKeyRef and a certificate from a Secret volume each signed in once; no AZURE_* credential reached the app");
}

pub(crate) fn one_client_id_per_vault(ctx: &mut Ctx) {
    // A second app registration, trusted (federated) for the same service account, the only
    // reader of the second vault; CLIENT_ID reads only the first.
    let second = guid();
    let subject = format!("system:serviceaccount:{NS_NODE}:{NODE_SA}");
    ctx.kv.identity(&second, &ctx.kv.tenant, &subject);
    ctx.kv.grant("node2", &second);
    let partner = format!("partner-{}", akv_testkit::random_hex(16));
    ctx.kv.secret("node2", "partner-token", &partner);
    ctx.secrets.insert("node2-partner-token", partner.clone());
    let host2 = ctx.node_vault2.trim_start_matches("https://").to_string();
    let env = json!([
        {"name": "DB_PASSWORD", "value": "akv:db-password"},
        {"name": "PARTNER_TOKEN", "value": format!("akv://{host2}/partner-token")},
    ]);
    let c = app_container(
        ctx,
        "app",
        Some(print_digests()),
        env,
        "DB_PASSWORD PARTNER_TOKEN",
    );
    let mut t = node_template(ctx, NODE_SA, "Never", json!([c]));
    t["metadata"]["annotations"][format!("akv-injector.io/client-id.{host2}")] = json!(second);
    let before = ctx.kv.tokens(CLIENT_ID);
    let seen = run_to_completion(ctx, "two-vaults", &t, &["app"]);
    let p = &seen[0];
    assert_eq!(
        p.digests.get("DB_PASSWORD"),
        Some(&digest(&ctx.secrets["db-password"]))
    );
    assert_eq!(
        p.digests.get("PARTNER_TOKEN"),
        Some(&digest(&partner)),
        "{p:?}"
    );
    assert_eq!(
        ctx.kv.tokens(&second),
        (1, 0),
        "one token for the second vault's client id"
    );
    let after = ctx.kv.tokens(CLIENT_ID);
    assert_eq!(
        after.0,
        before.0 + 1,
        "one token for the pod's own client id"
    );
    eprintln!(
        "e2e:      {host2} read with its own client id, {} with the pod's: one token each",
        ctx.node_vault
    );
}

pub(crate) fn managed_identity_refused_without_the_flag(ctx: &mut Ctx) {
    // The node cannot run such a pod here: akv-env asks the fixed IMDS address, which no
    // test may reach. What the API server shows a user is the webhook's refusal.
    let env = json!([{"name": "DB_PASSWORD", "value": "akv:db-password"}]);
    let c = app_container(ctx, "app", Some(print_digests()), env, "DB_PASSWORD");
    let mut t = node_template(ctx, NODE_SA, "Never", json!([c]));
    t["metadata"]["annotations"]["akv-injector.io/auth"] = json!("managed-identity");
    let out = ctx.k.apply(&in_ns(&pod("node-identity", &t), NS_NODE), &[]);
    assert!(!out.ok, "a managed-identity pod was admitted");
    assert!(
        out.stderr.contains(DENIED) && out.stderr.contains("--allow-managed-identity"),
        "kubectl said:\n{}",
        out.stderr
    );
    eprintln!("e2e:      {}", out.stderr.trim());
}
