//! What a stored pod must look like: injected as the contract says, or untouched; and no
//! secret value in anything stored or printed.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::bed::{Ctx, CLIENT_ID};

pub(crate) fn env_of(c: &Value) -> BTreeMap<String, String> {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_string(),
                e["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

pub(crate) fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod["spec"][list]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("pod {} has no {list} entry {name}", pod["metadata"]["name"]))
}

pub(crate) fn mount<'a>(c: &'a Value, volume: &str) -> Option<&'a Value> {
    c["volumeMounts"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == volume))
}

/// The names of a pod's init containers, in order.
pub(crate) fn init_container_names(p: &Value) -> Vec<&str> {
    p["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

pub(crate) fn pod_name(p: &Value) -> &str {
    p["metadata"]["name"].as_str().unwrap_or("?")
}

/// The contract's "What the webhook does to a pod that has references", on a stored pod
/// made from [`shop_template`].
pub(crate) fn check_injected(ctx: &Ctx, p: &Value, template: &Value) {
    let name = pod_name(p);
    assert_eq!(
        p["metadata"]["annotations"]["akv-injector.io/status"], "injected",
        "pod {name}: status annotation"
    );
    // 1. the volume
    let vol = p["spec"]["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == "akv-injector"))
        .unwrap_or_else(|| panic!("pod {name}: no volume akv-injector"));
    assert_eq!(
        vol["emptyDir"],
        json!({"medium": "Memory", "sizeLimit": "16Mi"}),
        "pod {name}: volume akv-injector"
    );
    // 2. the init container, first
    let init = &p["spec"]["initContainers"][0];
    assert_eq!(
        init["name"], "akv-injector-install",
        "pod {name}: initContainers[0]"
    );
    assert_eq!(
        init["image"], ctx.env_image,
        "pod {name}: init image (--env-image)"
    );
    assert_eq!(
        init["command"],
        json!(["/usr/local/bin/akv-env", "install", "/akv-injector"]),
        "pod {name}: init command"
    );
    let m = mount(init, "akv-injector").unwrap_or_else(|| panic!("pod {name}: init mount"));
    assert_eq!(m["mountPath"], "/akv-injector");
    assert_ne!(
        m["readOnly"], true,
        "pod {name}: the install mount must be writable"
    );
    let sc = &init["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "pod {name}: init runAsNonRoot");
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for part in ["requests", "limits"] {
        assert!(
            init["resources"][part]["memory"].is_string(),
            "pod {name}: init resources.{part}: {}",
            init["resources"]
        );
    }
    // the app's own init container has no references and is not listed: untouched
    let migrate = container(p, "initContainers", "migrate");
    assert_eq!(
        migrate["command"],
        json!(["/bin/true"]),
        "pod {name}: migrate"
    );
    assert!(mount(migrate, "akv-injector").is_none());
    assert!(env_of(migrate)
        .keys()
        .all(|k| !k.starts_with("AKV_INJECTOR_")));
    // 3. every app container (references, or env.* annotations)
    for tc in template["spec"]["containers"]
        .as_array()
        .expect("containers")
    {
        let cname = tc["name"].as_str().expect("name");
        let c = container(p, "containers", cname);
        assert_eq!(
            c["command"],
            json!(["/akv-injector/akv-env"]),
            "pod {name}/{cname}: command"
        );
        let mut argv = vec![json!("--")];
        argv.extend(tc["command"].as_array().cloned().unwrap_or_default());
        argv.extend(tc["args"].as_array().cloned().unwrap_or_default());
        assert_eq!(c["args"], Value::Array(argv), "pod {name}/{cname}: args");
        let m = mount(c, "akv-injector").unwrap_or_else(|| panic!("pod {name}/{cname}: mount"));
        assert_eq!(m["mountPath"], "/akv-injector");
        assert_eq!(m["readOnly"], true, "pod {name}/{cname}: read-only mount");
        let env = env_of(c);
        for (k, v) in env_of(tc) {
            assert_eq!(
                env.get(&k),
                Some(&v),
                "pod {name}/{cname}: env {k} as written"
            );
        }
        assert_eq!(
            env.get("STRIPE_KEY").map(String::as_str),
            Some("akv:stripe-key")
        );
        assert_eq!(
            env.get("AKV_INJECTOR_VAULT"),
            Some(&ctx.kv.vault_url("a")),
            "pod {name}/{cname}: AKV_INJECTOR_VAULT"
        );
        assert!(
            env.contains_key("AKV_INJECTOR_TIMEOUT"),
            "pod {name}/{cname}: {env:?}"
        );
        // and the Workload Identity webhook did its part
        assert_eq!(
            env.get("AZURE_CLIENT_ID").map(String::as_str),
            Some(CLIENT_ID)
        );
        assert!(env.contains_key("AZURE_FEDERATED_TOKEN_FILE"), "{env:?}");
    }
    assert_no_secret(ctx, &p.to_string(), &format!("pod {name}"));
}

pub(crate) fn assert_no_secret(ctx: &Ctx, text: &str, what: &str) {
    for (name, value) in &ctx.secrets {
        assert!(
            !text.contains(value.as_str()),
            "{what} holds the value of secret {name}"
        );
    }
}

/// The pod was not touched by our webhook.
pub(crate) fn check_untouched(p: &Value, template: &Value) {
    let name = pod_name(p);
    assert!(
        p["metadata"]["annotations"]
            .get("akv-injector.io/status")
            .is_none(),
        "pod {name} was injected"
    );
    let vols = p["spec"]["volumes"].to_string();
    assert!(!vols.contains("\"akv-injector\""), "pod {name}: {vols}");
    assert_eq!(
        init_container_names(p),
        ["migrate"],
        "pod {name}: init containers"
    );
    for tc in template["spec"]["containers"]
        .as_array()
        .expect("containers")
    {
        let c = container(p, "containers", tc["name"].as_str().expect("name"));
        assert_eq!(c["command"], tc["command"], "pod {name}: command changed");
        assert_eq!(c["args"], tc["args"], "pod {name}: args changed");
    }
}
