//! What to fetch: every reference in the environment and the arguments, folded into the
//! distinct Key Vault objects they read (pure; no I/O).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;

use akv_core::settings::ENV_PREFIX;
use akv_core::{HostPolicy, ObjectKind, Part, Reference, Template, VaultUrl};

use crate::error::{PlanError, Site, Sites};

/// One Key Vault object. Key Vault names and versions are case-insensitive, so two
/// objects are the same when they differ only in case (`akv:DB` and `akv:db` read it
/// once); the name is kept as first written, so that requests and messages show it as
/// the user wrote it, as the service itself does.
#[derive(Debug, Clone)]
pub struct ObjectId {
    pub vault: VaultUrl,
    pub kind: ObjectKind,
    pub name: String,
    pub version: Option<String>,
}

impl ObjectId {
    /// What identity is decided by: everything, names and versions without case.
    fn key(&self) -> (&VaultUrl, ObjectKind, String, Option<String>) {
        (
            &self.vault,
            self.kind,
            self.name.to_ascii_lowercase(),
            self.version.as_deref().map(str::to_ascii_lowercase),
        )
    }
}

impl PartialEq for ObjectId {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ObjectId {}

impl std::hash::Hash for ObjectId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for ObjectId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ObjectId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// How an object is used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectUse {
    pub parts: BTreeSet<Part>,
    pub sites: Vec<Site>,
}

/// The references found, and the objects they need.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Env entries (index into the environment) whose value holds references.
    pub env: Vec<(usize, Template)>,
    /// Arguments (index into argv) that hold references.
    pub args: Vec<(usize, Template)>,
    pub objects: BTreeMap<ObjectId, ObjectUse>,
}

