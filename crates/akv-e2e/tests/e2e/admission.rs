//! Admission of pods through the API server: injected Deployments, namespaces and pods
//! our webhook is not sent, the restricted Pod Security Standard, dry runs, denials.

use std::time::Duration;

use akv_e2e::wait_until;
use serde_json::{json, Value};

use crate::bed::{Ctx, CLIENT_ID, DENIED, INJECT, NS_A, NS_PLAIN};
use crate::checks::{assert_no_secret, check_injected, check_untouched};
use crate::objects::{deployment, in_ns, namespace_with_identity, pod, shop_template};

pub(crate) fn injected_deployment(ctx: &mut Ctx) {
    namespace_with_identity(ctx, NS_A, &[INJECT], "shop-api");
    // the federated credential: only NS_A's shop-api may use the identity
    ctx.kv.identity(
        CLIENT_ID,
        ctx.bed.var("AWI_TENANT_ID"),
        &format!("system:serviceaccount:{NS_A}:shop-api"),
    );
    ctx.kv.grant("a", CLIENT_ID);
    ctx.kv.grant("b", CLIENT_ID);
    let template = shop_template(ctx, "shop-api");
    let before = ctx.webhook.reviews();
    ctx.k
        .apply_ok(&in_ns(&deployment("shop-api", 2, &template), NS_A));
    let pods = ctx.k.wait_pods(NS_A, "app=shop-api", 2);
    let after = ctx.webhook.reviews();
    let rs = ctx
        .k
        .json(&["-n", NS_A, "get", "replicasets", "-l", "app=shop-api"]);
    assert_eq!(
        rs["items"].as_array().map(Vec::len),
        Some(1),
        "one ReplicaSet"
    );
    let mut template = template;
    template["metadata"]["labels"]["app"] = json!("shop-api");
    for p in &pods {
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        check_injected(ctx, p, &template);
    }
    let deploy = ctx
        .k
        .ok(&["-n", NS_A, "get", "deployment,replicaset", "-o", "json"]);
    assert_no_secret(ctx, &deploy, "the Deployment or ReplicaSet");
    let delta = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    eprintln!(
        "e2e:      our webhook first: reviews patched +{}, skipped +{} for 2 pods",
        delta("patched"),
        delta("skipped")
    );
    // Ours ran first, the WI webhook changed the pod after it, so ours was called again
    // (reinvocationPolicy: IfNeeded) and left the already injected pod alone.
    assert_eq!(delta("patched"), 2, "{before:?} -> {after:?}");
    assert_eq!(
        delta("skipped"),
        2,
        "reinvocations: {before:?} -> {after:?}"
    );
}

pub(crate) fn not_sent(ctx: &mut Ctx) {
    namespace_with_identity(ctx, NS_PLAIN, &[], "shop-api");
    // kube-system and akv-injector are excluded by name, even when labelled
    namespace_with_identity(ctx, "akv-injector", &[INJECT], "shop-api");
    namespace_with_identity(ctx, "kube-system", &[INJECT], "shop-api");
    namespace_with_identity(ctx, "e2e-optout", &[INJECT], "shop-api");

    let template = shop_template(ctx, "shop-api");
    let mut optout = template.clone();
    optout["metadata"]["labels"]["akv-injector.io/inject"] = json!("false");
    let cases = [
        (NS_PLAIN, &template),
        ("kube-system", &template),
        ("akv-injector", &template),
        ("e2e-optout", &optout),
    ];
    let before = ctx.webhook.reviews_total();
    for (ns, t) in cases {
        ctx.k.apply_ok(&in_ns(&deployment("shop-api", 2, t), ns));
    }
    for (ns, t) in cases {
        let mut t = t.clone();
        t["metadata"]["labels"]["app"] = json!("shop-api");
        for p in ctx.k.wait_pods(ns, "app=shop-api", 2) {
            check_untouched(&p, &t);
        }
    }
    // The pods exist, so every admission is over: our webhook was not even called.
    let after = ctx.webhook.reviews_total();
    assert_eq!(before, after, "akv_webhook_reviews_total changed");
    for ns in ["kube-system", "akv-injector"] {
        ctx.k
            .ok(&["-n", ns, "delete", "deployment", "shop-api", "--wait"]);
    }
    ctx.k.ok(&[
        "label",
        "namespace",
        "kube-system",
        "akv-injector.io/injection-",
    ]);
}

