//! The admission path: decode an AdmissionReview, plan, look up what must be looked up,
//! mutate (pure), and answer. It never returns an error to the HTTP layer except for a
//! request that is not an AdmissionReview at all ([`BadRequest`], answered with HTTP 400).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::DynamicObject;
use serde_json::Value;
use thiserror::Error;

use crate::inject::{self, ImageConfig, Plan, OPT_OUT_LABEL, STATUS_ANNOTATION, STATUS_INJECTED};
use crate::registry::ImageConfigSource;

pub use crate::inject::InjectSettings;

/// What happened to one review, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed without a patch (no references, opted out, already injected, not a CREATE).
    Skipped,
    /// Allowed with a patch.
    Patched,
    /// Denied: a bad reference, a bad annotation, an argv that cannot be known.
    Denied,
    /// Answered with an admission error: the review was understood as a review, but its
    /// object could not be (e.g. a Pod that does not deserialize).
    Invalid,
}

impl Outcome {
    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Skipped => "skipped",
            Outcome::Patched => "patched",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
        }
    }
}

/// The answer to one review.
#[derive(Debug, Clone)]
pub struct Reviewed {
    /// The AdmissionReview (with `response`) to send back, as JSON.
    pub body: Vec<u8>,
    pub outcome: Outcome,
    /// Size in bytes of the JSONPatch (0 when there is none).
    pub patch_bytes: usize,
    /// Which request and pod this was, for logs.
    pub subject: Subject,
}

/// What a review was about: enough to find it in the API server's audit log, never a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub uid: String,
    pub namespace: String,
    /// The pod's name, or its `generateName` followed by `*` when it has no name yet.
    pub pod: String,
}

/// A request body that is not an AdmissionReview v1 for a Pod: answered with HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BadRequest {
    #[error("empty request body: POST an AdmissionReview (admission.k8s.io/v1) as JSON")]
    Empty,
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    #[error("expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got {api_version}/{kind}")]
    WrongKind { api_version: String, kind: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("the AdmissionReview is malformed: {0}")]
    Malformed(String),
    #[error("this webhook handles Pods, but the review is for {0}: check the MutatingWebhookConfiguration's rules")]
    NotAPod(String),
}

/// How long one review may spend on registry lookups by default (`--registry-timeout`),
/// well inside the webhook's 5 s `timeoutSeconds`.
pub const DEFAULT_LOOKUP_DEADLINE: Duration = Duration::from_secs(3);

/// Answers admission reviews. Cheap to share behind an `Arc`.
pub struct Admission {
    settings: InjectSettings,
    images: Arc<dyn ImageConfigSource>,
    lookup_deadline: Duration,
}

impl Admission {
    /// An admission handler with the operator's settings and the source of image configs
    /// for containers that have no `command`.
    pub fn new(settings: InjectSettings, images: Arc<dyn ImageConfigSource>) -> Self {
        Admission {
            settings,
            images,
            lookup_deadline: DEFAULT_LOOKUP_DEADLINE,
        }
    }

    /// Sets how long one review may wait for all its image lookups together; an image
    /// not read by then denies the pod.
    pub fn with_lookup_deadline(mut self, deadline: Duration) -> Self {
        self.lookup_deadline = deadline;
        self
    }

    /// Answers one review. `Err` only for a body that is not an AdmissionReview for a Pod.
    pub async fn review(&self, body: &[u8]) -> Result<Reviewed, BadRequest> {
        let request = decode(body)?;
        let mut subject = Subject {
            uid: request.uid.clone(),
            namespace: request.namespace.clone().unwrap_or_default(),
            pod: request.name.clone(),
        };
        let (response, outcome, patch_bytes) = match pod_of(&request) {
            Ok(pod) => {
                if subject.pod.is_empty() {
                    subject.pod = pod_name(&pod);
                }
                self.admit(&request, &pod).await
            }
            Err(reason) => {
                let mut response = AdmissionResponse::from(&request).deny(reason);
                response.allowed = false;
                (response, Outcome::Invalid, 0)
            }
        };
        let body = encode(response)?;
        Ok(Reviewed {
            body,
            outcome,
            patch_bytes,
            subject,
        })
    }

    async fn admit(
        &self,
        request: &AdmissionRequest<DynamicObject>,
        pod: &Pod,
    ) -> (AdmissionResponse, Outcome, usize) {
        let allow = || AdmissionResponse::from(request);
        if !needs_injection(request, pod) {
            return (allow(), Outcome::Skipped, 0);
        }
        let plan = match inject::plan(pod, &self.settings.allow_vault_hosts) {
            Ok(Some(plan)) => plan,
            Ok(None) => return (allow(), Outcome::Skipped, 0),
            Err(denial) => return (allow().deny(denial), Outcome::Denied, 0),
        };
        if plan.targets.is_empty() {
            return (with_warnings(allow(), &plan.warnings), Outcome::Skipped, 0);
        }
        let images = self
            .look_up_images(&plan, pod, request.namespace.as_deref())
            .await;
        let mutation = match inject::mutate(pod, &plan, &self.settings, &images) {
            Ok(mutation) => mutation,
            Err(denial) => return (allow().deny(denial), Outcome::Denied, 0),
        };
        let patch_bytes = serde_json::to_vec(&mutation.patch)
            .map(|v| v.len())
            .unwrap_or(0);
        match allow().with_patch(mutation.patch) {
            Ok(response) => (
                with_warnings(response, &mutation.warnings),
                Outcome::Patched,
                patch_bytes,
            ),
            Err(e) => (
                AdmissionResponse::from(request).deny(format!("cannot encode the patch: {e}")),
                Outcome::Invalid,
                0,
            ),
        }
    }