impl Plan {
    /// Scans the environment and argv. `AKV_INJECTOR_*` variables are akv-env's own and
    /// are not scanned. Values that are not UTF-8 hold no reference.
    pub fn build(
        env: &[(OsString, OsString)],
        argv: &[OsString],
        default_vault: Option<&VaultUrl>,
        hosts: &HostPolicy,
    ) -> Result<Plan, PlanError> {
        let mut plan = Plan::default();
        for (i, (name, value)) in env.iter().enumerate() {
            let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                continue;
            };
            if name.starts_with(ENV_PREFIX) {
                continue;
            }
            let site = Site::Env(name.to_string());
            if let Some(t) = scan(value, &site)? {
                plan.add(&t, site, default_vault)?;
                plan.env.push((i, t));
            }
        }
        for (i, arg) in argv.iter().enumerate() {
            let Some(arg) = arg.to_str() else { continue };
            let site = Site::Arg(i);
            if let Some(t) = scan(arg, &site)? {
                plan.add(&t, site, default_vault)?;
                plan.args.push((i, t));
            }
        }
        let mut by_vault: BTreeMap<&VaultUrl, Vec<Site>> = BTreeMap::new();
        for (id, usage) in &plan.objects {
            by_vault
                .entry(&id.vault)
                .or_default()
                .extend(usage.sites.iter().cloned());
        }
        for (vault, mut sites) in by_vault {
            if let Err(source) = hosts.check(vault) {
                sites.sort();
                sites.dedup();
                return Err(PlanError::HostNotAllowed {
                    sites: Sites(sites),
                    source,
                });
            }
        }
        Ok(plan)
    }

    /// Adds the objects a template reads (the env, the arguments, or a file at `site`).
    pub fn add(
        &mut self,
        t: &Template,
        site: Site,
        default_vault: Option<&VaultUrl>,
    ) -> Result<(), PlanError> {
        for r in t.references() {
            let id = object_of(r, default_vault).ok_or_else(|| PlanError::NoVault {
                site: site.clone(),
                reference: r.to_string(),
            })?;
            let usage = self.objects.entry(id).or_default();
            usage.parts.insert(r.part().clone());
            if usage.sites.last() != Some(&site) {
                usage.sites.push(site.clone());
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

fn scan(value: &str, site: &Site) -> Result<Option<Template>, PlanError> {
    Template::scan(value).map_err(|source| PlanError::BadReference {
        site: site.clone(),
        source,
    })
}

/// The object a reference reads; `None` when it names no vault and there is no default.
pub fn object_of(r: &Reference, default_vault: Option<&VaultUrl>) -> Option<ObjectId> {
    let vault = match r.vault() {
        Some(v) => VaultUrl::from_ref(v),
        None => default_vault?.clone(),
    };
    Some(ObjectId {
        vault,
        kind: r.part().object_kind(),
        name: r.name().to_string(),
        version: r.version().map(str::to_string),
    })
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // table tests
mod tests {
    use super::*;

    use crate::config::test_env as env;
    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }
    fn kv(spec: &str) -> VaultUrl {
        VaultUrl::parse_spec(spec).expect(spec)
    }
    const V: &str = "0123456789ABCDEF0123456789abcdef";

    #[test]
    fn collects_distinct_objects() {
        let default = kv("kv1");
        let plan = Plan::build(
            &env(&[
                ("PLAIN", "hello"),
                ("A", "akv:db-password"),
                (
                    "B",
                    "postgres://app:${akv:DB-Password}@db/${akv://kv2/db-name}",
                ),
                ("C", &format!("akv:db-password/{V}")),
                ("TLS_CERT", "akv:tls#cert"),
                ("TLS_KEY", "akv:tls#key"),
                ("JWT", "akv://kv2.vault.azure.cn/signing#pubkey"),
                ("AKV_INJECTOR_VAULT", "akv:not-scanned"),
                ("NOTE", "see akv:x"),
            ]),
            &argv(&["/app", "--password=${akv:db-password}", "akv:tls#chain"]),
            Some(&default),
            &HostPolicy::default(),
        )
        .expect("valid");
        let got: Vec<(
            String,
            ObjectKind,
            &str,
            Option<&str>,
            Vec<Part>,
            Vec<String>,
        )> = plan
            .objects
            .iter()
            .map(|(id, u)| {
                (
                    id.vault.url(),
                    id.kind,
                    id.name.as_str(),
                    id.version.as_deref(),
                    u.parts.iter().cloned().collect(),
                    u.sites.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect();
        // Names and versions as written (the first spelling of each object).
        let v = V;
        assert_eq!(
            got,
            vec![
                (
                    "https://kv1.vault.azure.net".into(),
                    ObjectKind::Secret,
                    "db-password",
                    None,
                    vec![Part::Value],
                    vec!["env var A".into(), "env var B".into(), "argument 1".into()]
                ),
                (
                    "https://kv1.vault.azure.net".into(),
                    ObjectKind::Secret,
                    "db-password",
                    Some(v),
                    vec![Part::Value],
                    vec!["env var C".into()]
                ),
                (
                    "https://kv1.vault.azure.net".into(),
                    ObjectKind::Certificate,
                    "tls",
                    None,
                    vec![Part::Cert, Part::Key, Part::Chain],
                    vec![
                        "env var TLS_CERT".into(),
                        "env var TLS_KEY".into(),
                        "argument 2".into()
                    ]
                ),
                (
                    "https://kv2.vault.azure.cn".into(),
                    ObjectKind::Key,
                    "signing",
                    None,
                    vec![Part::Pubkey],
                    vec!["env var JWT".into()]
                ),
                (
                    "https://kv2.vault.azure.net".into(),
                    ObjectKind::Secret,
                    "db-name",
                    None,
                    vec![Part::Value],
                    vec!["env var B".into()]
                ),
            ]
        );
        assert_eq!(
            plan.env.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 6]
        );
        assert_eq!(
            plan.args.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn nothing_to_do() {
        let plan = Plan::build(
            &env(&[("A", "b"), ("JDBC", "jdbc:akv:x")]),
            &argv(&["sh", "-c", "echo $A"]),
            None,
            &HostPolicy::default(),
        )
        .expect("valid");
        assert!(plan.is_empty());
    }

    #[test]
    fn errors_name_the_site() {
        let hosts = HostPolicy::default();
        let cases: Vec<(Vec<(OsString, OsString)>, Vec<OsString>, &str)> = vec![
            (
                env(&[("DB", "akv:db_password")]),
                argv(&["app"]),
                "env var DB: object name 'db_password' contains '_'",
            ),
            (
                env(&[]),
                argv(&["app", "x", "--p=${akv:db"]),
                "argument 2: '${akv:' at byte 4 is not closed",
            ),
            (
                env(&[("DB", "akv:db")]),
                argv(&["app"]),
                "env var DB: 'akv:db' names no vault and the pod has no default vault",
            ),
            (
                env(&[
                    ("DB", "akv://evil.example.com/db"),
                    ("X", "${akv://evil.example.com/x}"),
                ]),
                argv(&["app"]),
                "env var DB, env var X: vault host 'evil.example.com' is not a Key Vault host",
            ),
        ];
        for (e, a, want) in cases {
            let err = Plan::build(&e, &a, None, &hosts)
                .expect_err(want)
                .to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    #[test]
    fn allowed_hosts() {
        let hosts = HostPolicy::from_list("localhost,127.0.0.1").expect("valid");
        let default = kv("https://localhost:8443");
        let plan = Plan::build(
            &env(&[("A", "akv:a"), ("B", "akv://127.0.0.1:9443/b")]),
            &argv(&["app"]),
            Some(&default),
            &hosts,
        )
        .expect("allowed");
        let vaults: Vec<String> = plan.objects.keys().map(|id| id.vault.url()).collect();
        assert_eq!(
            vaults,
            vec!["https://127.0.0.1:9443", "https://localhost:8443"]
        );
    }
}
