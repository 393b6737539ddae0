//! What one review may cost (issue 10, bounded cost): the injected pod must fit in what
//! etcd stores, which is checked before the patch is built (and before any registry
//! lookup when the pod is already too large); warnings are capped; the work is linear in
//! the pod's size. These tests count instead of timing: lookups made, operations and
//! bytes produced, warnings returned. The timing of the same pods in release is
//! `scripts/bench-max-pod`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use akv_core::HostPolicy;
use akv_testkit::review::pod_review;
use akv_webhook::admission::{Admission, InjectSettings, Outcome};
use akv_webhook::inject::{ImageConfig, MAX_OBJECT_BYTES, MAX_WARNINGS};
use akv_webhook::registry::{ImageConfigSource, LookupError};
use async_trait::async_trait;
use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

/// Answers every image with an entrypoint, and counts the lookups.
#[derive(Default)]
struct CountingImages {
    lookups: AtomicUsize,
}

#[async_trait]
impl ImageConfigSource for CountingImages {
    async fn image_config(
        &self,
        _image: &str,
        _pod: &Pod,
        _namespace: &str,
    ) -> Result<ImageConfig, LookupError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        Ok(ImageConfig {
            entrypoint: vec!["/app".into()],
            cmd: vec!["--serve".into()],
        })
    }
}

fn admission() -> (Admission, Arc<CountingImages>) {
    let images = Arc::new(CountingImages::default());
    let settings = InjectSettings {
        env_image: "registry.example/platform/akv-injector:0.1.0".to_string(),
        allow_vault_hosts: HostPolicy::default(),
        allow_managed_identity: false,
    };
    (Admission::new(settings, images.clone()), images)
}

/// A pod with `containers` containers (with `command` or not), each with `env` env vars
/// of which the first is a reference, and the given annotations.
fn pod(containers: usize, env: usize, command: bool, annotations: Value) -> Value {
    let container = |i: usize| {
        let env: Vec<Value> = (0..env)
            .map(|j| {
                let value = match j {
                    0 => "akv:db-password".to_string(),
                    _ => format!("plain-value-{j:06}"),
                };
                json!({"name": format!("VAR_{j:05}"), "value": value})
            })
            .collect();
        let mut c = json!({"name": format!("c{i}"), "image": format!("registry.example/app-{}:1", i % 7), "env": env});
        if command {
            c["command"] = json!(["/app", "--serve"]);
        }
        c
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "big-",
            "labels": {"azure.workload.identity/use": "true"},
            "annotations": annotations,
        },
        "spec": {"containers": (0..containers).map(container).collect::<Vec<_>>()},
    })
}

fn env_annotations(count: usize) -> Value {
    let mut a = json!({"akv-injector.io/vault": "team-a-kv"});
    for i in 0..count {
        a[format!("akv-injector.io/env.SECRET_{i:05}")] = json!(format!("secret-{i:05}"));
    }
    a
}

fn review(object: &Value) -> Vec<u8> {
    pod_review("u-1", "team-a", object.clone())
}

struct Answer {
    outcome: Outcome,
    response: Value,
    patch: Option<json_patch::Patch>,
    patch_bytes: usize,
}

async fn answer(admission: &Admission, body: &[u8]) -> Answer {
    let reviewed = admission.review(body).await.expect("a review");
    let answer: Value = serde_json::from_slice(&reviewed.body).expect("json");
    let response = answer["response"].clone();
    let patch = response["patch"].as_str().map(|p| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(p)
            .expect("base64");
        serde_json::from_slice(&bytes).expect("a JSONPatch")
    });
    Answer {
        outcome: reviewed.outcome,
        response,
        patch,
        patch_bytes: reviewed.patch_bytes,
    }
}

/// The red-team pod: 2,000 env.* annotations × 200 containers made a 49 MB patch in
/// 17-20 s of CPU. It is denied from the estimate, before any lookup, with no patch.
#[tokio::test]
async fn an_injection_larger_than_etcd_stores_is_denied_before_lookups() {
    let (admission, images) = admission();
    let object = pod(200, 1, false, env_annotations(2_000));
    let body = review(&object);
    let a = answer(&admission, &body).await;
    assert_eq!(a.outcome, Outcome::Denied);
    assert!(a.patch.is_none());
    let message = a.response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("injecting this pod would make it larger than Kubernetes can store"),
        "{message}"
    );
    assert!(
        message.contains("200 injected containers, 2000 akv-injector.io/env.* annotations"),
        "{message}"
    );
    assert!(message.contains(&MAX_OBJECT_BYTES.to_string()), "{message}");
    assert_eq!(
        images.lookups.load(Ordering::Relaxed),
        0,
        "denied before looking up any image"
    );
}

