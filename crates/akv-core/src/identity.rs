//! Azure workload identity as Azure Workload Identity hands it to a pod (and to the
//! webhook's own pod): the standard `AZURE_*` variables, the default authority, and the
//! check that the authority is an https URL. The environment is passed in as a lookup,
//! so callers test this without touching the process environment.

use std::ffi::OsString;
use std::path::PathBuf;

use thiserror::Error;

pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
/// Entra ID's public-cloud authority, used when `AZURE_AUTHORITY_HOST` is unset.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";

/// A variable that holds no usable value, named with its value (these are not secrets).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{var}={value:?}: {reason}")]
pub struct VarError {
    pub var: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Reads one variable as text: unset and empty (after trimming) are `None`; a value that
/// is not UTF-8 is an error naming the variable.
pub fn text_var(
    lookup: &impl Fn(&str) -> Option<OsString>,
    var: &'static str,
) -> Result<Option<String>, VarError> {
    let Some(value) = lookup(var).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match value.to_str() {
        Some(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
        None => Err(VarError {
            var,
            value: value.to_string_lossy().into_owned(),
            reason: "is not valid UTF-8",
        }),
    }
}

/// The `AZURE_*` variables as found; any of the first three may be missing. The authority
/// is checked and normalised to `https://HOST[:PORT]/`, the default when unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureVars {
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub token_file: Option<PathBuf>,
    pub authority_host: String,
}

impl AzureVars {
    /// Reads the variables through `lookup` (e.g. `std::env::var_os`).
    pub fn read(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, VarError> {
        let client_id = text_var(&lookup, AZURE_CLIENT_ID)?;
        let tenant_id = text_var(&lookup, AZURE_TENANT_ID)?;
        let authority_host = match text_var(&lookup, AZURE_AUTHORITY_HOST)? {
            Some(v) => check_authority(&v)?,
            None => DEFAULT_AUTHORITY_HOST.to_string(),
        };
        Ok(AzureVars {
            client_id,
            tenant_id,
            token_file: lookup(AZURE_FEDERATED_TOKEN_FILE)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            authority_host,
        })
    }
}

/// A complete workload identity: who (client, tenant), the proof (the projected
/// service-account token file) and where to exchange it (the authority).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIdentity {
    pub client_id: String,
    pub tenant_id: String,
    pub token_file: PathBuf,
    /// `https://HOST[:PORT]/`, e.g. [`DEFAULT_AUTHORITY_HOST`].
    pub authority_host: String,
}

impl WorkloadIdentity {
    /// From the `AZURE_*` variables through `lookup`; `None` unless client id, tenant id
    /// and token file are all set.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Option<Self>, VarError> {
        let vars = AzureVars::read(lookup)?;
        Ok(match (vars.client_id, vars.tenant_id, vars.token_file) {
            (Some(client_id), Some(tenant_id), Some(token_file)) => Some(WorkloadIdentity {
                client_id,
                tenant_id,
                token_file,
                authority_host: vars.authority_host,
            }),
            _ => None,
        })
    }

    /// [`WorkloadIdentity::from_lookup`] over the process environment.
    pub fn from_env() -> Result<Option<Self>, VarError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Entra ID's token endpoint for this identity.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host.trim_end_matches('/'),
            self.tenant_id
        )
    }
}

/// `AZURE_AUTHORITY_HOST` must be an https URL with a host and nothing after it; gives it
/// back as `https://HOST[:PORT]/`.
pub fn check_authority(value: &str) -> Result<String, VarError> {
    let bad = |reason| VarError {
        var: AZURE_AUTHORITY_HOST,
        value: value.to_string(),
        reason,
    };
    let rest = match value.get(..8) {
        Some(p) if p.eq_ignore_ascii_case("https://") => &value[8..],
        _ => return Err(bad(
            "the authority host must be an https:// URL, e.g. https://login.microsoftonline.com/",
        )),
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad(
            "give only https://HOST[:PORT]/, e.g. https://login.microsoftonline.com/",
        ));
    }
    Ok(format!("https://{host}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn complete_identity() {
        let id = WorkloadIdentity::from_lookup(env(&[
            ("AZURE_CLIENT_ID", " c1 "),
            ("AZURE_TENANT_ID", "t1"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
            ("AZURE_AUTHORITY_HOST", "HTTPS://login.microsoftonline.us"),
        ]))
        .expect("valid")
        .expect("complete");
        assert_eq!(id.client_id, "c1");
        assert_eq!(id.token_file, PathBuf::from("/var/run/token"));
        assert_eq!(id.authority_host, "https://login.microsoftonline.us/");
        assert_eq!(
            id.token_url(),
            "https://login.microsoftonline.us/t1/oauth2/v2.0/token"
        );
    }

    #[test]
    fn incomplete_identity_is_none_and_authority_defaults() {
        let cases: [&'static [(&str, &str)]; 3] = [
            &[],
            &[("AZURE_CLIENT_ID", "c"), ("AZURE_TENANT_ID", "t")],
            &[
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_TENANT_ID", " "),
                ("AZURE_FEDERATED_TOKEN_FILE", "/t"),
            ],
        ];
        for pairs in cases {
            assert_eq!(
                WorkloadIdentity::from_lookup(env(pairs)),
                Ok(None),
                "{pairs:?}"
            );
            assert_eq!(
                AzureVars::read(env(pairs)).expect("valid").authority_host,
                DEFAULT_AUTHORITY_HOST
            );
        }
    }

    #[test]
    fn authority_must_be_https_host_only() {
        let cases = [
            ("https://login.example", Ok("https://login.example/")),
            (
                "https://login.example:8443//",
                Ok("https://login.example:8443/"),
            ),
            (
                "http://login.example",
                Err("the authority host must be an https:// URL"),
            ),
            (
                "login.example",
                Err("the authority host must be an https:// URL"),
            ),
            ("https://", Err("give only https://HOST[:PORT]/")),
            (
                "https://login.example/tenant",
                Err("give only https://HOST[:PORT]/"),
            ),
            (
                "https://user@login.example",
                Err("give only https://HOST[:PORT]/"),
            ),
        ];
        for (value, want) in cases {
            match (check_authority(value), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(e), Err(want)) => assert!(e.reason.starts_with(want), "{value}: {e}"),
                (got, want) => panic!("{value}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn non_utf8_is_named() {
        use std::os::unix::ffi::OsStringExt;
        let err = text_var(
            &|_: &str| Some(OsString::from_vec(vec![0xff, b'a'])),
            AZURE_CLIENT_ID,
        )
        .expect_err("not UTF-8");
        assert!(err.to_string().starts_with("AZURE_CLIENT_ID=\""), "{err}");
        assert_eq!(err.reason, "is not valid UTF-8");
    }
}
