//! Reading a request body as an AdmissionReview v1 about a Pod. The body is read into a
//! typed [`Request`] whose object stays raw JSON text, and that object is read into a
//! typed [`Pod`] once; nothing goes through an untyped `serde_json::Value`. Every error
//! names what is wrong without echoing the sender's values.

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::Operation;
use kube::core::{GroupVersionKind, GroupVersionResource};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::BadRequest;

/// The `request` of an AdmissionReview v1, as far as this webhook reads it. The fields
/// named `_…` are read only so that a review kube would refuse is refused here too.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Request<'a> {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(rename = "resource")]
    _resource: GroupVersionResource,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default, rename = "requestKind")]
    _request_kind: Option<GroupVersionKind>,
    #[serde(default, rename = "requestResource")]
    _request_resource: Option<GroupVersionResource>,
    #[serde(default, rename = "requestSubResource")]
    _request_sub_resource: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: Operation,
    #[serde(rename = "userInfo")]
    _user_info: UserInfo,
    #[serde(default, rename = "dryRun")]
    _dry_run: bool,
    /// The object as it was sent; `None` when missing or `null`.
    #[serde(default, borrow)]
    pub object: Option<&'a RawValue>,
}

/// The Pod of a review, typed, and what the typed view cannot tell about the JSON sent.
pub(super) struct SentPod {
    pub pod: Pod,
    /// Whether the object has a `metadata` object (a typed Pod defaults a missing one).
    pub has_metadata: bool,
}

/// Reads the body as an AdmissionReview v1 whose request is about a core/v1 Pod.
pub(super) fn decode(body: &[u8]) -> Result<Request<'_>, BadRequest> {
    let json = |e: serde_json::Error| BadRequest::Json(with_position(&e));
    let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Err(BadRequest::Empty);
    };
    if *first != b'{' {
        // Valid JSON that is not an object is the wrong kind of document.
        serde_json::from_slice::<IgnoredAny>(body).map_err(json)?;
        return Err(BadRequest::WrongKind {
            api_version: String::new(),
            kind: String::new(),
        });
    }
    let mut reader = serde_json::Deserializer::from_slice(body);
    let [api_version, kind, request] = Members(["apiVersion", "kind", "request"])
        .deserialize(&mut reader)
        .map_err(json)?;
    reader.end().map_err(json)?;
    let (api_version, kind) = (text(api_version), text(kind));
    if api_version.as_deref() != Some("admission.k8s.io/v1")
        || kind.as_deref() != Some("AdmissionReview")
    {
        return Err(BadRequest::WrongKind {
            api_version: api_version.unwrap_or_default(),
            kind: kind.unwrap_or_default(),
        });
    }
    let request = not_null(request).ok_or(BadRequest::NoRequest)?;
    let request: Request<'_> =
        serde_json::from_str(request.get()).map_err(|e| BadRequest::Malformed(redacted(&e)))?;
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

/// The Pod in a review, typed. An object that is missing, is not a `v1` `Pod` by its own
/// `apiVersion` and `kind`, or does not read as a Pod is answered with an admission
/// error rather than allowed.
pub(super) fn pod_of(object: Option<&RawValue>) -> Result<SentPod, String> {
    let object = object.ok_or_else(|| {
        "the review carries no object: akv-injector only handles pod CREATE".to_string()
    })?;
    let kind_of_json = json_type(object);
    if kind_of_json != "object" {
        return Err(format!(
            "the object is not a v1 Pod: it is a JSON {kind_of_json}, not an object"
        ));
    }
    let invalid = |e: serde_json::Error| format!("the object is not a valid Pod: {}", redacted(&e));
    let mut reader = serde_json::Deserializer::from_str(object.get());
    let [api_version, kind, metadata] = Members(["apiVersion", "kind", "metadata"])
        .deserialize(&mut reader)
        .map_err(invalid)?;
    let (api_version, kind) = (text(api_version), text(kind));
    if (api_version.as_deref(), kind.as_deref()) != (Some("v1"), Some("Pod")) {
        return Err(format!(
            "the object is not a v1 Pod: {} and {}; akv-injector only handles Pods, check the MutatingWebhookConfiguration's rules",
            described("apiVersion", api_version.as_deref()),
            described("kind", kind.as_deref())
        ));
    }
    let pod = serde_json::from_str(object.get()).map_err(invalid)?;
    Ok(SentPod {
        pod,
        has_metadata: metadata.is_some_and(|m| json_type(m) == "object"),
    })
}

/// Reads a JSON object and keeps the raw text of the members named, the last one of
/// duplicates (as a `serde_json::Value` would); every other member is skipped unread.
struct Members<const N: usize>([&'static str; N]);

impl<'de, const N: usize> DeserializeSeed<'de> for Members<N> {
    type Value = [Option<&'de RawValue>; N];

    fn deserialize<D: Deserializer<'de>>(self, reader: D) -> Result<Self::Value, D::Error> {
        reader.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Members<N> {
    type Value = [Option<&'de RawValue>; N];

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = [None; N];
        while let Some(key) = map.next_key::<String>()? {
            match self.0.iter().position(|name| *name == key) {
                Some(i) => found[i] = Some(map.next_value::<&RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

fn not_null(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| json_type(r) != "null")
}

/// The value as text when it is a JSON string; `None` for anything else.
fn text(raw: Option<&RawValue>) -> Option<String> {
    raw.filter(|r| json_type(r) == "string")
        .and_then(|r| serde_json::from_str(r.get()).ok())
}

/// What kind of JSON value a valid raw value is, by its first character.
fn json_type(raw: &RawValue) -> &'static str {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// `its kind is 'Deployment'` or `it has no kind`, the value shortened: it is the pod
/// author's text.
fn described(field: &str, value: Option<&str>) -> String {
    const SHOWN: usize = 64;
    match value {
        Some(v) if v.chars().count() > SHOWN => {
            let head: String = v.chars().take(SHOWN).collect();
            format!("its {field} is '{}…'", head.escape_debug())
        }
        Some(v) => format!("its {field} is '{}'", v.escape_debug()),
        None => format!("it has no {field}"),
    }
}

/// A serde error's message without the quoted input it may echo (a pod's env values can
/// be anything, and these messages reach logs and users) and without its position, which
/// is in a part of the body, not in the body.
pub(super) fn redacted(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let message = text.strip_suffix(&position).unwrap_or(&text);
    let mut out = String::new();
    let mut quoted = false;
    for c in message.chars() {
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

/// [`redacted`], with the position in the body.
fn with_position(error: &serde_json::Error) -> String {
    format!(
        "{} at line {} column {}",
        redacted(error),
        error.line(),
        error.column()
    )
}
