//! Containers without `command` (issue 5): ENTRYPOINT/CMD read from the TLS + htpasswd
//! registry with the pull secrets our webhook reads from the API server, as the service
//! account of `manifests/base` with only its RBAC.

use akv_testkit::registry as registry_bed;
use serde_json::{json, Value};

use crate::bed::{
    Ctx, DENIED, IMG_POD_SECRET, IMG_SA_SECRET, IMG_WRONG_CREDENTIALS, INJECT, NS_REG, WEBHOOK_NS,
    WEBHOOK_SA,
};
use crate::checks::{container, env_of, mount, pod_name};
use crate::objects::{deployment, in_ns, pod, restricted_container_security};

/// The opted-in namespace of the registry steps (idempotent: each step may run alone).
pub(crate) fn registry_namespace(ctx: &Ctx) {
    ctx.k.namespace(NS_REG, &[INJECT]);
}

/// A `kubernetes.io/dockerconfigjson` Secret for registry `server` (user
/// `registry_bed::USER`), made as users make them, with `kubectl create secret docker-registry`.
pub(crate) fn docker_registry_secret(ctx: &Ctx, name: &str, server: &str, password: &str) {
    let server = format!("--docker-server={server}");
    let user = format!("--docker-username={}", registry_bed::USER);
    let password = format!("--docker-password={password}");
    let out = ctx.k.run(
        &[
            "-n",
            NS_REG,
            "create",
            "secret",
            "docker-registry",
            name,
            &server,
            &user,
            &password,
        ],
        None,
    );
    assert!(
        out.ok || out.stderr.contains("AlreadyExists"),
        "kubectl create secret docker-registry {name}:\n{}",
        out.stderr
    );
    let secret = ctx.k.json(&["-n", NS_REG, "get", "secret", name]);
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
}

/// A pod template whose containers have an image of the test registry and no `command`;
/// `args` per container (`None`: none).
pub(crate) fn registry_template(
    ctx: &Ctx,
    image: &str,
    containers: &[(&str, Option<&[&str]>)],
) -> Value {
    let image = ctx.registry.image(image);
    let containers: Vec<Value> = containers
        .iter()
        .map(|(name, args)| {
            let mut c = json!({
                "name": name,
                "image": image,
                "env": [{"name": "DB_PASSWORD", "value": "akv:db-password"}],
                "securityContext": restricted_container_security(),
            });
            if let Some(args) = args {
                c["args"] = json!(args);
            }
            c
        })
        .collect();
    json!({
        "metadata": {
            "labels": {},
            "annotations": {"akv-injector.io/vault": ctx.kv.vault_url("a")},
        },
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532},
            "containers": containers,
        },
    })
}

/// A stored pod from [`registry_template`]: injected, each container running
/// `akv-env -- ENTRYPOINT... (args or CMD)...` as Docker would have run the image.
pub(crate) fn check_registry_pod(
    p: &Value,
    image: (&str, &[&str], &[&str]),
    containers: &[(&str, Option<&[&str]>)],
) {
    let name = pod_name(p);
    assert_eq!(
        p["metadata"]["annotations"]["akv-injector.io/status"], "injected",
        "pod {name}: status annotation"
    );
    assert_eq!(
        p["spec"]["initContainers"][0]["name"], "akv-injector-install",
        "pod {name}: initContainers[0]"
    );
    let (_, entrypoint, cmd) = image;
    for (cname, args) in containers {
        let c = container(p, "containers", cname);
        assert_eq!(
            c["command"],
            json!(["/akv-injector/akv-env"]),
            "pod {name}/{cname}: command"
        );
        let mut argv = vec!["--"];
        argv.extend_from_slice(entrypoint);
        argv.extend_from_slice(args.unwrap_or(cmd));
        assert_eq!(c["args"], json!(argv), "pod {name}/{cname}: args");
        let m = mount(c, "akv-injector").unwrap_or_else(|| panic!("pod {name}/{cname}: mount"));
        assert_eq!(m["readOnly"], true);
        assert_eq!(
            env_of(c).get("DB_PASSWORD").map(String::as_str),
            Some("akv:db-password")
        );
    }
}