    /// Looks up every distinct image concurrently, all within one deadline.
    async fn look_up_images(
        &self,
        plan: &Plan,
        pod: &Pod,
        namespace: Option<&str>,
    ) -> BTreeMap<String, Result<ImageConfig, String>> {
        let images = plan.images_to_look_up();
        if images.is_empty() {
            return BTreeMap::new();
        }
        // The pod in a CREATE review often has no namespace yet: the request has it, and
        // the lookup needs it to find the pod's pull secrets.
        let owned;
        let pod = match (&pod.metadata.namespace, namespace) {
            (None, Some(ns)) => {
                let mut with_namespace = pod.clone();
                with_namespace.metadata.namespace = Some(ns.to_string());
                owned = with_namespace;
                &owned
            }
            _ => pod,
        };
        let deadline = tokio::time::Instant::now() + self.lookup_deadline;
        let limit = self.lookup_deadline;
        let lookups = images.into_iter().map(|image| async move {
            let result =
                match tokio::time::timeout_at(deadline, self.images.image_config(image, pod)).await
                {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(_) => Err(format!(
                        "the registry did not answer within {} (the webhook's --registry-timeout)",
                        akv_core::settings::format_duration(limit)
                    )),
                };
            (image.to_string(), result)
        });
        futures::future::join_all(lookups)
            .await
            .into_iter()
            .collect()
    }
}

/// Encodes the answer. kube-core serializes the patch as an array of numbers; the API
/// server reads Go's `[]byte` as base64 too, which is a third of the size, so send that.
fn encode(response: AdmissionResponse) -> Result<Vec<u8>, BadRequest> {
    let failed =
        |e: serde_json::Error| BadRequest::Malformed(format!("cannot encode the response: {e}"));
    let patch = response.patch.as_deref().map(|p| BASE64.encode(p));
    let mut review = serde_json::to_value(response.into_review()).map_err(failed)?;
    if let (Some(patch), Some(slot)) = (patch, review.pointer_mut("/response/patch")) {
        *slot = Value::String(patch);
    }
    serde_json::to_vec(&review).map_err(failed)
}

/// The pod's name, or `generateName*` for a pod a controller is creating.
fn pod_name(pod: &Pod) -> String {
    match (&pod.metadata.name, &pod.metadata.generate_name) {
        (Some(name), _) => name.clone(),
        (None, Some(prefix)) => format!("{prefix}*"),
        (None, None) => String::new(),
    }
}

/// A serde error's message without the quoted input it may echo: a pod's env values can
/// be anything, and these messages reach logs and users.
fn redacted(error: &serde_json::Error) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in error.to_string().chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// Whether the webhook should look at this pod at all: a CREATE of a pod that is not
/// opted out and not injected already (reinvocation is a no-op).
fn needs_injection(request: &AdmissionRequest<DynamicObject>, pod: &Pod) -> bool {
    let opted_out = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(OPT_OUT_LABEL))
        .is_some_and(|v| v == "false");
    let injected = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(STATUS_ANNOTATION))
        .is_some_and(|v| v == STATUS_INJECTED);
    matches!(request.operation, Operation::Create) && !opted_out && !injected
}

fn with_warnings(mut response: AdmissionResponse, warnings: &[String]) -> AdmissionResponse {
    if !warnings.is_empty() {
        response.warnings = Some(warnings.to_vec());
    }
    response
}

/// Reads the body as an AdmissionReview v1 whose request is about a core/v1 Pod.
fn decode(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, BadRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BadRequest::Empty);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| BadRequest::Json(redacted(&e)))?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(BadRequest::WrongKind { api_version, kind });
    }
    if value.get("request").is_none_or(Value::is_null) {
        return Err(BadRequest::NoRequest);
    }
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_value(value).map_err(|e| BadRequest::Malformed(redacted(&e)))?;
    let request: AdmissionRequest<DynamicObject> =
        review.try_into().map_err(|_| BadRequest::NoRequest)?;
    let gvk = &request.kind;
    if !(gvk.group.is_empty() && gvk.version == "v1" && gvk.kind == "Pod")
        || request.sub_resource.is_some()
    {
        let group = if gvk.group.is_empty() {
            "core"
        } else {
            gvk.group.as_str()
        };
        let mut what = format!("{group}/{}/{}", gvk.version, gvk.kind);
        if let Some(sub) = &request.sub_resource {
            what.push_str(&format!(" (subresource {sub})"));
        }
        return Err(BadRequest::NotAPod(what));
    }
    Ok(request)
}

