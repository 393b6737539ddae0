//! The kubelet stand-in runs a stored injected pod with the real akv-env: the application
//! sees the secrets; a service account the identity does not trust gets none.

use akv_e2e::kubelet::Kubelet;
use serde_json::{json, Value};

use crate::bed::{Ctx, CLIENT_ID, ENV_IMAGE, NS_A};
use crate::checks::assert_no_secret;
use crate::objects::{in_ns, pod, shop_template};

pub(crate) fn kubelet(ctx: &Ctx) -> Kubelet {
    Kubelet::new(ctx.k.clone(), &ctx.work.path().join("kubelet"))
        .image_file(ENV_IMAGE, "/usr/local/bin/akv-env", &ctx.akv_env)
        .image_env("SSL_CERT_FILE", ctx.kv.path("AKV_TESTBED_CA"))
}

pub(crate) fn app_sees_the_secrets(ctx: &mut Ctx) {
    let kubelet = kubelet(ctx);
    let pods = ctx
        .k
        .json(&["-n", NS_A, "get", "pods", "-l", "app=shop-api"]);
    let p = &pods["items"][0];
    let runs = kubelet.run_pod(p);
    let summary: Vec<String> = runs
        .iter()
        .map(|r| format!("{} {}: {}", r.name, r.output.status, r.stderr().trim()))
        .collect();
    assert_eq!(
        runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["akv-injector-install", "migrate", "api", "sidecar"],
        "{summary:#?}"
    );
    for r in &runs {
        assert!(
            r.output.status.success(),
            "container {}:\n{summary:#?}",
            r.name
        );
    }
    let installed = kubelet.volume_dir(p, "akv-injector").join("akv-env");
    assert!(
        installed.is_file(),
        "akv-env install wrote no {}",
        installed.display()
    );

    let out = kubelet.volume_dir(p, "out");
    let seen = |file: &str| -> Value {
        let text = std::fs::read_to_string(out.join(file))
            .unwrap_or_else(|e| panic!("the application did not write {file} ({e}): {summary:#?}"));
        serde_json::from_str(&text).expect("app JSON")
    };
    let api = seen("api.json");
    let s = &ctx.secrets;
    let env = &api["env"];
    assert_eq!(env["DB_PASSWORD"], s["db-password"].as_str());
    assert_eq!(
        env["DATABASE_URL"],
        format!("postgres://shop:{}@db:5432/shop", s["db-password"])
    );
    assert_eq!(env["PARTNER_TOKEN"], s["partner-token"].as_str());
    assert_eq!(env["STRIPE_KEY"], s["stripe-key"].as_str());
    assert_eq!(env["LOG_LEVEL"], "info");
    assert_eq!(env["AZURE_CLIENT_ID"], CLIENT_ID);
    let own: Vec<&String> = env
        .as_object()
        .expect("env")
        .keys()
        .filter(|k| k.starts_with("AKV_INJECTOR_"))
        .collect();
    assert!(
        own.is_empty(),
        "akv-env left {own:?} in the application's env"
    );
    // argv after the kubelet's $(VAR) expansion: whole references and ${akv:...} are
    // resolved; a value that merely contains akv: is left alone (the contract).
    assert_eq!(
        api["argv"],
        json!([
            s["db-password"],
            format!("--url=postgres://shop:{}@db:5432/shop", s["db-password"]),
            "--not-a-reference=akv:db-password",
            "--port",
            "8080"
        ])
    );
    let sidecar = seen("sidecar.json");
    assert_eq!(sidecar["env"]["STRIPE_KEY"], s["stripe-key"].as_str());

    // A pod whose service account is not trusted by the identity's federated credential:
    // same identity claimed through its annotation, different subject.
    ctx.k.apply_ok(&json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "intruder", "namespace": NS_A,
                     "annotations": {"azure.workload.identity/client-id": CLIENT_ID}},
    }));
    let mut t = shop_template(ctx, "intruder");
    t["spec"]["containers"][0]["command"][3] = json!("/out/intruder.json");
    t["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .truncate(1);
    ctx.k.apply_ok(&in_ns(&pod("intruder", &t), NS_A));
    let p = ctx.k.json(&["-n", NS_A, "get", "pod", "intruder"]);
    let runs = kubelet.run_pod(&p);
    let api = runs.iter().find(|r| r.name == "api").expect("api ran");
    let err = api.stderr();
    eprintln!(
        "e2e:      untrusted service account, akv-env said: {}",
        err.trim()
    );
    assert!(
        !api.output.status.success(),
        "akv-env succeeded for an untrusted service account"
    );
    assert!(
        !kubelet.volume_dir(&p, "out").join("intruder.json").exists(),
        "the application started"
    );
    assert!(err.contains(CLIENT_ID), "stderr names the client id: {err}");
    assert!(
        err.contains("AADSTS700213") || err.contains("federated"),
        "stderr gives the token endpoint's reason: {err}"
    );
    assert_no_secret(ctx, &err, "akv-env's stderr");
}
