//! Registry credentials of a pod, as the kubelet finds them: the pod's `imagePullSecrets`,
//! then its service account's, each a `kubernetes.io/dockerconfigjson` or
//! `kubernetes.io/dockercfg` Secret whose entries are matched against the image's registry.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use serde::Deserialize;

/// A username and password for one registry, and where they came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
    /// e.g. `pull secret default/regcred` — for messages; never the secret itself.
    pub source: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// Where pull secrets and service accounts are read from.
#[async_trait]
pub trait PullSecretSource: Send + Sync {
    /// The Secret, `None` when it does not exist.
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String>;
    /// The ServiceAccount, `None` when it does not exist.
    async fn service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ServiceAccount>, String>;
}

/// No Kubernetes API: no pull secrets, lookups are anonymous.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPullSecrets;

#[async_trait]
impl PullSecretSource for NoPullSecrets {
    async fn secret(&self, _: &str, _: &str) -> Result<Option<Secret>, String> {
        Ok(None)
    }
    async fn service_account(&self, _: &str, _: &str) -> Result<Option<ServiceAccount>, String> {
        Ok(None)
    }
}

/// Reads Secrets and ServiceAccounts from the Kubernetes API (`get` only).
#[derive(Clone)]
pub struct KubePullSecrets {
    client: kube::Client,
}

impl KubePullSecrets {
    pub fn new(client: kube::Client) -> Self {
        KubePullSecrets { client }
    }
}

#[async_trait]
impl PullSecretSource for KubePullSecrets {
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String> {
        let api: kube::Api<Secret> = kube::Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .map_err(|e| format!("cannot read secret {namespace}/{name}: {e}"))
    }
    async fn service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ServiceAccount>, String> {
        let api: kube::Api<ServiceAccount> = kube::Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .map_err(|e| format!("cannot read service account {namespace}/{name}: {e}"))
    }
}

/// What a pod says about its registry credentials: the review's namespace (never the
/// object's own `metadata.namespace`), its `imagePullSecrets` and its service account,
/// each name checked as a Kubernetes object name before it reaches any API path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSecretRefs {
    pub namespace: String,
    pub pull_secrets: Vec<String>,
    pub service_account: String,
}

/// Whether `name` is a DNS-1123 subdomain (what Kubernetes requires of Secret and
/// ServiceAccount names): at most 253 characters, dot-separated labels of lower-case
/// letters, digits and `-` that start and end with a letter or digit. No `/`, no `..`.
pub fn is_object_name(name: &str) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label)
}

fn checked(field: &str, name: &str) -> Result<(), String> {
    if is_object_name(name) {
        return Ok(());
    }
    let shown: String = name
        .chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string();
    Err(format!(
        "{field} '{shown}' is not a valid Kubernetes object name (a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', at most 253 characters)"
    ))
}

impl PullSecretRefs {
    /// The refs of `pod`, reviewed in `namespace`; `Err` names the field with a bad name.
    pub fn of(pod: &Pod, namespace: &str) -> Result<Self, String> {
        if !is_object_name(namespace) || namespace.contains('.') {
            return Err(format!(
                "the review's namespace '{}' is not a valid namespace name",
                namespace.escape_debug()
            ));
        }
        let spec = pod.spec.as_ref();
        let mut pull_secrets = Vec::new();
        for (i, r) in spec
            .and_then(|s| s.image_pull_secrets.as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            if r.name.is_empty() {
                continue;
            }
            checked(&format!("spec.imagePullSecrets[{i}].name"), &r.name)?;
            pull_secrets.push(r.name.clone());
        }
        let service_account = match spec.and_then(|s| s.service_account_name.as_deref()) {
            Some(name) if !name.is_empty() => {
                checked("spec.serviceAccountName", name)?;
                name.to_string()
            }
            _ => "default".to_string(),
        };
        Ok(PullSecretRefs {
            namespace: namespace.to_string(),
            pull_secrets,
            service_account,
        })
    }
}