/// `akv_webhook_registry_cache_misses` by cache, for the step reports.
pub(crate) fn registry_misses(ctx: &Ctx) -> String {
    ctx.webhook
        .metrics()
        .lines()
        .filter(|l| l.starts_with("akv_webhook_registry_cache_misses_total"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn pod_secret(ctx: &mut Ctx) {
    // The webhook's kube client is configured (it would warn and look up anonymously).
    let log = ctx.webhook.log_text();
    assert!(
        !log.contains("image pull secrets are unavailable"),
        "akv-webhook has no Kubernetes API configuration:\n{}",
        ctx.webhook.log_tail(20)
    );
    // Its service account may `get` secrets and service accounts, and no more
    // (manifests/base/rbac.yaml): what works below works with exactly that.
    let as_webhook = ctx.k.with_kubeconfig(&ctx.webhook_kubeconfig);
    for (verb, resource, want) in [
        ("get", "secrets", "yes"),
        ("get", "serviceaccounts", "yes"),
        ("list", "secrets", "no"),
        ("watch", "secrets", "no"),
        ("get", "pods", "no"),
    ] {
        let out = as_webhook.run(&["-n", NS_REG, "auth", "can-i", verb, resource], None);
        assert_eq!(
            out.stdout.trim(),
            want,
            "service account {WEBHOOK_NS}/{WEBHOOK_SA}: can-i {verb} {resource}: {}",
            out.stderr
        );
    }

    registry_namespace(ctx);
    docker_registry_secret(ctx, "regcred", &ctx.registry.host, registry_bed::PASSWORD);
    // `api` runs the image as built; `worker` replaces its CMD with `args`.
    let containers: &[(&str, Option<&[&str]>)] =
        &[("api", None), ("worker", Some(&["--queue", "orders"]))];
    let mut template = registry_template(ctx, IMG_POD_SECRET.0, containers);
    template["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    let before = ctx.webhook.reviews();
    ctx.k
        .apply_ok(&in_ns(&deployment("shop-registry", 2, &template), NS_REG));
    let pods = ctx.k.wait_pods(NS_REG, "app=shop-registry", 2);
    let after = ctx.webhook.reviews();
    for p in &pods {
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));
        check_registry_pod(p, IMG_POD_SECRET, containers);
    }
    let delta = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    assert_eq!(delta("patched"), 2, "{before:?} -> {after:?}");
    eprintln!(
        "e2e:      2 pods of {}: args {}; {}",
        ctx.registry.image(IMG_POD_SECRET.0),
        container(&pods[0], "containers", "api")["args"],
        registry_misses(ctx)
    );
}

pub(crate) fn sa_secret(ctx: &mut Ctx) {
    registry_namespace(ctx);
    docker_registry_secret(
        ctx,
        "regcred-sa",
        &ctx.registry.host,
        registry_bed::PASSWORD,
    );
    // A pull secret for another registry, on the pods below: the API server's
    // ServiceAccount admission plugin copies the service account's imagePullSecrets into
    // a pod only when the pod has none, so with this one the service account's secret
    // reaches the webhook by no other way than its own lookup (ServiceAccount, then
    // Secret, from the API server).
    docker_registry_secret(ctx, "other-registry", "registry.example.com", "elsewhere");
    let containers: &[(&str, Option<&[&str]>)] = &[("web", Some(&["nginx", "-T"]))];
    let mut template = registry_template(ctx, IMG_SA_SECRET.0, containers);
    template["spec"]["imagePullSecrets"] = json!([{"name": "other-registry"}]);

    // With the `default` service account (no pull secrets) the lookup is anonymous and
    // this registry refuses it.
    let out = ctx
        .k
        .apply(&in_ns(&pod("web-anonymous", &template), NS_REG), &[]);
    assert!(!out.ok, "a pod was admitted with anonymous registry access");
    assert!(
        out.stderr.contains(DENIED) && out.stderr.contains("anonymous access"),
        "{}",
        out.stderr
    );

    ctx.k.apply_ok(&json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "puller", "namespace": NS_REG},
        "imagePullSecrets": [{"name": "regcred-sa"}],
    }));
    template["spec"]["serviceAccountName"] = json!("puller");
    ctx.k
        .apply_ok(&in_ns(&deployment("web-registry", 1, &template), NS_REG));
    let pods = ctx.k.wait_pods(NS_REG, "app=web-registry", 1);
    let p = &pods[0];
    assert_eq!(
        p["spec"]["imagePullSecrets"],
        json!([{"name": "other-registry"}]),
        "the pod's own pull secrets, not the service account's"
    );
    check_registry_pod(p, IMG_SA_SECRET, containers);
    eprintln!(
        "e2e:      pod of {} with service account puller's pull secret: args {}",
        ctx.registry.image(IMG_SA_SECRET.0),
        container(p, "containers", "web")["args"]
    );

    // Without pull secrets of its own the pod gets the service account's from the
    // ServiceAccount admission plugin, before the webhooks are called.
    let mut t = template.clone();
    t["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("imagePullSecrets");
    ctx.k.apply_ok(&in_ns(&pod("web-sa-copied", &t), NS_REG));
    let p = ctx.k.json(&["-n", NS_REG, "get", "pod", "web-sa-copied"]);
    assert_eq!(
        p["spec"]["imagePullSecrets"],
        json!([{"name": "regcred-sa"}])
    );
    check_registry_pod(&p, IMG_SA_SECRET, containers);
}

