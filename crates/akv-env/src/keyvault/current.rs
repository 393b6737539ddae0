//! Restart on change, the Key Vault side: which version of each object was read at start
//! ([`Seen`], filled while the child fetches), and which version is current now
//! ([`Checker`], asked by the parent every interval).
//!
//! Only objects read at "latest" are watched: a pinned version (`NAME/VERSION`) never
//! changes. A secret's version is the one in its `id`, a certificate's the certificate's
//! own (`id`, not its backing secret's), a key's the key's (`key.kid`).
//!
//! Key Vault has no "current version only" call: the check is the same
//! `GET /{secrets|certificates|keys}/NAME/` the start makes, one per object, concurrently,
//! with the same identity and clients ([`Clients`], [`VaultClient`]). From a secret's answer
//! only `id` is decoded (serde skips `value` without copying it), and the answer's buffer is
//! zeroed before it is freed; nothing of it is kept but the version.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use akv_core::{HostPolicy, ObjectKind, VaultUrl};
use azure_core::http::Url;
use azure_core::Bytes;
use serde::Deserialize;

use crate::plan::ObjectId;

use super::azure::Clients;
use super::vault::VaultClient;

/// An object read at "latest", and the version that was read. No value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watched {
    pub vault: VaultUrl,
    pub kind: ObjectKind,
    pub name: String,
    pub version: String,
}

impl fmt::Display for Watched {
    /// `vault https://kv.vault.azure.net, secret db-password`: what a log line names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vault {}, {} {}",
            self.vault.url(),
            kind_word(self.kind),
            self.name
        )
    }
}

fn kind_word(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Secret => "secret",
        ObjectKind::Certificate => "certificate",
        ObjectKind::Key => "key",
    }
}

fn kind_of_word(word: &str) -> Option<ObjectKind> {
    match word {
        "secret" => Some(ObjectKind::Secret),
        "certificate" => Some(ObjectKind::Certificate),
        "key" => Some(ObjectKind::Key),
        _ => None,
    }
}

/// The version in a Key Vault object id (`https://VAULT/secrets/NAME/VERSION`), lower case.
pub fn version_of_id(id: &str) -> Option<String> {
    let rest = id.split_once("://").map_or(id, |(_, r)| r);
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    let mut segments = path.split('/').skip(1);
    match (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) {
        (Some(_collection), Some(name), Some(version), None)
            if !name.is_empty() && !version.is_empty() =>
        {
            Some(version.to_ascii_lowercase())
        }
        _ => None,
    }
}

/// The versions read during a start, filled by [`super::AzureSource`].
#[derive(Debug, Default)]
pub struct Seen(Mutex<Vec<Watched>>);

impl Seen {
    /// Notes what was read for `id`; pinned objects and ids without a version are skipped.
    pub fn note(&self, id: &ObjectId, object_id: Option<&str>) {
        if id.version.is_some() {
            return;
        }
        let Some(version) = object_id.and_then(version_of_id) else {
            return;
        };
        if let Ok(mut seen) = self.0.lock() {
            seen.push(Watched {
                vault: id.vault.clone(),
                kind: id.kind,
                name: id.name.to_ascii_lowercase(),
                version,
            });
        }
    }

    /// Everything noted, sorted, each object once.
    pub fn list(&self) -> Vec<Watched> {
        let mut list = self.0.lock().map(|s| s.clone()).unwrap_or_default();
        list.sort();
        list.dedup();
        list
    }
}

/// The child tells the parent what it read: one line per object,
/// `KIND VAULT-URL NAME VERSION` (none of them can hold a space or a newline).
pub fn encode(watched: &[Watched]) -> String {
    watched
        .iter()
        .map(|w| {
            format!(
                "{} {} {} {}\n",
                kind_word(w.kind),
                w.vault.url(),
                w.name,
                w.version
            )
        })
        .collect()
}

