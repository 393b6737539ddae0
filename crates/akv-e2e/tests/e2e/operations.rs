//! Operating the webhook: the API server while it is down and back up, and the shipped
//! manifests with the certs script's overlay.

use std::process::Command;
use std::time::Duration;

use akv_e2e::repo;
use base64::Engine as _;
use serde_json::json;

use crate::bed::{make_certs, Ctx, NS_A, NS_PLAIN, OUR_CONFIG, OUR_WEBHOOK};
use crate::checks::check_injected;
use crate::objects::{deployment, in_ns, pod, shop_template};

pub(crate) fn webhook_down(ctx: &mut Ctx) {
    let template = shop_template(ctx, "shop-api");
    ctx.webhook.stop();
    let out = ctx
        .k
        .apply(&in_ns(&pod("while-down", &template), NS_A), &[]);
    assert!(
        !out.ok,
        "a pod was admitted in an opted-in namespace with the webhook down"
    );
    assert!(
        out.stderr
            .contains(&format!("failed calling webhook \"{OUR_WEBHOOK}\""))
            && out.stderr.contains("connection refused"),
        "{}",
        out.stderr
    );
    eprintln!("e2e:      webhook down: {}", out.stderr.trim());
    // A Deployment created meanwhile gets its pods once the webhook is back.
    ctx.k
        .apply_ok(&in_ns(&deployment("shop-later", 1, &template), NS_A));
    // Other namespaces are not affected.
    ctx.k
        .apply_ok(&in_ns(&pod("while-down", &template), NS_PLAIN));
    std::thread::sleep(Duration::from_secs(1));
    let none = ctx
        .k
        .json(&["-n", NS_A, "get", "pods", "-l", "app=shop-later"]);
    assert_eq!(none["items"], json!([]));

    ctx.webhook.resume();
    ctx.k
        .apply_ok(&in_ns(&pod("after-restart", &template), NS_A));
    let p = ctx.k.json(&["-n", NS_A, "get", "pod", "after-restart"]);
    check_injected(ctx, &p, &template);
    // the ReplicaSet controller retries with backoff
    let pods = ctx.k.wait_pods(NS_A, "app=shop-later", 1);
    assert_eq!(
        pods[0]["metadata"]["annotations"]["akv-injector.io/status"],
        "injected"
    );
}

pub(crate) fn manifests(ctx: &mut Ctx) {
    // The shipped configuration replaces ours (same name) and points at a Service that
    // nothing routes to: remove ours first; pod creation is not tested after this step.
    ctx.k.ok(&[
        "delete",
        "mutatingwebhookconfiguration",
        OUR_CONFIG,
        "--wait",
    ]);
    // A copy of manifests/, and the certs script writing its overlay into the copy:
    // nothing is written into the repository.
    let copy = ctx.work.path().join("manifests");
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo().join("manifests"))
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    let tls = copy.join("tls");
    make_certs(&tls, &[], &copy.join("base"));
    let copy_s = copy.to_str().expect("utf-8");
    let tls_s = tls.to_str().expect("utf-8");

    // The base, applied for real (a server dry run of it cannot work: the namespace it
    // creates would not exist for the namespaced objects), with strict server-side
    // field validation.
    let out = ctx
        .k
        .run(&["apply", "--validate=strict", "-k", copy_s], None);
    assert!(out.ok, "kubectl apply -k manifests/:\n{}", out.stderr);
    eprintln!(
        "e2e:      kubectl apply -k manifests/:\n{}",
        out.stdout.trim_end()
    );
    // The certs overlay: first a server dry run (the namespace exists now), then for real.
    let out = ctx.k.run(
        &[
            "apply",
            "--validate=strict",
            "--dry-run=server",
            "-k",
            tls_s,
        ],
        None,
    );
    assert!(
        out.ok,
        "kubectl apply --dry-run=server -k manifests/tls:\n{}",
        out.stderr
    );
    let out = ctx
        .k
        .run(&["apply", "--validate=strict", "-k", tls_s], None);
    assert!(out.ok, "kubectl apply -k manifests/tls:\n{}", out.stderr);

    let mwc = ctx
        .k
        .json(&["get", "mutatingwebhookconfiguration", OUR_CONFIG]);
    let bundle = std::fs::read(tls.join("ca-bundle.crt")).expect("ca-bundle.crt");
    assert_eq!(
        mwc["webhooks"][0]["clientConfig"]["caBundle"],
        base64::engine::general_purpose::STANDARD.encode(bundle),
        "caBundle from the certs script"
    );
    assert_eq!(
        mwc["webhooks"][0]["clientConfig"]["service"]["name"],
        "akv-webhook"
    );
    let secret = ctx
        .k
        .json(&["-n", "akv-injector", "get", "secret", "akv-webhook-tls"]);
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let crt = std::fs::read(tls.join("tls.crt")).expect("tls.crt");
    assert_eq!(
        secret["data"]["tls.crt"],
        base64::engine::general_purpose::STANDARD.encode(crt)
    );
    // The webhook's own Deployment gets its pods in its `restricted` namespace.
    let pods = ctx
        .k
        .wait_pods("akv-injector", "app.kubernetes.io/name=akv-webhook", 2);
    for p in &pods {
        assert!(p["metadata"]["annotations"]
            .get("akv-injector.io/status")
            .is_none());
    }
    let out = ctx.k.run(&["delete", "-k", tls_s, "--wait=false"], None);
    assert!(out.ok, "kubectl delete -k manifests/tls:\n{}", out.stderr);
}