/// The Pod in a review, typed. An object that is missing or not a Pod is answered with
/// an admission error rather than allowed.
fn pod_of(request: &AdmissionRequest<DynamicObject>) -> Result<Pod, String> {
    let object = request.object.as_ref().ok_or_else(|| {
        "the review carries no object: akv-injector only handles pod CREATE".to_string()
    })?;
    let value = serde_json::to_value(object)
        .map_err(|e| format!("the pod cannot be read: {}", redacted(&e)))?;
    serde_json::from_value(value)
        .map_err(|e| format!("the object is not a valid Pod: {}", redacted(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::NoLookup;
    use proptest::prelude::*;
    use serde_json::json;

    fn admission() -> Admission {
        let settings = InjectSettings {
            env_image: "akv-injector:test".to_string(),
            allow_vault_hosts: akv_core::HostPolicy::default(),
        };
        Admission::new(settings, Arc::new(NoLookup))
    }

    fn review(kind: Value, object: Value) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": kind,
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE",
                "userInfo": {},
                "object": object,
            }
        })
    }

    fn pod_kind() -> Value {
        json!({"group": "", "version": "v1", "kind": "Pod"})
    }

    fn run(body: &[u8]) -> Result<Reviewed, BadRequest> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(admission().review(body))
    }

    #[test]
    fn requests_that_are_not_reviews_are_bad_requests() {
        let deployment = json!({"group": "apps", "version": "v1", "kind": "Deployment"});
        let mut scale = review(pod_kind(), json!({}));
        scale["request"]["subResource"] = json!("ephemeralcontainers");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "empty request body: POST an AdmissionReview (admission.k8s.io/v1) as JSON"),
            (b" \n".to_vec(), "empty request body: POST an AdmissionReview (admission.k8s.io/v1) as JSON"),
            (b"{".to_vec(), "request body is not valid JSON: EOF while parsing an object at line 1 column 1"),
            (b"[1,2]".to_vec(), "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got /"),
            (
                br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#.to_vec(),
                "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got admission.k8s.io/v1beta1/AdmissionReview",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
                "the AdmissionReview has no request",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":1}}"#.to_vec(),
                "the AdmissionReview is malformed",
            ),
            (
                serde_json::to_vec(&review(deployment, json!({}))).expect("json"),
                "this webhook handles Pods, but the review is for apps/v1/Deployment: check the MutatingWebhookConfiguration's rules",
            ),
            (
                serde_json::to_vec(&scale).expect("json"),
                "this webhook handles Pods, but the review is for core/v1/Pod (subresource ephemeralcontainers)",
            ),
        ];
        for (body, want) in cases {
            let err = run(&body).expect_err(&String::from_utf8_lossy(&body));
            assert!(err.to_string().starts_with(want), "{err} != {want}");
        }
    }

    #[test]
    fn an_object_that_is_not_a_pod_is_an_admission_error() {
        for object in [Value::Null, json!({"spec": {"containers": "web"}})] {
            let body = serde_json::to_vec(&review(pod_kind(), object)).expect("json");
            let reviewed = run(&body).expect("a review");
            assert_eq!(reviewed.outcome, Outcome::Invalid);
            let answer: Value = serde_json::from_slice(&reviewed.body).expect("json");
            assert_eq!(answer["response"]["allowed"], false);
            assert_eq!(answer["response"]["uid"], "u-1");
        }
    }

    #[test]
    fn errors_do_not_echo_values() {
        let pod = json!({"spec": {"containers": [{"name": "c", "env": "hunter2"}]}});
        let body = serde_json::to_vec(&review(pod_kind(), pod)).expect("json");
        let reviewed = run(&body).expect("a review");
        let text = String::from_utf8_lossy(&reviewed.body);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("not a valid Pod: invalid type"), "{text}");
        assert_eq!(reviewed.subject.uid, "u-1");
        let bad = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"s3cr3t-value","kind":7}}"#;
        let err = run(bad).expect_err("malformed").to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = run(&body);
        }

        #[test]
        fn arbitrary_env_values_never_panic(values in proptest::collection::vec("(akv:|\\$\\{akv:|[a-z$}{/#:])[ -~]{0,40}", 1..6)) {
            let env: Vec<Value> = values.iter().enumerate().map(|(i, v)| json!({"name": format!("V{i}"), "value": v})).collect();
            let pod = json!({
                "metadata": {"name": "p", "annotations": {"akv-injector.io/vault": "kv-1"}},
                "spec": {"containers": [{"name": "c", "image": "i", "command": ["/a"], "env": env}]}
            });
            let reviewed = run(&serde_json::to_vec(&review(pod_kind(), pod)).expect("json"));
            prop_assert!(reviewed.is_ok());
        }
    }
}