pub(crate) fn restricted(ctx: &mut Ctx) {
    let ns = "e2e-restricted";
    namespace_with_identity(
        ctx,
        ns,
        &[
            INJECT,
            ("pod-security.kubernetes.io/enforce", "restricted"),
            ("pod-security.kubernetes.io/enforce-version", "latest"),
            ("pod-security.kubernetes.io/warn", "restricted"),
        ],
        "shop-api",
    );
    let template = shop_template(ctx, "shop-api");
    // A bare pod: kubectl shows any PodSecurity refusal or warning directly.
    let out = ctx.k.apply(&in_ns(&pod("shop-pod", &template), ns), &[]);
    assert!(
        out.ok,
        "injected pod refused in a restricted namespace:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("PodSecurity"),
        "PodSecurity warning: {}",
        out.stderr
    );
    let p = ctx.k.json(&["-n", ns, "get", "pod", "shop-pod"]);
    check_injected(ctx, &p, &template);
    // And through a Deployment (the controller-manager creates the pods).
    ctx.k
        .apply_ok(&in_ns(&deployment("shop-api", 1, &template), ns));
    let pods = ctx.k.wait_pods(ns, "app=shop-api", 1);
    assert_eq!(
        pods[0]["metadata"]["annotations"]["akv-injector.io/status"],
        "injected"
    );
    // The namespace does enforce: the same pod without its security contexts is refused.
    let mut loose = pod("loose", &template);
    for c in loose["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
    {
        c.as_object_mut()
            .expect("container")
            .remove("securityContext");
    }
    let out = ctx.k.apply(&in_ns(&loose, ns), &[]);
    assert!(!out.ok, "a non-compliant pod was admitted");
    assert!(
        out.stderr.contains("violates PodSecurity \"restricted"),
        "{}",
        out.stderr
    );
}

pub(crate) fn dry_run(ctx: &mut Ctx) {
    let template = shop_template(ctx, "shop-api");
    let before = ctx.webhook.reviews();
    // A Deployment: validated and defaulted by the server, nothing stored or created.
    let out = ctx.k.apply(
        &in_ns(&deployment("shop-dry", 1, &template), NS_A),
        &["--dry-run=server", "-o", "json"],
    );
    assert!(out.ok, "{}", out.stderr);
    let d: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(d["kind"], "Deployment");
    // A Pod: our webhook is called (sideEffects: None allows dry runs) and the answer is
    // the injected pod, which is not stored.
    let out = ctx.k.apply(
        &in_ns(&pod("shop-dry-pod", &template), NS_A),
        &["--dry-run=server", "-o", "json"],
    );
    assert!(out.ok, "{}", out.stderr);
    let p: Value = serde_json::from_str(&out.stdout).expect("JSON");
    check_injected(ctx, &p, &template);
    std::thread::sleep(Duration::from_secs(2)); // give a controller time to act, if it would
    for (kind, name) in [("deployment", "shop-dry"), ("pod", "shop-dry-pod")] {
        let got = ctx.k.run(&["-n", NS_A, "get", kind, name], None);
        assert!(
            !got.ok && got.stderr.contains("NotFound"),
            "{kind} {name} was stored"
        );
    }
    let rs = ctx
        .k
        .json(&["-n", NS_A, "get", "replicasets", "-l", "app=shop-dry"]);
    assert_eq!(rs["items"], json!([]), "a ReplicaSet was created");
    let after = ctx.webhook.reviews();
    let delta = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    assert_eq!(
        delta("patched"),
        1,
        "our webhook answered the dry-run pod once"
    );
}

pub(crate) fn denials(ctx: &mut Ctx) {
    let template = shop_template(ctx, "shop-api");
    type Mutation = fn(&mut Value);
    let cases: [(&str, Mutation, &str); 3] = [
        (
            "bad-ref",
            |p| p["spec"]["containers"][0]["env"][0]["value"] = json!("akv:db password"),
            "container 'api', env DB_PASSWORD: ",
        ),
        (
            "bad-timeout",
            |p| p["metadata"]["annotations"]["akv-injector.io/timeout"] = json!("forever"),
            "annotation akv-injector.io/timeout: 'forever'",
        ),
        (
            "bad-containers",
            |p| p["metadata"]["annotations"]["akv-injector.io/containers"] = json!("api,nope"),
            "akv-injector.io/containers names 'nope'",
        ),
    ];
    for (name, mutate, message) in cases {
        let mut p = pod(name, &template);
        mutate(&mut p);
        let out = ctx.k.apply(&in_ns(&p, NS_A), &[]);
        assert!(!out.ok, "pod {name} was admitted");
        assert!(
            out.stderr.contains(DENIED) && out.stderr.contains(message),
            "pod {name}: kubectl said:\n{}\nexpected `{DENIED}: ...{message}...`",
            out.stderr
        );
        eprintln!("e2e:      {name}: {}", out.stderr.trim());
    }
    // Through a Deployment the user sees it on the ReplicaSet (README troubleshooting).
    let mut t = template.clone();
    t["spec"]["containers"][0]["env"][0]["value"] = json!("akv:db password");
    ctx.k.apply_ok(&in_ns(&deployment("shop-bad", 1, &t), NS_A));
    let message = wait_until(
        "ReplicaFailure on shop-bad's ReplicaSet",
        Duration::from_secs(30),
        || {
            let rs = ctx
                .k
                .json(&["-n", NS_A, "get", "replicasets", "-l", "app=shop-bad"]);
            rs["items"][0]["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "ReplicaFailure"))
                .and_then(|c| c["message"].as_str().map(String::from))
        },
    );
    assert!(
        message.contains(DENIED) && message.contains("env DB_PASSWORD"),
        "{message}"
    );
    let pods = ctx
        .k
        .json(&["-n", NS_A, "get", "pods", "-l", "app=shop-bad"]);
    assert_eq!(pods["items"], json!([]));
    ctx.k.ok(&["-n", NS_A, "delete", "deployment", "shop-bad"]);
}
