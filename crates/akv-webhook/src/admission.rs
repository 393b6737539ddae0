//! The admission path: decode an AdmissionReview, plan, look up what must be looked up,
//! mutate (pure), and answer. It never returns an error to the HTTP layer except for a
//! request that is not an AdmissionReview at all ([`BadRequest`], answered with HTTP 400).

use thiserror::Error;

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

/// Settings the operator gives the webhook that shape every patch.
#[derive(Debug, Clone)]
pub struct InjectSettings {
    /// Image of the init container that installs akv-env (`--env-image`).
    pub env_image: String,
    /// Extra vault hosts the operator allows (`--allow-vault-host`), passed down to akv-env.
    pub allow_vault_hosts: akv_core::HostPolicy,
}

/// Answers admission reviews. Cheap to share behind an `Arc`.
pub struct Admission {
    settings: InjectSettings,
}

impl Admission {
    /// An admission handler with the operator's settings.
    pub fn new(settings: InjectSettings) -> Self {
        Admission { settings }
    }

    /// Answers one review. `Err` only for a body that is not an AdmissionReview for a Pod.
    pub async fn review(&self, body: &[u8]) -> Result<Reviewed, BadRequest> {
        let _ = (&self.settings, body);
        Err(BadRequest::Empty)
    }
}
