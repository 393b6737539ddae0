//! The admission path: decode an AdmissionReview, plan, look up what must be looked up,
//! mutate (pure), and answer. It never returns an error to the HTTP layer except for a
//! request that is not an AdmissionReview at all ([`BadRequest`], answered with HTTP 400).
//! Each review runs in a `review` tracing span that names it.

mod decode;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionResponse, Operation};
use serde_json::Value;
use thiserror::Error;
use tracing::Instrument;

use crate::inject::{self, ImageConfig, Plan};
use crate::registry::{ImageConfigSource, LookupError};
use decode::{decode, pod_of, Request, SentPod};

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
    /// Every outcome (a new variant goes here and in [`Outcome::as_str`]).
    pub const ALL: [Outcome; 4] = [
        Outcome::Skipped,
        Outcome::Patched,
        Outcome::Denied,
        Outcome::Invalid,
    ];

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
    /// Size in bytes of the answer's JSONPatch (0 when there is none).
    pub patch_bytes: usize,
    /// Which request and pod this was, for logs.
    pub subject: Subject,
    /// The `review` span the review was handled in: log lines about it belong in it.
    pub span: tracing::Span,
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

/// How many distinct images of one review are looked up at once (the registry source
/// bounds lookups across all reviews too).
pub const LOOKUPS_PER_REVIEW: usize = 8;

/// The result of looking up each image of a plan, by image reference.
type Lookups = BTreeMap<String, Result<ImageConfig, LookupError>>;

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
        let sent = pod_of(request.object);
        let subject = Subject {
            uid: request.uid.clone(),
            namespace: request.namespace.clone().unwrap_or_default(),
            pod: match (&sent, request.name.is_empty()) {
                (Ok(sent), true) => pod_name(&sent.pod),
                _ => request.name.clone(),
            },
        };
        let span = tracing::info_span!(
            "review",
            uid = %subject.uid,
            namespace = %subject.namespace,
            pod = %subject.pod,
            operation = ?request.operation,
        );
        let (response, outcome) = match sent {
            // The body bounds the object's size from above (its JSON is part of it).
            Ok(pod) => {
                self.admit(&request, &pod, body.len())
                    .instrument(span.clone())
                    .await
            }
            Err(reason) => (allowed(&request).deny(reason), Outcome::Invalid),
        };
        let (body, patch_bytes) = encode(response)?;
        Ok(Reviewed {
            body,
            outcome,
            patch_bytes,
            subject,
            span,
        })
    }

    async fn admit(
        &self,
        request: &Request<'_>,
        sent: &SentPod,
        object_bytes: usize,
    ) -> (AdmissionResponse, Outcome) {
        let pod = &sent.pod;
        let allow = || allowed(request);
        if !needs_injection(request, pod) {
            return (allow(), Outcome::Skipped);
        }
        let plan = match inject::plan(pod, &self.settings.allow_vault_hosts, object_bytes) {
            Ok(Some(plan)) => plan,
            Ok(None) => return (allow(), Outcome::Skipped),
            Err(denial) => return (allow().deny(denial), Outcome::Denied),
        };
        if plan.targets.is_empty() {
            return (with_warnings(allow(), &plan.warnings), Outcome::Skipped);
        }
        let images = self
            .look_up_images(&plan, pod, request.namespace.as_deref())
            .await;
        let mut mutation = match inject::mutate(pod, &plan, &self.settings, &images) {
            Ok(mutation) => mutation,
            Err(denial) => return (allow().deny(denial), Outcome::Denied),
        };
        if !sent.has_metadata {
            // The typed Pod reads a missing `metadata` as empty; the patch must apply to
            // the object as it was sent, so it creates `metadata` first.
            mutation.patch.0.insert(0, inject::add_metadata());
        }
        match allow().with_patch(mutation.patch) {
            Ok(response) => (
                with_warnings(response, &mutation.warnings),
                Outcome::Patched,
            ),
            Err(e) => (
                allow().deny(format!("cannot encode the patch: {e}")),
                Outcome::Invalid,
            ),
        }
    }

    /// Looks up every distinct image, at most [`LOOKUPS_PER_REVIEW`] at once, all within
    /// one deadline for the whole review; an image not read by then is a timeout. The
    /// lookups run inside this future (nothing is spawned): when it returns, none of them
    /// is left running. Credentials are read in the review's namespace only.
    async fn look_up_images(&self, plan: &Plan<'_>, pod: &Pod, namespace: Option<&str>) -> Lookups {
        use futures::StreamExt;
        let images = plan.images_to_look_up();
        let Some(namespace) = namespace.filter(|ns| !ns.is_empty()) else {
            return images
                .into_iter()
                .map(|image| (image.to_string(), Err(LookupError::NoNamespace)))
                .collect();
        };
        let limit = self.lookup_deadline;
        let deadline = tokio::time::Instant::now() + limit;
        let mut results = BTreeMap::new();
        let mut pending = images.iter().copied();
        let mut running = futures::stream::FuturesUnordered::new();
        let collect = async {
            loop {
                while running.len() < LOOKUPS_PER_REVIEW {
                    let Some(image) = pending.next() else { break };
                    running.push(async move {
                        let result = self.images.image_config(image, pod, namespace).await;
                        (image, result)
                    });
                }
                let Some((image, result)) = running.next().await else {
                    break;
                };
                results.insert(image.to_string(), result);
            }
        };
        // Past the deadline the unfinished lookups are dropped, which cancels them.
        let _ = tokio::time::timeout_at(deadline, collect).await;
        for image in images {
            results
                .entry(image.to_string())
                .or_insert(Err(LookupError::Timeout(limit)));
        }
        results
    }
}

