//! Fetches every object of a plan concurrently and takes the parts out.

use std::collections::HashMap;

use akv_core::{ObjectKind, Part, Reference, VaultUrl};

use crate::error::{Cause, FetchError, Sites};
use crate::keyvault::{Fetched, SecretSource};
use crate::parts::{self, CertSecret};
use crate::plan::{object_of, ObjectId, ObjectUse, Plan};

/// The value of every (object, part), as bytes: what a file gets. Its `Debug` shows no
/// value.
#[derive(Default)]
pub struct Values(HashMap<(ObjectId, Part), Vec<u8>>);

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Values({} resolved)", self.0.len())
    }
}

impl Values {
    pub fn insert(&mut self, id: ObjectId, part: Part, value: Vec<u8>) {
        self.0.insert((id, part), value);
    }

    /// The bytes of a reference, as a file gets them (empty when unknown, which a
    /// complete resolve never leaves).
    pub fn bytes(&self, r: &Reference, default_vault: Option<&VaultUrl>) -> &[u8] {
        object_of(r, default_vault)
            .and_then(|id| self.0.get(&(id, r.part().clone())))
            .map_or(&[][..], Vec::as_slice)
    }

    /// The text of a reference, as an env var or argument gets it: `#pfx` in base64,
    /// anything else as it is when it is UTF-8 (NUL is refused later, naming the site).
    pub fn text(
        &self,
        r: &Reference,
        default_vault: Option<&VaultUrl>,
    ) -> Result<std::borrow::Cow<'_, str>, NotText> {
        let bytes = self.bytes(r, default_vault);
        if *r.part() == Part::Pfx {
            use base64::Engine as _;
            return Ok(base64::engine::general_purpose::STANDARD
                .encode(bytes)
                .into());
        }
        std::str::from_utf8(bytes)
            .map(std::borrow::Cow::Borrowed)
            .map_err(|_| NotText {
                reference: r.to_string(),
            })
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A value that is not UTF-8 text (e.g. `#base64` of binary data) asked for as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotText {
    pub reference: String,
}

/// The outcome: values, plus warnings for objects that were missing and ignored.
#[derive(Debug, Default)]
pub struct Resolved {
    pub values: Values,
    pub warnings: Vec<String>,
}

/// Fetches all objects at once; every failure is reported, not just the first.
pub async fn resolve<S: SecretSource>(
    plan: &Plan,
    source: &S,
    ignore_missing: bool,
    identities: &(impl crate::hints::Identifies + ?Sized),
) -> Result<Resolved, Vec<FetchError>> {
    let fetches = plan
        .objects
        .iter()
        .map(|(id, usage)| async move { (id, usage, source.fetch(id, &usage.parts).await) });
    let results = futures::future::join_all(fetches).await;
    let mut out = Resolved::default();
    let mut errors = Vec::new();
    for (id, usage, result) in results {
        let error = |cause| FetchError {
            vault: id.vault.url(),
            kind: id.kind,
            name: id.name.clone(),
            version: id.version.clone(),
            parts: usage.parts.iter().cloned().collect(),
            sites: Sites(usage.sites.clone()),
            who: identities.who(&id.vault),
            cause,
        };
        match result {
            Ok(fetched) => match take_parts(id, usage, fetched) {
                Ok(values) => {
                    for (part, value) in values {
                        out.values.insert(id.clone(), part, value);
                    }
                }
                Err(cause) => errors.push(error(cause)),
            },
            Err(cause) if ignore_missing && is_not_found(&cause) => {
                let e = error(cause);
                out.warnings.push(format!(
                    "{} '{}' ({}) was not found in vault {} (HTTP 404); {} get(s) an empty value because ignore-missing is set",
                    kind_word(id.kind),
                    id.name,
                    id.version.as_deref().map_or("latest version".to_string(), |v| format!("version {v}")),
                    e.vault,
                    e.sites
                ));
                for part in &usage.parts {
                    out.values.insert(id.clone(), part.clone(), Vec::new());
                }
            }
            Err(cause) => errors.push(error(cause)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn is_not_found(cause: &Cause) -> bool {
    matches!(cause, Cause::Status { status: 404, .. })
}

fn kind_word(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Secret => "secret",
        ObjectKind::Certificate => "certificate",
        ObjectKind::Key => "key",
    }
}

fn take_parts(
    id: &ObjectId,
    usage: &ObjectUse,
    fetched: Fetched,
) -> Result<Vec<(Part, Vec<u8>)>, Cause> {
    let content = |e: parts::PartError| Cause::Content(e.to_string());
    let mut out = Vec::new();
    match fetched {
        Fetched::Secret { value } => {
            for part in &usage.parts {
                let bytes = match part {
                    Part::Value => value.as_bytes().to_vec(),
                    Part::Base64 => parts::base64_value::decode(&value)
                        .map_err(|e| Cause::Content(e.to_string()))?,
                    Part::Json(path) => parts::json_field::field(&value, path)
                        .map_err(|e| Cause::Content(e.to_string()))?
                        .into_bytes(),
                    other => {
                        return Err(Cause::Content(format!(
                            "cannot take #{other} from secret '{}'",
                            id.name
                        )))
                    }
                };
                out.push((part.clone(), bytes));
            }
        }
        Fetched::Certificate { cer, secret } => {
            let parsed = match &secret {
                Some((ct, value)) => {
                    Some(CertSecret::parse(ct.as_deref(), value, cer.as_deref()).map_err(content)?)
                }
                None => None,
            };
            for part in &usage.parts {
                let value = match (part, &parsed) {
                    (Part::Cert, _) => parts::cert_pem(cer.as_deref())
                        .map_err(content)?
                        .into_bytes(),
                    (Part::Key, Some(p)) => p.key().map_err(content)?.into_bytes(),
                    (Part::Chain, Some(p)) => p.chain_pem().map_err(content)?.into_bytes(),
                    (Part::Pfx, Some(p)) => {
                        parts::pfx::build(p, &id.name, &mut parts::pfx::OsRandom)
                            .map_err(content)?
                    }
                    _ => {
                        return Err(Cause::Content(format!(
                            "cannot take #{part} from certificate '{}'",
                            id.name
                        )))
                    }
                };
                out.push((part.clone(), value));
            }
        }
        Fetched::Key(jwk) => out.push((
            Part::Pubkey,
            parts::pubkey_pem(&jwk).map_err(content)?.into_bytes(),
        )),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeSet;
    use std::ffi::OsString;

    use akv_core::HostPolicy;

    /// Answers from a table; counts calls.
    struct Table {
        calls: RefCell<Vec<String>>,
    }

    impl SecretSource for Table {
        async fn fetch(&self, id: &ObjectId, _parts: &BTreeSet<Part>) -> Result<Fetched, Cause> {
            self.calls.borrow_mut().push(id.name.clone());
            let status = |status| Cause::Status {
                status,
                code: None,
                message: String::new(),
            };
            match id.name.as_str() {
                "db" => Ok(Fetched::Secret {
                    value: "s3cr3t".into(),
                }),
                "gone" => Err(status(404)),
                "denied" => Err(status(403)),
                "tls" => Ok(Fetched::Certificate {
                    cer: Some(vec![0x30, 0x00]),
                    secret: Some((
                        Some("application/x-pem-file".into()),
                        parts::pem("PRIVATE KEY", &[0x30, 0x01, 0x00]),
                    )),
                }),
                "sym" => Ok(Fetched::Key(parts::PublicJwk {
                    kty: "oct".into(),
                    ..Default::default()
                })),
                _ => Err(status(500)),
            }
        }
    }

    fn plan(pairs: &[(&str, &str)]) -> Plan {
        let env: Vec<(OsString, OsString)> = pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect();
        let vault = VaultUrl::parse_spec("kv1").expect("valid");
        Plan::build(&env, &[], Some(&vault), &HostPolicy::default()).expect("valid")
    }

    fn run(p: &Plan, ignore_missing: bool) -> (Result<Resolved, Vec<FetchError>>, Vec<String>) {
        let source = Table {
            calls: RefCell::default(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let result = rt.block_on(resolve(p, &source, ignore_missing, "client-1"));
        (result, source.calls.into_inner())
    }

    #[test]
    fn resolves_each_object_once() {
        let p = plan(&[
            ("A", "akv:db"),
            ("B", "x${akv:db}y${akv:DB}"),
            ("C", "akv:tls#cert"),
            ("D", "akv:tls#key"),
        ]);
        let (result, calls) = run(&p, false);
        let resolved = result.expect("ok");
        assert_eq!(calls, vec!["db", "tls"]);
        let vault = VaultUrl::parse_spec("kv1").expect("valid");
        let r: Reference = "akv:db".parse().expect("valid");
        assert_eq!(resolved.values.bytes(&r, Some(&vault)), b"s3cr3t");
        let cert: Reference = "akv:tls#cert".parse().expect("valid");
        assert_eq!(
            resolved.values.bytes(&cert, Some(&vault)),
            b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(format!("{:?}", resolved.values), "Values(3 resolved)");
    }

    #[test]
    fn missing_objects() {
        let p = plan(&[("A", "akv:gone"), ("B", "akv:db")]);
        let (result, _) = run(&p, true);
        let resolved = result.expect("ignored");
        assert_eq!(
            resolved.warnings,
            vec!["secret 'gone' (latest version) was not found in vault https://kv1.vault.azure.net (HTTP 404); env var A get(s) an empty value because ignore-missing is set"]
        );
        let (result, _) = run(&p, false);
        let errors = result.expect_err("not ignored");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "cannot read secret 'gone' (latest version) from vault https://kv1.vault.azure.net for env var A as client id client-1: HTTP 404. Hint: check the secret name and version in the reference, or set the pod annotation akv-injector.io/ignore-missing: \"true\" to start with an empty value"
        );
    }

    #[test]
    fn every_failure_is_reported() {
        let p = plan(&[
            ("A", "akv:denied"),
            ("B", "akv:db"),
            ("C", "akv:sym#pubkey"),
            ("E", "akv:tls#chain"),
        ]);
        let (result, _) = run(&p, true);
        let errors: Vec<String> = result
            .expect_err("fails")
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].contains("cannot read secret 'denied'") && errors[0].contains("HTTP 403. Hint: grant the identity (client id client-1) the 'Key Vault Secrets User' role"), "{}", errors[0]);
        assert!(
            errors[1].contains("certificate 'tls'")
                && errors[1].contains("the certificate's secret holds no certificate"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].contains("key 'sym'")
                && errors[2].contains("key type 'oct' has no public key"),
            "{}",
            errors[2]
        );
    }
}
