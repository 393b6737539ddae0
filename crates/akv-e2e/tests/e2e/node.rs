//! Injected pods really run (issue 12): the test bed's node (kubelet + containerd, the
//! images from its registry) runs them in a namespace enforcing `restricted`, and akv-env
//! in each container reads the vault over the pod network with the pod's own identity.
//! The app prints digests of what it saw, never a value; the checks read the pod's status
//! and logs through the API server, as a user would.

use std::time::{Duration, Instant};

use akv_e2e::app_output::{digest, parse_printed, Printed};
use serde_json::{json, Value};

use crate::bed::{Ctx, CLIENT_ID};
use crate::checks::{assert_no_secret, init_container_names};
use crate::node_pods::{
    app_container, logs, node_namespace, node_template, status_of, wait_pod, NODE_SA, NS_NODE,
    PRINT_DIGESTS, UNTRUSTED_SA,
};
use crate::objects::{in_ns, pod};

/// The pod of the first steps: `app` without `command` (the image's ENTRYPOINT/CMD),
/// `cmd` with `$(VAR)` in args, `refs` with `valueFrom`/`envFrom` values.
const SHOP: &str = "shop";
const DATABASE_URL: &str = "postgres://shop:${akv:db-password}@db:5432/shop";

pub(crate) fn print_digests() -> Value {
    json!(["/bin/sh", PRINT_DIGESTS])
}

fn secret(ctx: &Ctx, name: &str) -> String {
    ctx.secrets[name].clone()
}

/// Waits until pod `name` has finished (Succeeded or Failed); returns it.
pub(crate) fn wait_finished(ctx: &Ctx, name: &str, secs: u64) -> Value {
    wait_pod(ctx, name, secs, "Succeeded or Failed", |p| {
        matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")).then(|| p.clone())
    })
}

/// The test app's output in container `c` of the shop pod, with no secret value in it.
fn printed(ctx: &Ctx, pod: &str, c: &str) -> Printed {
    let log = logs(ctx, pod, c, false);
    assert_no_secret(ctx, &log, &format!("the log of {pod}/{c}"));
    let p = parse_printed(&log);
    assert!(
        p.pid_line.is_some(),
        "{pod}/{c}: the app printed no pid line, it did not run: log:\n{log}"
    );
    p
}

pub(crate) fn init_container_installs_under_restricted(ctx: &mut Ctx) {
    node_namespace(ctx);
    let refs_env = json!([
        {"name": "FROM_KEY_REF", "valueFrom": {"configMapKeyRef": {"name": "refs", "key": "FROM_CONFIGMAP"}}},
    ]);
    let mut refs = app_container(
        ctx,
        "refs",
        Some(print_digests()),
        refs_env,
        "FROM_KEY_REF FROM_ENV_FROM",
    );
    refs["envFrom"] = json!([{"configMapRef": {"name": "refs"}}]);
    let env = json!([
        {"name": "DB_PASSWORD", "value": "akv:db-password"},
        {"name": "DATABASE_URL", "value": DATABASE_URL},
        {"name": "LOG_LEVEL", "value": "info"},
    ]);
    let mut cmd = app_container(
        ctx,
        "cmd",
        Some(print_digests()),
        env.clone(),
        "DB_PASSWORD",
    );
    cmd["args"] = json!([
        "$(DB_PASSWORD)",
        "--url=$(DATABASE_URL)",
        "--not-a-reference=$(DB_PASSWORD)",
        "--port",
        "8080"
    ]);
    let containers = json!([
        app_container(
            ctx,
            "app",
            None,
            env,
            "DB_PASSWORD DATABASE_URL STRIPE_KEY LOG_LEVEL AKV_INJECTOR_VAULT"
        ),
        cmd,
        refs,
    ]);
    let mut t = node_template(ctx, NODE_SA, "Never", containers);
    t["metadata"]["annotations"]["akv-injector.io/env.STRIPE_KEY"] = json!("stripe-key");
    let t0 = Instant::now();
    ctx.k.apply_ok(&in_ns(&pod(SHOP, &t), NS_NODE));
    let p = wait_finished(ctx, SHOP, 180);
    eprintln!(
        "e2e:      pod {SHOP} {} {:.1}s after creation",
        p["status"]["phase"],
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        p["metadata"]["annotations"]["akv-injector.io/status"], "injected",
        "pod {SHOP} was not injected"
    );
    let node = ctx.bed.var("NODE_NAME");
    assert_eq!(p["spec"]["nodeName"], node, "pod {SHOP}: not on the node");
    assert_ne!(p["spec"]["hostNetwork"], true, "pod {SHOP}: hostNetwork");
    let ip = p["status"]["podIP"].as_str().unwrap_or_default();
    let net = ctx.bed.var("NODE_POD_CIDR").trim_end_matches("0/24");
    assert!(
        ip.starts_with(net),
        "pod {SHOP}: podIP {ip:?} not in {}",
        ctx.bed.var("NODE_POD_CIDR")
    );
    let install = status_of(&p, "akv-injector-install");
    assert_eq!(
        install["state"]["terminated"]["exitCode"], 0,
        "akv-injector-install: {install}"
    );
    assert_eq!(install["state"]["terminated"]["reason"], "Completed");
    for c in ["app", "cmd", "refs"] {
        let s = status_of(&p, c);
        assert_eq!(
            s["state"]["terminated"]["exitCode"],
            0,
            "container {c}: {s}\nlog:\n{}",
            logs(ctx, SHOP, c, false)
        );
    }
    assert_eq!(p["status"]["phase"], "Succeeded");
    let images: Vec<String> = p["status"]["initContainerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} {}", c["name"], c["imageID"]))
        .collect();
    eprintln!("e2e:      init containers on {node}: {images:?}");
}