/// An answer to `request` that allows it (kube builds one only from its own request type).
fn allowed(request: &Request<'_>) -> AdmissionResponse {
    let mut response = AdmissionResponse::invalid("");
    response.uid = request.uid.clone();
    response.allowed = true;
    response.result = Default::default();
    response
}

/// Encodes the answer, and says how large its patch is. kube-core serializes the patch as
/// an array of numbers; the API server reads Go's `[]byte` as base64 too, which is a third
/// of the size, so send that.
fn encode(response: AdmissionResponse) -> Result<(Vec<u8>, usize), BadRequest> {
    let failed =
        |e: serde_json::Error| BadRequest::Malformed(format!("cannot encode the response: {e}"));
    let patch_bytes = response.patch.as_ref().map_or(0, Vec::len);
    let patch = response.patch.as_deref().map(|p| BASE64.encode(p));
    let mut review = serde_json::to_value(response.into_review()).map_err(failed)?;
    if let (Some(patch), Some(slot)) = (patch, review.pointer_mut("/response/patch")) {
        *slot = Value::String(patch);
    }
    let body = serde_json::to_vec(&review).map_err(failed)?;
    Ok((body, patch_bytes))
}

/// The pod's name, or `generateName*` for a pod a controller is creating.
fn pod_name(pod: &Pod) -> String {
    match (&pod.metadata.name, &pod.metadata.generate_name) {
        (Some(name), _) => name.clone(),
        (None, Some(prefix)) => format!("{prefix}*"),
        (None, None) => String::new(),
    }
}

/// Whether the webhook should look at this pod at all: a CREATE of a pod that is not
/// opted out and not injected already (reinvocation is a no-op).
fn needs_injection(request: &Request<'_>, pod: &Pod) -> bool {
    matches!(request.operation, Operation::Create) && !inject::is_left_alone(pod)
}