/// The credentials that match `registry` (as named in the image, e.g. `docker.io`), in the
/// kubelet's order: the pod's pull secrets, then its service account's; within a secret,
/// the most specific matching entry first. Secrets that cannot be read are reported in
/// `notes` and skipped, as the kubelet skips them. Every read is in `refs.namespace`.
pub async fn credentials_for(
    source: &dyn PullSecretSource,
    refs: &PullSecretRefs,
    registry: &str,
    repository: &str,
) -> (Vec<Credential>, Vec<String>) {
    let namespace = refs.namespace.as_str();
    let mut names = refs.pull_secrets.clone();
    let mut notes = Vec::new();
    let sa = refs.service_account.as_str();
    match source.service_account(namespace, sa).await {
        Ok(Some(account)) => {
            for name in account
                .image_pull_secrets
                .into_iter()
                .flatten()
                .map(|r| r.name)
                .filter(|n| !n.is_empty())
            {
                if is_object_name(&name) {
                    names.push(name);
                } else {
                    notes.push(format!(
                        "service account {namespace}/{sa} names a pull secret that is not a valid object name; skipped"
                    ));
                }
            }
        }
        Ok(None) => {}
        Err(e) => notes.push(e),
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for name in names {
        if !seen.insert(name.clone()) {
            continue;
        }
        match source.secret(namespace, &name).await {
            Ok(Some(secret)) => match docker_config(&secret) {
                Ok(config) => out.extend(matching(
                    &config,
                    registry,
                    repository,
                    &format!("pull secret {namespace}/{name}"),
                )),
                Err(e) => notes.push(format!("pull secret {namespace}/{name}: {e}")),
            },
            Ok(None) => notes.push(format!("pull secret {namespace}/{name} does not exist")),
            Err(e) => notes.push(e),
        }
    }
    (out, notes)
}

#[derive(Debug, Default, Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Debug, Default, Clone, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
}

/// The entries of a `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg` Secret:
/// registry key -> (username, password).
fn docker_config(secret: &Secret) -> Result<Vec<(String, String, String)>, String> {
    let data = secret.data.as_ref();
    let get = |key: &str| data.and_then(|d| d.get(key)).map(|b| b.0.as_slice());
    let entries: BTreeMap<String, AuthEntry> = match secret.type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") => {
            let raw = get(".dockerconfigjson").ok_or("has no .dockerconfigjson key")?;
            serde_json::from_slice::<DockerConfigJson>(raw)
                .map_err(|e| format!("invalid .dockerconfigjson: {}", e.classify_msg()))?
                .auths
        }
        Some("kubernetes.io/dockercfg") => {
            let raw = get(".dockercfg").ok_or("has no .dockercfg key")?;
            serde_json::from_slice(raw)
                .map_err(|e| format!("invalid .dockercfg: {}", e.classify_msg()))?
        }
        other => {
            return Err(format!(
                "has type {}, not kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg",
                other.unwrap_or("Opaque")
            ))
        }
    };
    let mut out = Vec::new();
    for (key, entry) in entries {
        let (user, pass) = match (&entry.username, &entry.password, &entry.auth) {
            (Some(u), Some(p), _) if !u.is_empty() || !p.is_empty() => (u.clone(), p.clone()),
            (_, _, Some(auth)) if !auth.is_empty() => {
                let decoded = BASE64
                    .decode(auth.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| format!("entry {key}: 'auth' is not base64 of user:password"))?;
                let (u, p) = decoded
                    .split_once(':')
                    .ok_or_else(|| format!("entry {key}: 'auth' is not base64 of user:password"))?;
                (u.to_string(), p.to_string())
            }
            _ => continue,
        };
        out.push((key, user, pass));
    }
    Ok(out)
}

trait ClassifyMsg {
    fn classify_msg(&self) -> String;
}

impl ClassifyMsg for serde_json::Error {
    /// The error's category and position only: the input holds passwords.
    fn classify_msg(&self) -> String {
        format!(
            "{:?} error at line {} column {}",
            self.classify(),
            self.line(),
            self.column()
        )
    }
}

const DOCKER_HUB: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// The entries of a docker config that match the image, most specific (longest key) first.
fn matching(
    entries: &[(String, String, String)],
    registry: &str,
    repository: &str,
    source: &str,
) -> Vec<Credential> {
    let mut found: Vec<(usize, Credential)> = entries
        .iter()
        .filter_map(|(key, user, pass)| {
            let specificity = key_matches(key, registry, repository)?;
            Some((
                specificity,
                Credential {
                    username: user.clone(),
                    password: pass.clone(),
                    source: source.to_string(),
                },
            ))
        })
        .collect();
    found.sort_by_key(|(specificity, _)| std::cmp::Reverse(*specificity));
    found.into_iter().map(|(_, c)| c).collect()
}