pub(crate) fn app_sees_the_values_with_its_pid(ctx: &mut Ctx) {
    let p = printed(ctx, SHOP, "app");
    let db = secret(ctx, "db-password");
    let want = [
        ("DB_PASSWORD", digest(&db)),
        (
            "DATABASE_URL",
            digest(&DATABASE_URL.replace("${akv:db-password}", &db)),
        ),
        ("STRIPE_KEY", digest(&secret(ctx, "stripe-key"))),
        ("LOG_LEVEL", digest("info")),
        ("AKV_INJECTOR_VAULT", "unset".to_string()),
    ];
    for (name, d) in want {
        assert_eq!(
            p.digests.get(name),
            Some(&d),
            "app: {name} (unset = akv-env removed it): {p:?}"
        );
    }
    // akv-env execve'd the app: same PID (1, the container's first process), the pod's user
    assert_eq!(p.pid_line.as_deref(), Some("pid=1 uid=65532"), "{p:?}");
}

pub(crate) fn args_expanded_by_kubelet_then_resolved(ctx: &mut Ctx) {
    let p = printed(ctx, SHOP, "cmd");
    let db = secret(ctx, "db-password");
    let want: Vec<String> = [
        db.clone(),
        format!("--url=postgres://shop:{db}@db:5432/shop"),
        // contains akv: but is no reference: left as written (the contract)
        "--not-a-reference=akv:db-password".to_string(),
        "--port".to_string(),
        "8080".to_string(),
    ]
    .iter()
    .map(|a| digest(a))
    .collect();
    assert_eq!(
        p.args, want,
        "cmd: argv as the kubelet expanded it, resolved"
    );
    assert_eq!(p.pid_line.as_deref(), Some("pid=1 uid=65532"), "{p:?}");
}

pub(crate) fn value_from_and_env_from_resolved(ctx: &mut Ctx) {
    let p = printed(ctx, SHOP, "refs");
    assert_eq!(
        p.digests.get("FROM_KEY_REF"),
        Some(&digest(&secret(ctx, "db-password"))),
        "refs: env valueFrom configMapKeyRef"
    );
    assert_eq!(
        p.digests.get("FROM_ENV_FROM"),
        Some(&digest(&format!("key={}", secret(ctx, "stripe-key")))),
        "refs: envFrom configMapRef"
    );
}

pub(crate) fn no_command_runs_the_image_entrypoint(ctx: &mut Ctx) {
    let p = printed(ctx, SHOP, "app");
    // ENTRYPOINT ["/bin/sh", "/usr/local/bin/print-digests"], CMD ["--from-image-cmd"]
    assert_eq!(p.args, [digest("--from-image-cmd")], "app: argv");
    assert_eq!(p.pid_line.as_deref(), Some("pid=1 uid=65532"), "{p:?}");
}

pub(crate) fn restarted_container_fetches_again(ctx: &mut Ctx) {
    let first = format!("rotating-1-{}", akv_testkit::random_hex(12));
    let second = format!("rotating-2-{}", akv_testkit::random_hex(12));
    ctx.kv.secret("node", "rotating", &first);
    let env = json!([{"name": "ROTATING", "value": "akv:rotating"}]);
    let c = app_container(ctx, "app", Some(print_digests()), env, "ROTATING");
    let t = node_template(ctx, NODE_SA, "Always", json!([c]));
    let name = "rotating";
    ctx.k.apply_ok(&in_ns(&pod(name, &t), NS_NODE));
    let seen = |ctx: &Ctx| parse_printed(&logs(ctx, name, "app", false));
    let (d1, d2) = (digest(&first), digest(&second));
    let t0 = Instant::now();
    wait_pod(
        ctx,
        name,
        120,
        "a first run that saw the first value",
        |_| (seen(ctx).digests.get("ROTATING") == Some(&d1)).then_some(()),
    );
    let restarts = |p: &Value| status_of(p, "app")["restartCount"].as_u64().unwrap_or(0);
    let p = ctx.k.json(&["-n", NS_NODE, "get", "pod", name]);
    let before = restarts(&p);
    ctx.kv.secret("node", "rotating", &second);
    let after = wait_pod(
        ctx,
        name,
        120,
        "a later start that saw the new value",
        |p| {
            let n = restarts(p);
            (n > before && seen(ctx).digests.get("ROTATING") == Some(&d2)).then_some(n)
        },
    );
    eprintln!(
        "e2e:      restartCount {before} -> {after}: the new start fetched the new value ({:.1}s)",
        t0.elapsed().as_secs_f64()
    );
    let log = logs(ctx, name, "app", false);
    assert!(
        !log.contains(&first) && !log.contains(&second),
        "a value in the log"
    );
    ctx.k
        .ok(&["-n", NS_NODE, "delete", "pod", name, "--wait=false"]);
}

