//! The admission path: decode an AdmissionReview, plan, look up what must be looked up,
//! mutate (pure), and answer. It never returns an error to the HTTP layer except for a
//! request that is not an AdmissionReview at all ([`BadRequest`], answered with HTTP 400).

use std::collections::BTreeMap;
use std::sync::Arc;

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

/// Answers admission reviews. Cheap to share behind an `Arc`.
pub struct Admission {
    settings: InjectSettings,
    images: Arc<dyn ImageConfigSource>,
}

impl Admission {
    /// An admission handler with the operator's settings and the source of image configs
    /// for containers that have no `command`.
    pub fn new(settings: InjectSettings, images: Arc<dyn ImageConfigSource>) -> Self {
        Admission { settings, images }
    }

    /// Answers one review. `Err` only for a body that is not an AdmissionReview for a Pod.
    pub async fn review(&self, body: &[u8]) -> Result<Reviewed, BadRequest> {
        let request = decode(body)?;
        let (response, outcome, patch_bytes) = match pod_of(&request) {
            Ok(pod) => self.admit(&request, &pod).await,
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
        let images = self.look_up_images(&plan, pod).await;
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

    async fn look_up_images(
        &self,
        plan: &Plan,
        pod: &Pod,
    ) -> BTreeMap<String, Result<ImageConfig, String>> {
        let mut out = BTreeMap::new();
        for image in plan.images_to_look_up() {
            let result = self
                .images
                .image_config(image, pod)
                .await
                .map_err(|e| e.to_string());
            out.insert(image.to_string(), result);
        }
        out
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
    let value: Value = serde_json::from_slice(body).map_err(|e| BadRequest::Json(e.to_string()))?;
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
        serde_json::from_value(value).map_err(|e| BadRequest::Malformed(e.to_string()))?;
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
    let value = serde_json::to_value(object).map_err(|e| format!("the pod cannot be read: {e}"))?;
    serde_json::from_value(value).map_err(|e| format!("the object is not a valid Pod: {e}"))
}