/// Whether a docker config key (`host[:port][/path]`, optionally with a scheme, `*` globs
/// in host labels) matches the image; `Some(specificity)` if so.
fn key_matches(key: &str, registry: &str, repository: &str) -> Option<usize> {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = match key.split_once('/') {
        Some((h, p)) => (h, p.trim_end_matches('/')),
        None => (key, ""),
    };
    let host = host.to_ascii_lowercase();
    let registry = registry.to_ascii_lowercase();
    let hub = |h: &str| DOCKER_HUB.contains(&h);
    if hub(&host) && hub(&registry) {
        // `https://index.docker.io/v1/` is how `docker login` names Docker Hub.
        let path = if path == "v1" || path == "v2" {
            ""
        } else {
            path
        };
        return path_matches(path, repository).then_some(host.len() + path.len());
    }
    let (key_host, key_port) = split_port(&host);
    let (img_host, img_port) = split_port(&registry);
    if key_port != img_port {
        return None;
    }
    let key_labels: Vec<&str> = key_host.split('.').collect();
    let img_labels: Vec<&str> = img_host.split('.').collect();
    if key_labels.len() != img_labels.len()
        || !key_labels.iter().zip(&img_labels).all(|(k, i)| glob(k, i))
    {
        return None;
    }
    path_matches(path, repository).then_some(host.len() + path.len())
}

fn split_port(host: &str) -> (&str, Option<&str>) {
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (host, None),
    }
}

fn path_matches(path: &str, repository: &str) -> bool {
    path.is_empty() || repository == path || repository.starts_with(&format!("{path}/"))
}