/// A pod that is large already (≈1.5 MB of JSON) and whose injection still fits: the
/// patch applies, and the injected object is within the limit.
#[tokio::test]
async fn a_maximal_pod_that_fits_is_injected_within_the_limit() {
    let (admission, images) = admission();
    // 100 containers × 200 env vars ≈ 1.2 MB, plus 20 env.* annotations in each.
    let object = pod(100, 200, false, env_annotations(20));
    let body = review(&object);
    assert!(body.len() > 1_000_000, "{} bytes", body.len());
    let a = answer(&admission, &body).await;
    assert_eq!(a.outcome, Outcome::Patched, "{}", a.response["status"]);
    let patch = a.patch.expect("a patch");
    // Linear: one operation per added field, no more.
    let ops_bound = 4 + 100 * (3 + 20 + 8);
    assert!(patch.0.len() <= ops_bound, "{} operations", patch.0.len());
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).expect("the patch applies");
    let size = serde_json::to_vec(&patched).expect("json").len();
    assert!(size <= MAX_OBJECT_BYTES, "injected pod is {size} bytes");
    assert!(body.len() + a.patch_bytes <= MAX_OBJECT_BYTES);
    // Seven distinct images, each looked up once, for a hundred containers.
    assert_eq!(images.lookups.load(Ordering::Relaxed), 7);
}

/// The limit is computed from the review: the same pod with a little more is denied.
#[tokio::test]
async fn the_limit_is_the_boundary() {
    let (admission, _) = admission();
    let fits = pod(100, 200, true, env_annotations(20));
    assert_eq!(
        answer(&admission, &review(&fits)).await.outcome,
        Outcome::Patched
    );
    let over = pod(100, 260, true, env_annotations(20));
    let a = answer(&admission, &review(&over)).await;
    assert_eq!(a.outcome, Outcome::Denied, "{}", a.response["status"]);
}

/// 20,000 unknown annotations made 20,000 warnings: now ten, and one that counts the rest.
#[tokio::test]
async fn warnings_are_capped() {
    let (admission, _) = admission();
    let mut annotations = env_annotations(1);
    for i in 0..20_000 {
        annotations[format!("akv-injector.io/typo-{i:05}")] = json!("x");
    }
    let object = pod(1, 1, true, annotations);
    let a = answer(&admission, &review(&object)).await;
    assert_eq!(a.outcome, Outcome::Patched);
    let warnings: Vec<String> =
        serde_json::from_value(a.response["warnings"].clone()).expect("warnings");
    assert_eq!(warnings.len(), MAX_WARNINGS + 1);
    assert_eq!(
        warnings[MAX_WARNINGS],
        "and 19990 more warnings like these (akv-injector returns the first 10)"
    );
    assert!(warnings.iter().all(|w| w.chars().count() <= 256));
}

/// Inputs that made the planning quadratic (a scan per container, per name or per env
/// var): a `containers` annotation with 20,000 names over 20,000 containers, and
/// containers with many env vars shadowing many annotations. They are answered; with a
/// quadratic plan they would take minutes even in release.
#[tokio::test]
async fn many_names_and_shadowed_annotations_are_linear() {
    let (admission, _) = admission();
    let names: Vec<String> = (0..20_000).map(|i| format!("c{i}")).collect();
    let mut annotations = json!({"akv-injector.io/vault": "team-a-kv"});
    annotations["akv-injector.io/containers"] = json!(names.join(","));
    let mut object = pod(20_000, 0, true, annotations);
    for c in object["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
    {
        c["env"] = json!([{"name": "A", "value": "akv:db"}]);
    }
    let a = answer(&admission, &review(&object)).await;
    // 20,000 wrapped containers do not fit: denied from the estimate.
    assert_eq!(a.outcome, Outcome::Denied, "{}", a.response["status"]);

    let mut annotations = env_annotations(3_000);
    annotations["akv-injector.io/containers"] = json!("c0,c1");
    let mut object = pod(2, 0, true, annotations);
    let shadowing: Vec<Value> = (0..3_000)
        .map(|i| json!({"name": format!("SECRET_{i:05}"), "value": "set"}))
        .collect();
    for c in object["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
    {
        c["env"] = Value::Array(shadowing.clone());
    }
    let a = answer(&admission, &review(&object)).await;
    assert_eq!(a.outcome, Outcome::Patched, "{}", a.response["status"]);
    let warnings = a.response["warnings"].as_array().map_or(0, Vec::len);
    assert_eq!(warnings, MAX_WARNINGS + 1);
}