pub(crate) fn wrong_credentials(ctx: &mut Ctx) {
    registry_namespace(ctx);
    let wrong = "not-the-password-1f3c";
    docker_registry_secret(ctx, "badcred", &ctx.registry.host, wrong);
    let containers: &[(&str, Option<&[&str]>)] = &[("app", None)];
    let mut template = registry_template(ctx, IMG_WRONG_CREDENTIALS.0, containers);
    template["spec"]["imagePullSecrets"] = json!([{"name": "badcred"}]);
    let image = ctx.registry.image(IMG_WRONG_CREDENTIALS.0);
    let out = ctx
        .k
        .apply(&in_ns(&pod("private-app", &template), NS_REG), &[]);
    assert!(
        !out.ok,
        "a pod was admitted with wrong registry credentials"
    );
    let err = out.stderr.trim();
    eprintln!("e2e:      wrong credentials: {err}");
    for want in [
        DENIED.to_string(),
        "container 'app' has no command".to_string(),
        format!("image '{image}'"),
        format!("pull secret {NS_REG}/badcred"),
        "Set `command` in the container spec to avoid the registry lookup".to_string(),
    ] {
        assert!(
            err.contains(&want),
            "kubectl said:\n{err}\nexpected: {want}"
        );
    }
    assert!(
        !err.contains(wrong),
        "the password is in the message: {err}"
    );
    let got = ctx
        .k
        .run(&["-n", NS_REG, "get", "pod", "private-app"], None);
    assert!(!got.ok, "the pod was stored");
}

/// The webhook's Secret and ServiceAccount reads in the API server's audit log (scripts/kube-up
/// enables it) from byte `from` on: `(verb, resource, namespace, name)`.
pub(crate) fn webhook_reads(ctx: &Ctx, from: usize) -> Vec<(String, String, String, String)> {
    let path = ctx.bed.var("KUBE_AUDIT_LOG");
    let log = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read the audit log {path}: {e}"));
    let user = format!("system:serviceaccount:{WEBHOOK_NS}:{WEBHOOK_SA}");
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["user"]["username"] == user.as_str())
        .map(|e| {
            let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
            let o = &e["objectRef"];
            (
                field(&e["verb"]),
                field(&o["resource"]),
                field(&o["namespace"]),
                field(&o["name"]),
            )
        })
        .collect()
}

pub(crate) fn audit_log_len(ctx: &Ctx) -> usize {
    std::fs::metadata(ctx.bed.var("KUBE_AUDIT_LOG"))
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

pub(crate) fn names_cannot_escape(ctx: &mut Ctx) {
    registry_namespace(ctx);
    // The registry's real credentials, in kube-system only.
    let out = ctx.k.run(
        &[
            "-n",
            "kube-system",
            "create",
            "secret",
            "docker-registry",
            "admin-pull",
            &format!("--docker-server={}", ctx.registry.host),
            &format!("--docker-username={}", registry_bed::USER),
            &format!("--docker-password={}", registry_bed::PASSWORD),
        ],
        None,
    );
    assert!(
        out.ok || out.stderr.contains("AlreadyExists"),
        "{}",
        out.stderr
    );
    let from = audit_log_len(ctx);
    let containers: &[(&str, Option<&[&str]>)] = &[("app", None)];
    let cases = [
        (
            "../../../kube-system/secrets/admin-pull",
            "spec.imagePullSecrets[0].name '../../../kube-system/secrets/admin-pull' is not a valid Kubernetes object name".to_string(),
        ),
        (
            "admin-pull",
            format!("pull secret {NS_REG}/admin-pull does not exist"),
        ),
    ];
    for (name, want) in cases {
        let mut template = registry_template(ctx, IMG_WRONG_CREDENTIALS.0, containers);
        template["spec"]["imagePullSecrets"] = json!([{ "name": name }]);
        let out = ctx.k.apply(&in_ns(&pod("escape", &template), NS_REG), &[]);
        assert!(!out.ok, "admitted with pull secret {name}");
        let err = out.stderr.trim();
        eprintln!("e2e:      pull secret {name}: {err}");
        assert!(
            err.contains(DENIED) && err.contains(&want),
            "kubectl said:\n{err}\nexpected: {want}"
        );
    }
    let reads = webhook_reads(ctx, from);
    eprintln!("e2e:      the webhook's reads (audit log): {reads:?}");
    assert!(
        reads.iter().any(|(verb, res, ns, name)| verb == "get"
            && res == "secrets"
            && ns == NS_REG
            && name == "admin-pull"),
        "the audit log shows no read of {NS_REG}/admin-pull: {reads:?}"
    );
    for (verb, res, ns, name) in &reads {
        assert_eq!(ns, NS_REG, "the webhook read {res} {ns}/{name} ({verb})");
    }
    let everything = webhook_reads(ctx, 0);
    assert!(
        everything.iter().all(|(_, _, ns, _)| ns != "kube-system"),
        "the webhook read in kube-system: {everything:?}"
    );
}