/// `*` matches any run of characters within one DNS label.
fn glob(pattern: &str, label: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == label,
        Some((prefix, rest)) => {
            if !label.starts_with(prefix) {
                return false;
            }
            let tail = &label[prefix.len()..];
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn secret(type_: &str, key: &str, value: serde_json::Value) -> Secret {
        let mut data = BTreeMap::new();
        data.insert(
            key.to_string(),
            ByteString(serde_json::to_vec(&value).expect("json")),
        );
        Secret {
            type_: Some(type_.to_string()),
            data: Some(data),
            ..Secret::default()
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"namespace": "kube-system"}, "spec": spec}))
            .expect("pod")
    }

    #[test]
    fn names_cannot_escape() {
        let cases = [
            ("regcred", true),
            ("reg.cred-1", true),
            ("a", true),
            ("../../../kube-system/secrets/admin", false),
            ("a/b", false),
            ("a..b", false),
            (".a", false),
            ("a.", false),
            ("-a", false),
            ("Regcred", false),
            ("a b", false),
            ("a%2fb", false),
            ("", false),
        ];
        for (name, ok) in cases {
            assert_eq!(is_object_name(name), ok, "{name}");
        }
        assert!(!is_object_name(&"a".repeat(254)));
        assert!(is_object_name(&"a".repeat(253)));
        let bad = pod(
            json!({"imagePullSecrets": [{"name": "ok"}, {"name": "../../../kube-system/secrets/admin"}]}),
        );
        let err = PullSecretRefs::of(&bad, "team-a").expect_err("refused");
        assert!(
            err.starts_with("spec.imagePullSecrets[1].name '../../../kube-system/secrets/admin' is not a valid Kubernetes object name"),
            "{err}"
        );
        let bad = pod(json!({"serviceAccountName": "x/../../admin"}));
        let err = PullSecretRefs::of(&bad, "team-a").expect_err("refused");
        assert!(
            err.starts_with("spec.serviceAccountName 'x/../../admin'"),
            "{err}"
        );
        // The review's namespace, never the object's own (kube-system here).
        let good = pod(json!({"imagePullSecrets": [{"name": "regcred"}, {"name": ""}]}));
        let refs = PullSecretRefs::of(&good, "team-a").expect("ok");
        assert_eq!(
            refs,
            PullSecretRefs {
                namespace: "team-a".into(),
                pull_secrets: vec!["regcred".into()],
                service_account: "default".into(),
            }
        );
        assert!(PullSecretRefs::of(&good, "../kube-system").is_err());
    }

    /// Records every read.
    #[derive(Default)]
    struct Recorder {
        reads: std::sync::Mutex<Vec<(String, String, String)>>,
    }

    #[async_trait]
    impl PullSecretSource for Recorder {
        async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, String> {
            self.reads
                .lock()
                .expect("lock")
                .push(("secret".into(), ns.into(), name.into()));
            Ok(None)
        }
        async fn service_account(
            &self,
            ns: &str,
            name: &str,
        ) -> Result<Option<ServiceAccount>, String> {
            self.reads
                .lock()
                .expect("lock")
                .push(("sa".into(), ns.into(), name.into()));
            let account: ServiceAccount = serde_json::from_value(json!({
                "imagePullSecrets": [{"name": "sa-secret"}, {"name": "../escape"}]
            }))
            .expect("sa");
            Ok(Some(account))
        }
    }

    #[tokio::test]
    async fn reads_stay_in_the_review_namespace() {
        let recorder = Recorder::default();
        let p = pod(
            json!({"imagePullSecrets": [{"name": "regcred"}], "serviceAccountName": "builder"}),
        );
        let refs = PullSecretRefs::of(&p, "team-a").expect("refs");
        let (_, notes) = credentials_for(&recorder, &refs, "r.example", "a").await;
        let reads = recorder.reads.lock().expect("lock").clone();
        assert_eq!(
            reads,
            [
                (
                    "sa".to_string(),
                    "team-a".to_string(),
                    "builder".to_string()
                ),
                ("secret".into(), "team-a".into(), "regcred".into()),
                ("secret".into(), "team-a".into(), "sa-secret".into()),
            ]
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains("not a valid object name; skipped")),
            "{notes:?}"
        );
    }

    #[test]
    fn keys() {
        let cases = [
            ("registry.example", "registry.example", "a/b", true),
            ("https://registry.example", "registry.example", "a/b", true),
            ("registry.example:5000", "registry.example", "a", false),
            ("registry.example", "registry.example:5000", "a", false),
            ("127.0.0.1:5000", "127.0.0.1:5000", "a", true),
            ("registry.example/a", "registry.example", "a/b", true),
            ("registry.example/a", "registry.example", "ab/c", false),
            ("*.azurecr.io", "myacr.azurecr.io", "x", true),
            ("*.azurecr.io", "azurecr.io", "x", false),
            ("*.example", "a.b.example", "x", false),
            (
                "https://index.docker.io/v1/",
                "docker.io",
                "library/nginx",
                true,
            ),
            ("docker.io", "docker.io", "library/nginx", true),
            ("docker.io/bitnami", "docker.io", "library/nginx", false),
            ("other.example", "registry.example", "a", false),
            ("REGISTRY.example", "registry.example", "a", true),
        ];
        for (key, registry, repository, want) in cases {
            assert_eq!(
                key_matches(key, registry, repository).is_some(),
                want,
                "{key} vs {registry}/{repository}"
            );
        }
    }

    #[test]
    fn secrets_of_both_types() {
        let auth = BASE64.encode("u2:p2");
        let json_secret = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            json!({"auths": {
                "registry.example": {"username": "u1", "password": "p1"},
                "registry.example/team": {"auth": auth},
                "other.example": {"auth": auth},
            }}),
        );
        let entries = docker_config(&json_secret).expect("parses");
        let found = matching(&entries, "registry.example", "team/app", "s");
        let users: Vec<&str> = found.iter().map(|c| c.username.as_str()).collect();
        assert_eq!(users, ["u2", "u1"], "most specific first");
        let cfg = secret(
            "kubernetes.io/dockercfg",
            ".dockercfg",
            json!({"registry.example": {"auth": auth}}),
        );
        let entries = docker_config(&cfg).expect("parses");
        assert_eq!(
            matching(&entries, "registry.example", "x", "s")[0].password,
            "p2"
        );
        let opaque = Secret::default();
        assert!(docker_config(&opaque)
            .expect_err("opaque")
            .contains("not kubernetes.io/dockerconfigjson"));
        let broken = Secret {
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(
                [(
                    ".dockerconfigjson".to_string(),
                    ByteString(b"{\"auths\": \"hunter2".to_vec()),
                )]
                .into(),
            ),
            ..Secret::default()
        };
        let err = docker_config(&broken).expect_err("broken");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            format!("{:?}", matching(&entries, "registry.example", "x", "s"))
                .contains("<redacted>")
        );
    }
}