/// Reads what [`encode`] wrote; every vault must still pass the operator's host policy
/// (the parent sends its token only where the child was allowed to).
pub fn decode(text: &str, hosts: &HostPolicy) -> Result<Vec<Watched>, String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let bad = || format!("unexpected line from the application's start: {line:?}");
            let mut it = line.split(' ');
            let (Some(kind), Some(vault), Some(name), Some(version), None) =
                (it.next(), it.next(), it.next(), it.next(), it.next())
            else {
                return Err(bad());
            };
            let kind = kind_of_word(kind).ok_or_else(bad)?;
            let vault = VaultUrl::parse_spec(vault).map_err(|_| bad())?;
            hosts.check(&vault).map_err(|e| e.to_string())?;
            let plain = |s: &str| {
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            if !plain(name) || !plain(version) {
                return Err(bad());
            }
            Ok(Watched {
                vault,
                kind,
                name: name.to_string(),
                version: version.to_string(),
            })
        })
        .collect()
}

/// What a check found for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    /// The current version (lower case).
    Version(String),
    /// The check failed (403, 5xx, network): nothing is concluded from it.
    Failed(String),
}

/// The parts of an answer a check reads: the ids, nothing else.
#[derive(Deserialize)]
struct Ids {
    id: Option<String>,
    key: Option<KeyIds>,
}

#[derive(Deserialize)]
struct KeyIds {
    kid: Option<String>,
}

/// The version an answer names: `key.kid` for keys, `id` otherwise.
pub fn version_in_answer(kind: ObjectKind, body: &[u8]) -> Result<String, String> {
    let ids: Ids = serde_json::from_slice(body)
        .map_err(|e| format!("the answer is not a Key Vault object: {e}"))?;
    let id = match kind {
        ObjectKind::Key => ids.key.and_then(|k| k.kid),
        ObjectKind::Secret | ObjectKind::Certificate => ids.id,
    };
    id.as_deref()
        .and_then(version_of_id)
        .ok_or_else(|| "the answer names no object version".to_string())
}

/// Zeroes an answer's buffer when this is its only owner (a secret's value was in it).
fn wipe(body: Bytes) {
    if let Ok(mut owned) = body.try_into_mut() {
        owned.fill(0);
    }
}

/// Asks Key Vault for the current versions with the pod's identity. The credential (and
/// its cached token) lives as long as the checker; each check opens its own connection
/// per vault and closes it when done, so nothing stays open between intervals.
pub struct Checker {
    clients: Clients,
    /// How long one check may take.
    timeout: Duration,
}

impl Checker {
    pub fn new(clients: Clients, timeout: Duration) -> Self {
        Checker { clients, timeout }
    }

