//! Restart on change (issue 15) on the real node: a pod with `akv-injector.io/refresh: 1m`
//! (the shortest interval the annotation admits, through the webhook as a user writes it)
//! runs its app under akv-env; a secret rotated in the vault makes akv-env stop the app and
//! exit 75, the kubelet restarts the container, and the new start sees the new value.

use std::time::Instant;

use akv_e2e::app_output::{digest, parse_printed};
use serde_json::{json, Value};

use crate::bed::Ctx;
use crate::checks::assert_no_secret;
use crate::node_pods::{
    app_container, logs, node_template, status_of, wait_pod, NODE_SA, NS_NODE, PRINT_DIGESTS,
};
use crate::objects::{in_ns, pod};

/// akv-env's exit status when it restarts the application for a new version.
const EXIT_RESTART: u64 = 75;

pub(crate) fn rotated_secret_restarts_the_container(ctx: &mut Ctx) {
    let first = format!("refresh-1-{}", akv_testkit::random_hex(12));
    let second = format!("refresh-2-{}", akv_testkit::random_hex(12));
    ctx.secrets.insert("refresh-first", first.clone());
    ctx.secrets.insert("refresh-second", second.clone());
    ctx.kv.secret("node", "refreshing", &first);
    let env = json!([{"name": "API_KEY", "value": "akv:refreshing"}]);
    // A long-running app: prints what it saw, then waits to be stopped.
    let command = json!([
        "/bin/sh",
        "-c",
        format!("/bin/sh {PRINT_DIGESTS} && exec sleep 3600")
    ]);
    let c = app_container(
        ctx,
        "app",
        Some(command),
        env,
        "API_KEY AKV_INJECTOR_REFRESH",
    );
    let mut t = node_template(ctx, NODE_SA, "Always", json!([c]));
    t["metadata"]["annotations"]["akv-injector.io/refresh"] = json!("1m");
    let name = "refreshing";
    let t0 = Instant::now();
    ctx.k.apply_ok(&in_ns(&pod(name, &t), NS_NODE));
    let seen = |ctx: &Ctx| parse_printed(&logs(ctx, name, "app", false));
    let (d1, d2) = (digest(&first), digest(&second));
    wait_pod(
        ctx,
        name,
        120,
        "a first run that saw the first value",
        |_| (seen(ctx).digests.get("API_KEY") == Some(&d1)).then_some(()),
    );
    let p = seen(ctx);
    assert_eq!(
        p.digests.get("AKV_INJECTOR_REFRESH").map(String::as_str),
        Some("unset"),
        "akv-env's setting reached the app: {p:?}"
    );
    assert_ne!(
        p.pid_line.as_deref(),
        Some("pid=1 uid=65532"),
        "with refresh the app is akv-env's child, not PID 1: {p:?}"
    );
    let restarts = |p: &Value| status_of(p, "app")["restartCount"].as_u64().unwrap_or(0);
    let before = restarts(&ctx.k.json(&["-n", NS_NODE, "get", "pod", name]));
    ctx.kv.secret("node", "refreshing", &second);
    let rotated = Instant::now();
    // The first check comes one interval (60 s ± 10 %) after the start; then the kubelet's
    // restart back-off (10 s for a first restart).
    let p = wait_pod(ctx, name, 150, "a restart that saw the new value", |p| {
        (restarts(p) > before && seen(ctx).digests.get("API_KEY") == Some(&d2)).then(|| p.clone())
    });
    let s = status_of(&p, "app");
    assert_eq!(
        s["lastState"]["terminated"]["exitCode"], EXIT_RESTART,
        "the restarted run ended with akv-env's restart status: {s}"
    );
    let previous = logs(ctx, name, "app", true);
    assert_no_secret(ctx, &previous, "the log of the restarted run");
    let line = previous
        .lines()
        .find(|l| l.contains("has a new version"))
        .unwrap_or_else(|| panic!("akv-env did not say why it restarted: {previous}"));
    assert!(line.contains("refreshing"), "{line}");
    eprintln!(
        "e2e:      {line}\ne2e:      restarted {:.1}s after the rotation ({:.1}s after creation)",
        rotated.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    ctx.k
        .ok(&["-n", NS_NODE, "delete", "pod", name, "--wait=false"]);
}