/// Adds the plan's warnings (already bounded by [`inject::Warnings`]).
fn with_warnings(mut response: AdmissionResponse, warnings: &[String]) -> AdmissionResponse {
    if !warnings.is_empty() {
        response.warnings = Some(warnings.to_vec());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::{STATUS_ANNOTATION, STATUS_INJECTED};
    use crate::registry::NoLookup;
    use proptest::prelude::*;
    use serde_json::json;

    fn admission() -> Admission {
        let settings = InjectSettings {
            env_image: "akv-injector:test".to_string(),
            allow_vault_hosts: akv_core::HostPolicy::default(),
            allow_managed_identity: false,
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
            .enable_time()
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

    /// The answer's `response` of a review that is answered.
    fn answer(reviewed: &Reviewed) -> Value {
        let answer: Value = serde_json::from_slice(&reviewed.body).expect("json");
        answer["response"].clone()
    }

    #[test]
    fn an_object_that_is_not_a_pod_is_an_admission_error() {
        let not_v1_pod = |what: &str| {
            format!("the object is not a v1 Pod: {what}; akv-injector only handles Pods, check the MutatingWebhookConfiguration's rules")
        };
        let cases = [
            (
                Value::Null,
                "the review carries no object: akv-injector only handles pod CREATE".to_string(),
            ),
            (
                json!([1]),
                "the object is not a v1 Pod: it is a JSON array, not an object".to_string(),
            ),
            (
                json!("pod"),
                "the object is not a v1 Pod: it is a JSON string, not an object".to_string(),
            ),
            (
                json!({"spec": {"containers": []}}),
                not_v1_pod("it has no apiVersion and it has no kind"),
            ),
            (
                json!({"apiVersion": "v0", "kind$(VAR)": "Pod"}),
                not_v1_pod("its apiVersion is 'v0' and it has no kind"),
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
                not_v1_pod("its apiVersion is 'apps/v1' and its kind is 'Deployment'"),
            ),
            (
                json!({"apiVersion": "v1", "kind": "pod"}),
                not_v1_pod("its apiVersion is 'v1' and its kind is 'pod'"),
            ),
            (
                json!({"apiVersion": 1, "kind": "Pod"}),
                not_v1_pod("it has no apiVersion and its kind is 'Pod'"),
            ),
            (
                json!({"apiVersion": "v1", "kind": "x".repeat(100)}),
                not_v1_pod(&format!(
                    "its apiVersion is 'v1' and its kind is '{}…'",
                    "x".repeat(64)
                )),
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": "web"}}),
                "the object is not a valid Pod: invalid type: string \"…\", expected a sequence"
                    .to_string(),
            ),
        ];
        for (object, want) in cases {
            let body = serde_json::to_vec(&review(pod_kind(), object.clone())).expect("json");
            let reviewed = run(&body).expect("a review");
            assert_eq!(reviewed.outcome, Outcome::Invalid, "{object}");
            let response = answer(&reviewed);
            assert_eq!(response["allowed"], false);
            assert_eq!(response["uid"], "u-1");
            assert_eq!(response["status"]["message"], want.as_str(), "{object}");
        }
    }

    #[test]
    fn log_lines_of_a_review_name_it() {
        #[derive(Clone, Default)]
        struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
                lines.extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "web-", "annotations": {"akv-injector.io/vault": "kv-1"}},
            "spec": {"containers": [{"name": "c", "image": "127.0.0.1:1/app:1", "env": [{"name": "DB", "value": "akv:db"}]}]}
        });
        let mut body = review(pod_kind(), pod);
        body["request"]["namespace"] = json!("team");
        let body = serde_json::to_vec(&body).expect("json");
        // The registry source logs a failed lookup at debug level; this one fails at once
        // (port 1 on loopback answers nothing, or the host rules refuse it).
        crate::tls::install_default_provider();
        let registry = crate::registry::RegistrySource::new(
            crate::registry::RegistryOptions::default(),
            Arc::new(crate::registry::NoPullSecrets),
            None,
            None,
        )
        .expect("a registry source");
        let admission = Admission::new(admission().settings, Arc::new(registry));
        let reviewed = tracing::subscriber::with_default(subscriber, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            // Other tests meet the same callsites at the same time without a subscriber and
            // may cache that they are off: once every callsite is registered, ask again.
            let _ = rt.block_on(admission.review(&body));
            tracing::callsite::rebuild_interest_cache();
            captured.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
            rt.block_on(admission.review(&body))
        })
        .expect("a review");
        assert_eq!(reviewed.outcome, Outcome::Denied);
        let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        let line = logs
            .lines()
            .find(|l| l.contains("image lookup failed"))
            .unwrap_or_else(|| panic!("no lookup line in {logs}"));
        assert!(
            line.contains("review{uid=u-1 namespace=team pod=web-* operation=Create}"),
            "{line}"
        );
    }

    #[test]
    fn errors_do_not_echo_values() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "env": "hunter2"}]}});
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
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "annotations": {"akv-injector.io/vault": "kv-1"}},
                "spec": {"containers": [{"name": "c", "image": "i", "command": ["/a"], "env": env}]}
            });
            let reviewed = run(&serde_json::to_vec(&review(pod_kind(), pod)).expect("json"));
            prop_assert!(reviewed.is_ok());
        }

        /// Every object that is not a `v1` `Pod` by its own apiVersion and kind is
        /// answered as invalid, whatever `request.kind` says, naming what it is.
        #[test]
        fn objects_that_are_not_v1_pods_are_invalid(
            api_version in proptest::option::of(prop_oneof![Just("v1".to_string()), Just("v0".to_string()), Just("apps/v1".to_string()), "[ -~]{0,12}"]),
            kind in proptest::option::of(prop_oneof![Just("Pod".to_string()), Just("Deployment".to_string()), Just("pod".to_string()), "[ -~]{0,12}"]),
            kind_key in prop_oneof![Just("kind"), Just("kind$(VAR)"), Just("Kind")],
            pod in arb_pod(),
        ) {
            let mut object = pod;
            let fields = object.as_object_mut().expect("an object");
            fields.remove("apiVersion");
            fields.remove("kind");
            if let Some(v) = &api_version {
                fields.insert("apiVersion".into(), json!(v));
            }
            if let Some(k) = &kind {
                fields.insert(kind_key.into(), json!(k));
            }
            let is_v1_pod = api_version.as_deref() == Some("v1") && kind.as_deref() == Some("Pod") && kind_key == "kind";
            prop_assume!(!is_v1_pod);
            let reviewed = run(&serde_json::to_vec(&review(pod_kind(), object)).expect("json")).expect("a review");
            prop_assert_eq!(reviewed.outcome, Outcome::Invalid);
            let response = answer(&reviewed);
            prop_assert_eq!(&response["allowed"], &json!(false));
            let message = response["status"]["message"].as_str().unwrap_or_default().to_string();
            prop_assert!(message.starts_with("the object is not a v1 Pod: "), "{}", message);
        }

        /// Every patch returned applies, with an RFC 6902 implementation, to the object
        /// that was sent, and gives a Pod marked as injected.
        #[test]
        fn every_patch_applies_to_the_object_sent(pod in arb_pod()) {
            let mut body = review(pod_kind(), pod.clone());
            body["request"]["namespace"] = json!("team");
            let reviewed = run(&serde_json::to_vec(&body).expect("json")).expect("a review");
            let response = answer(&reviewed);
            let Some(patch) = response["patch"].as_str() else {
                prop_assert_ne!(reviewed.outcome, Outcome::Patched);
                return Ok(());
            };
            prop_assert_eq!(reviewed.outcome, Outcome::Patched);
            let bytes = BASE64.decode(patch).expect("base64");
            let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("a JSONPatch");
            let mut patched = pod.clone();
            if let Err(e) = json_patch::patch(&mut patched, &patch) {
                return Err(TestCaseError::fail(format!("{e}\nobject: {pod}\npatch: {}", String::from_utf8_lossy(&bytes))));
            }
            let typed: Pod = serde_json::from_value(patched).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let status = typed.metadata.annotations.as_ref().and_then(|a| a.get(STATUS_ANNOTATION));
            prop_assert_eq!(status.map(String::as_str), Some(STATUS_INJECTED));
        }
    }

    /// Pod-ish objects: with or without `metadata` (or `null`), annotations, labels,
    /// init containers, volumes, and containers with or without command, env and mounts.
    fn arb_pod() -> impl Strategy<Value = Value> {
        let maybe = |v: Value| prop_oneof![Just(None), Just(Some(Value::Null)), Just(Some(v))];
        let env_value = prop_oneof![
            Just("akv:db"),
            Just("akv://kv-1/tls#cert"),
            Just("plain"),
            Just("x${akv:db}y"),
            Just("akv:bad_name"),
        ];
        let env = proptest::collection::vec(env_value, 0..3).prop_map(|values| {
            let list: Vec<Value> = values
                .iter()
                .enumerate()
                .map(|(i, v)| json!({"name": format!("E{i}"), "value": v}))
                .collect();
            Value::Array(list)
        });
        let container = (
            proptest::option::of(env),
            any::<bool>(),
            maybe(json!(["--flag"])),
            maybe(json!([{"name": "data", "mountPath": "/data"}])),
        )
            .prop_map(|(env, command, args, mounts)| {
                let mut c = json!({"name": "c", "image": "registry.example/app:1"});
                if command {
                    c["command"] = json!(["/app"]);
                }
                if let Some(env) = env {
                    c["env"] = env;
                }
                if let Some(args) = args {
                    c["args"] = args;
                }
                if let Some(mounts) = mounts {
                    c["volumeMounts"] = mounts;
                }
                c
            });
        let annotations = prop_oneof![
            Just(json!({})),
            Just(json!({"akv-injector.io/vault": "kv-1"})),
            Just(json!({"akv-injector.io/vault": "kv-1", "akv-injector.io/env.DB": "db"})),
            Just(json!({"akv-injector.io/vault": "kv-1", "akv-injector.io/containers": "c1"})),
            Just(json!({"akv-injector.io/status": "injected"})),
            Just(json!({"akv-injector.io/vualt": "kv-1"})),
        ];
        let metadata = (
            maybe(Value::Null),
            maybe(json!({"azure.workload.identity/use": "true"})),
            any::<bool>(),
        )
            .prop_flat_map(move |(_, labels, present)| {
                (
                    Just(labels),
                    Just(present),
                    proptest::option::of(proptest::option::of(annotations.clone())),
                )
            })
            .prop_map(|(labels, present, annotations)| {
                if !present {
                    return None;
                }
                let mut m = json!({"generateName": "web-"});
                if let Some(labels) = labels {
                    m["labels"] = labels;
                }
                match annotations {
                    None => {}
                    Some(None) => m["annotations"] = Value::Null,
                    Some(Some(a)) => m["annotations"] = a,
                }
                Some(m)
            });
        (
            prop_oneof![
                Just(None),
                Just(Some(Value::Null)),
                metadata.prop_map(|m| m.map(Some)).prop_map(Option::flatten)
            ],
            proptest::collection::vec(container.clone(), 0..3),
            maybe(Value::Null).prop_flat_map(move |_| {
                proptest::option::of(proptest::collection::vec(container.clone(), 0..2))
            }),
            maybe(json!([{"name": "data", "emptyDir": {}}])),
        )
            .prop_map(|(metadata, containers, init, volumes)| {
                let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {}});
                if let Some(metadata) = metadata {
                    pod["metadata"] = metadata;
                }
                let named = |list: Vec<Value>, prefix: &str| -> Value {
                    Value::Array(
                        list.into_iter()
                            .enumerate()
                            .map(|(i, mut c)| {
                                c["name"] = json!(format!("{prefix}{i}"));
                                c
                            })
                            .collect(),
                    )
                };
                pod["spec"]["containers"] = named(containers, "c");
                if let Some(init) = init {
                    pod["spec"]["initContainers"] = named(init, "i");
                }
                if let Some(volumes) = volumes {
                    pod["spec"]["volumes"] = volumes;
                }
                pod
            })
    }
}