    /// The current version of each object, in order: one request per object, all at once.
    pub async fn check(&mut self, objects: &[Watched]) -> Vec<Current> {
        let deadline = Instant::now() + self.timeout;
        // The credentials (and the tokens they keep) stay; this round's token cells are new.
        self.clients.credentials.new_round(deadline, self.timeout);
        let mut vaults: BTreeMap<&VaultUrl, Result<VaultClient, String>> = BTreeMap::new();
        for w in objects {
            if vaults.contains_key(&w.vault) {
                continue;
            }
            let client = Url::parse(&w.vault.url())
                .map_err(|e| format!("cannot use the vault URL {}: {e}", w.vault))
                .and_then(|parsed| {
                    let tokens = self
                        .clients
                        .credentials
                        .tokens_for(&w.vault)
                        .map_err(|e| e.to_string())?;
                    let http = self.clients.connection(&parsed);
                    Ok(VaultClient::new(
                        w.vault.clone(),
                        http,
                        tokens,
                        deadline,
                        self.timeout,
                    ))
                });
            vaults.insert(&w.vault, client);
        }
        let timeout = self.timeout;
        let checks = objects.iter().map(|w| {
            let client = vaults.get(&w.vault);
            async move {
                let client = match client {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => return Current::Failed(e.clone()),
                    None => return Current::Failed("no client for the vault".into()),
                };
                let answer =
                    tokio::time::timeout(timeout, client.get(w.kind.collection(), &w.name, None))
                        .await;
                match answer {
                    Err(_) => Current::Failed(format!("no answer within {}s", timeout.as_secs())),
                    Ok(Err(failure)) => Current::Failed(failure.cause.to_string()),
                    Ok(Ok(body)) => {
                        let found = version_in_answer(w.kind, &body);
                        wipe(body);
                        match found {
                            Ok(v) => Current::Version(v),
                            Err(e) => Current::Failed(e),
                        }
                    }
                }
            }
        });
        futures::future::join_all(checks).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn versions_in_ids() {
        let cases = [
            (
                format!("https://kv.vault.azure.net/secrets/db/{V1}"),
                Some(V1),
            ),
            (
                format!(
                    "https://kv.vault.azure.net/certificates/tls/{}",
                    V1.to_uppercase()
                ),
                Some(V1),
            ),
            (format!("https://127.0.0.1:8443/keys/k/{V1}?x=1"), Some(V1)),
            ("https://kv.vault.azure.net/secrets/db".to_string(), None),
            ("https://kv.vault.azure.net/secrets/db/".to_string(), None),
            (
                format!("https://kv.vault.azure.net/secrets/db/{V1}/more"),
                None,
            ),
            (String::new(), None),
        ];
        for (id, want) in cases {
            assert_eq!(version_of_id(&id).as_deref(), want, "{id}");
        }
    }

    #[test]
    fn answers_name_their_version() {
        let secret = format!(
            r#"{{"value":"MARKER-secret","id":"https://kv.vault.azure.net/secrets/db/{V1}","attributes":{{}}}}"#
        );
        assert_eq!(
            version_in_answer(ObjectKind::Secret, secret.as_bytes()),
            Ok(V1.into())
        );
        let cert = format!(
            r#"{{"id":"https://kv.vault.azure.net/certificates/tls/{V1}","sid":"https://kv.vault.azure.net/secrets/tls/ffffffffffffffffffffffffffffffff"}}"#
        );
        assert_eq!(
            version_in_answer(ObjectKind::Certificate, cert.as_bytes()),
            Ok(V1.into())
        );
        let key =
            format!(r#"{{"key":{{"kid":"https://kv.vault.azure.net/keys/k/{V1}","kty":"RSA"}}}}"#);
        assert_eq!(
            version_in_answer(ObjectKind::Key, key.as_bytes()),
            Ok(V1.into())
        );
        assert!(version_in_answer(ObjectKind::Key, br#"{"id":"x"}"#).is_err());
        let err = version_in_answer(ObjectKind::Secret, b"not json").unwrap_err();
        assert!(!err.contains("MARKER"), "{err}");
    }

    #[test]
    fn only_latest_objects_are_noted_and_the_list_round_trips() {
        let vault = VaultUrl::parse_spec("kv1").expect("valid");
        let seen = Seen::default();
        let id = |name: &str, version: Option<&str>, kind| ObjectId {
            vault: vault.clone(),
            kind,
            name: name.into(),
            version: version.map(str::to_string),
        };
        let url = |c: &str, n: &str| format!("{}/{c}/{n}/{V1}", vault.url());
        seen.note(
            &id("Db", None, ObjectKind::Secret),
            Some(&url("secrets", "Db")),
        );
        seen.note(
            &id("pinned", Some(V1), ObjectKind::Secret),
            Some(&url("secrets", "pinned")),
        );
        seen.note(
            &id("tls", None, ObjectKind::Certificate),
            Some(&url("certificates", "tls")),
        );
        seen.note(&id("noid", None, ObjectKind::Key), None);
        let list = seen.list();
        let names: Vec<&str> = list.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["db", "tls"]);
        let hosts = HostPolicy::default();
        assert_eq!(decode(&encode(&list), &hosts), Ok(list.clone()));
        assert_eq!(
            list[0].to_string(),
            "vault https://kv1.vault.azure.net, secret db"
        );
        for bad in [
            "secret https://kv1.vault.azure.net db",
            "blob https://kv1.vault.azure.net db v",
            "secret https://evil.example db v",
            "secret https://kv1.vault.azure.net d=b v",
        ] {
            assert!(decode(bad, &hosts).is_err(), "{bad}");
        }
    }
}
