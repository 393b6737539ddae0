//! Our webhook registered as `manifests/base` says, and its order beside the Workload
//! Identity webhook's.

use std::panic::{catch_unwind, AssertUnwindSafe};

use akv_e2e::repo;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::bed::{Ctx, INJECT, NS_A, NS_B, OUR_CONFIG, OUR_WEBHOOK};
use crate::checks::check_injected;
use crate::objects::{deployment, in_ns, namespace_with_identity, shop_template};

/// The MutatingWebhookConfiguration of `manifests/base/mutatingwebhookconfiguration.yaml`,
/// parsed by kubectl (no YAML parser of our own), with ONLY `clientConfig` replaced:
/// `url: https://127.0.0.1:PORT/mutate` + `caBundle` instead of the in-cluster `service`.
/// That is the one difference from the shipped file, and it is forced by the test bed:
/// there is no kube-proxy (and no cluster network), so the API server cannot reach a
/// Service's ClusterIP; the webhook runs as a process on loopback.
pub(crate) fn our_registration(ctx: &Ctx) -> (Value, Value) {
    let file = repo().join("manifests/base/mutatingwebhookconfiguration.yaml");
    let shipped: Value = serde_json::from_str(&ctx.k.ok(&[
        "create",
        "--dry-run=client",
        "-o",
        "json",
        "-f",
        file.to_str().expect("utf-8"),
    ]))
    .expect("kubectl printed JSON");
    assert_eq!(shipped["metadata"]["name"], OUR_CONFIG);
    let hooks = shipped["webhooks"].as_array().expect("webhooks");
    assert_eq!(hooks.len(), 1, "one webhook in {}", file.display());
    assert_eq!(hooks[0]["name"], OUR_WEBHOOK);
    assert!(
        hooks[0]["clientConfig"]["service"].is_object(),
        "the shipped file keeps the in-cluster service reference"
    );
    let bundle = std::fs::read(ctx.certs.join("ca-bundle.crt")).expect("ca-bundle.crt");
    let mut ours = shipped.clone();
    ours["webhooks"][0]["clientConfig"] = json!({
        "url": ctx.webhook.url(),
        "caBundle": base64::engine::general_purpose::STANDARD.encode(bundle),
    });
    (shipped, ours)
}

pub(crate) fn register(ctx: &mut Ctx) {
    let (shipped, ours) = our_registration(ctx);
    ctx.k.apply_ok(&ours);
    let stored = ctx
        .k
        .json(&["get", "mutatingwebhookconfiguration", OUR_CONFIG]);
    let (want, got) = (&shipped["webhooks"][0], &stored["webhooks"][0]);
    for (key, value) in want.as_object().expect("webhook") {
        if key != "clientConfig" {
            assert_eq!(&got[key], value, "stored webhook field {key}");
        }
    }
    assert_eq!(got["clientConfig"]["url"], ctx.webhook.url());
    // The API server calls mutating webhooks ordered by configuration name: ours
    // ("akv-injector") before the Workload Identity webhook's ("azure-wi-...").
    let awi = ctx.bed.var("AWI_WEBHOOK_CONFIGURATION").to_string();
    assert!(OUR_CONFIG < awi.as_str());
}

/// A pod as a set of facts: env, mounts and volumes as sets, generated names neutralised.
pub(crate) fn normalise(p: &Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::String(s) => {
                for prefix in ["kube-api-access-", "azure-workload-identity-reserved-"] {
                    if s.starts_with(prefix) {
                        *s = format!("{prefix}*");
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(map) => {
                for (key, val) in map.iter_mut() {
                    walk(val);
                    let sort_by = match key.as_str() {
                        "env" | "volumes" => Some("name"),
                        "volumeMounts" => Some("mountPath"),
                        _ => None,
                    };
                    if let (Some(field), Value::Array(items)) = (sort_by, val) {
                        items.sort_by_key(|i| i[field].as_str().unwrap_or_default().to_string());
                    }
                }
            }
            _ => {}
        }
    }
    let mut labels = p["metadata"]["labels"].clone();
    if let Some(l) = labels.as_object_mut() {
        l.remove("pod-template-hash");
    }
    // What admission stored, not what came after it: the scheduler may have bound one pod
    // to the test bed's node (spec.nodeName) and not yet the other.
    let mut spec = p["spec"].clone();
    if let Some(s) = spec.as_object_mut() {
        s.remove("nodeName");
    }
    let mut v = json!({
        "annotations": p["metadata"]["annotations"],
        "labels": labels,
        "spec": spec,
    });
    walk(&mut v);
    v
}

pub(crate) fn both_orders(ctx: &mut Ctx) {
    // Make the Workload Identity webhook come first: the API server orders mutating
    // webhooks by configuration name, so re-register ITS configuration under a name that
    // sorts before "akv-injector" (ours stays exactly as derived from manifests/).
    let awi = ctx.bed.var("AWI_WEBHOOK_CONFIGURATION").to_string();
    let stored = ctx.k.json(&["get", "mutatingwebhookconfiguration", &awi]);
    let first = format!("aa-{awi}");
    assert!(first.as_str() < OUR_CONFIG);
    let mut moved = json!({
        "apiVersion": stored["apiVersion"],
        "kind": stored["kind"],
        "metadata": {"name": first, "labels": stored["metadata"]["labels"]},
        "webhooks": stored["webhooks"],
    });
    moved["metadata"]["labels"]["e2e-order"] = json!("wi-first");
    ctx.k.apply_ok(&moved);
    ctx.k
        .ok(&["delete", "mutatingwebhookconfiguration", &awi, "--wait"]);

    namespace_with_identity(ctx, NS_B, &[INJECT], "shop-api");
    let template = shop_template(ctx, "shop-api");
    let before = ctx.webhook.reviews();
    let created = catch_unwind(AssertUnwindSafe(|| {
        ctx.k
            .apply_ok(&in_ns(&deployment("shop-api", 1, &template), NS_B));
        ctx.k.wait_pods(NS_B, "app=shop-api", 1)
    }));
    let after = ctx.webhook.reviews();
    // restore the test bed's order whatever happened
    let mut back = stored.clone();
    back["metadata"] = json!({"name": awi, "labels": stored["metadata"]["labels"]});
    ctx.k.apply_ok(&back);
    ctx.k
        .ok(&["delete", "mutatingwebhookconfiguration", &first]);
    let b_pods = created.unwrap_or_else(|e| std::panic::resume_unwind(e));

    let delta = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    eprintln!(
        "e2e:      WI webhook first: reviews patched +{}, skipped +{} for 1 pod",
        delta("patched"),
        delta("skipped")
    );
    assert_eq!(delta("patched"), 1);
    let a_pods = ctx
        .k
        .json(&["-n", NS_A, "get", "pods", "-l", "app=shop-api"]);
    let a = normalise(&a_pods["items"][0]);
    let b = normalise(&b_pods[0]);
    if a != b {
        panic!(
            "the two orders stored different pods:\n ours first: {}\n WI first:   {}",
            serde_json::to_string_pretty(&a).unwrap_or_default(),
            serde_json::to_string_pretty(&b).unwrap_or_default()
        );
    }
    let mut template = template;
    template["metadata"]["labels"]["app"] = json!("shop-api");
    check_injected(ctx, &b_pods[0], &template);
}