pub(crate) fn untrusted_identity_never_starts_the_app(ctx: &mut Ctx) {
    let env = json!([{"name": "DB_PASSWORD", "value": "akv:db-password"}]);
    let c = app_container(ctx, "app", Some(print_digests()), env, "DB_PASSWORD");
    let t = node_template(ctx, UNTRUSTED_SA, "Always", json!([c]));
    let name = "intruder";
    ctx.k.apply_ok(&in_ns(&pod(name, &t), NS_NODE));
    let p = wait_pod(ctx, name, 120, "CrashLoopBackOff", |p| {
        (status_of(p, "app")["state"]["waiting"]["reason"] == "CrashLoopBackOff").then(|| p.clone())
    });
    let s = status_of(&p, "app");
    assert_ne!(
        s["lastState"]["terminated"]["exitCode"], 0,
        "akv-env exited 0: {s}"
    );
    assert_eq!(s["ready"], false);
    let log = logs(ctx, name, "app", false);
    eprintln!(
        "e2e:      untrusted service account, akv-env said: {}",
        log.trim()
    );
    assert!(
        parse_printed(&log).pid_line.is_none() && !log.contains("sha256="),
        "the application started: {log}"
    );
    assert!(
        log.contains(CLIENT_ID),
        "the log names the client id: {log}"
    );
    assert!(
        log.contains("AADSTS700213") || log.contains("federated"),
        "the log gives the token endpoint's reason: {log}"
    );
    assert_no_secret(ctx, &log, "akv-env's log");
    ctx.k
        .ok(&["-n", NS_NODE, "delete", "pod", name, "--wait=false"]);
}

pub(crate) fn native_sidecar_and_job(ctx: &mut Ctx) {
    let main = app_container(
        ctx,
        "main",
        Some(print_digests()),
        json!([{"name": "DB_PASSWORD", "value": "akv:db-password"}]),
        "DB_PASSWORD",
    );
    let mut agent = app_container(
        ctx,
        "agent",
        Some(json!([
            "/bin/sh",
            "-c",
            format!("/bin/sh {PRINT_DIGESTS} && exec sleep 3600")
        ])),
        json!([{"name": "AGENT_KEY", "value": "akv:stripe-key"}]),
        "AGENT_KEY",
    );
    agent["restartPolicy"] = json!("Always");
    let mut t = node_template(ctx, NODE_SA, "Never", json!([main]));
    t["spec"]["initContainers"] = json!([agent]);
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "report", "namespace": NS_NODE},
        "spec": {"backoffLimit": 0, "template": t},
    });
    let t0 = Instant::now();
    ctx.k.apply_ok(&job);
    let end = Instant::now() + Duration::from_secs(180);
    loop {
        let j = ctx.k.json(&["-n", NS_NODE, "get", "job", "report"]);
        let conds = j["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let has = |ty: &str| {
            conds
                .iter()
                .any(|c| c["type"] == ty && c["status"] == "True")
        };
        if has("Complete") {
            break;
        }
        let pods = ctx.k.run(
            &[
                "-n",
                NS_NODE,
                "get",
                "pods",
                "-l",
                "job-name=report",
                "-o",
                "jsonpath={.items[*].status}",
            ],
            None,
        );
        assert!(
            !has("Failed"),
            "Job report failed: {}\npods: {}",
            j["status"],
            pods.stdout
        );
        assert!(
            Instant::now() < end,
            "Job report not Complete after 180s: {}\npods: {}",
            j["status"],
            pods.stdout
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "e2e:      Job report Complete in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let pods = ctx
        .k
        .json(&["-n", NS_NODE, "get", "pods", "-l", "job-name=report"]);
    let p = &pods["items"][0];
    let pname = p["metadata"]["name"].as_str().expect("Job pod name");
    assert_eq!(
        init_container_names(p),
        ["akv-injector-install", "agent"],
        "the install container comes before the sidecar"
    );
    let main = printed(ctx, pname, "main");
    assert_eq!(
        main.digests.get("DB_PASSWORD"),
        Some(&digest(&secret(ctx, "db-password")))
    );
    let agent = printed(ctx, pname, "agent");
    assert_eq!(
        agent.digests.get("AGENT_KEY"),
        Some(&digest(&secret(ctx, "stripe-key"))),
        "the native sidecar saw its value"
    );
}
