//! Every way akv-env can fail before the application starts. Messages are shown to the
//! user on stderr as they are: they name the vault, the object, the env var or argument,
//! the identity and the cause, and end with a hint. They never hold a value.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use akv_core::{ObjectKind, Part, ReferenceError, VaultError};
use thiserror::Error;

/// Where a reference was written: an env var or a command-line argument.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    Env(String),
    /// Index into the application's argv (0 is the command).
    Arg(usize),
    /// A file (`akv-injector.io/file.<FILENAME>`).
    File(String),
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Site::Env(name) => write!(f, "env var {name}"),
            Site::Arg(0) => f.write_str("the command"),
            Site::Arg(i) => write!(f, "argument {i}"),
            Site::File(name) => write!(f, "file {name}"),
        }
    }
}

/// A list of sites, shown as "env var A, env var B and 3 more".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sites(pub Vec<Site>);

impl fmt::Display for Sites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 3;
        for (i, site) in self.0.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{site}")?;
        }
        if self.0.len() > SHOWN {
            write!(f, " and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// Errors in akv-env's own settings (env vars), found before any network traffic.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// An `AKV_INJECTOR_*` setting, named with its value (settings are not secrets).
    #[error(transparent)]
    PodSetting(#[from] akv_core::PodSettingsError),
    /// An `AZURE_*` variable (or any setting that is not UTF-8), named with its value.
    #[error(transparent)]
    Var(#[from] akv_core::VarError),
    /// `AKV_INJECTOR_AUTH`, `AKV_INJECTOR_VAULT_CLIENT_IDS`, `AKV_INJECTOR_KEEP_CREDENTIALS`.
    #[error(transparent)]
    IdentitySetting(#[from] akv_core::IdentitySettingsError),
    /// A service principal's variables are missing or cannot be used.
    #[error("service principal: {0}")]
    ServicePrincipal(String),
    #[error("no workload identity client id: neither AKV_INJECTOR_CLIENT_ID (pod annotation akv-injector.io/client-id) nor AZURE_CLIENT_ID is set. Hint: label the pod azure.workload.identity/use: \"true\" and give its service account the azure.workload.identity/client-id annotation")]
    NoClientId,
    #[error("no tenant id: neither AKV_INJECTOR_TENANT_ID (pod annotation akv-injector.io/tenant-id) nor AZURE_TENANT_ID is set. Hint: label the pod azure.workload.identity/use: \"true\" so Azure Workload Identity sets AZURE_TENANT_ID, or set the annotation")]
    NoTenantId,
    #[error("AZURE_FEDERATED_TOKEN_FILE is not set: the pod has no service account token for Azure workload identity. Hint: label the pod azure.workload.identity/use: \"true\" and use a service account annotated with azure.workload.identity/client-id")]
    NoTokenFile,
    #[error("cannot read the federated token file {path} (AZURE_FEDERATED_TOKEN_FILE): {source}. Hint: check that Azure Workload Identity mounted the projected service account token")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the federated token file {path} (AZURE_FEDERATED_TOKEN_FILE) is empty")]
    EmptyTokenFile { path: PathBuf },
}

/// A reference that cannot be resolved to an object, found before any network traffic.
#[derive(Debug, Error)]
pub enum PlanError {
    #[error("{site}: {source}")]
    BadReference { site: Site, source: ReferenceError },
    #[error("{site}: '{reference}' names no vault and the pod has no default vault. Hint: set the pod annotation akv-injector.io/vault, or write akv://VAULT/NAME")]
    NoVault { site: Site, reference: String },
    #[error("{sites}: {source}")]
    HostNotAllowed { sites: Sites, source: VaultError },
}

/// What went wrong while reading one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The vault answered with an error status.
    Status {
        status: u16,
        code: Option<String>,
        message: String,
    },
    /// The token exchange with Entra ID failed.
    Token {
        status: Option<u16>,
        message: String,
    },
    /// No HTTP answer: DNS, TCP, TLS.
    Transport(String),
    /// The budget ran out while retrying.
    Budget {
        timeout: Duration,
        attempts: u32,
        last: Option<Box<Cause>>,
        retry_after: Option<Duration>,
    },
    /// The answer was not what Key Vault sends, or the part cannot be taken from it.
    Content(String),
    /// A 401 challenge asked for a token that is not the vault's Key Vault audience.
    Challenge(String),
    /// An answer longer than akv-env reads (1 MiB).
    TooLarge(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Status {
                status,
                code,
                message,
            } => {
                write!(f, "HTTP {status}")?;
                if let Some(code) = code {
                    write!(f, " ({code})")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            Cause::Token { status, message } => {
                f.write_str("the token exchange with Entra ID failed")?;
                if let Some(status) = status {
                    write!(f, " (HTTP {status})")?;
                }
                write!(f, ": {message}")
            }
            Cause::Transport(message) => write!(f, "no answer from the server: {message}"),
            Cause::Budget {
                timeout,
                attempts,
                last,
                retry_after,
            } => {
                write!(
                    f,
                    "gave up after {attempts} attempt(s): the timeout of {} ran out",
                    akv_core::settings::format_duration(*timeout)
                )?;
                if let Some(wait) = retry_after {
                    write!(
                        f,
                        " (the server asked to retry after {})",
                        akv_core::settings::format_duration(*wait)
                    )?;
                }
                if let Some(last) = last {
                    write!(f, "; last answer: {last}")?;
                }
                Ok(())
            }
            Cause::Content(message) | Cause::Challenge(message) | Cause::TooLarge(message) => {
                f.write_str(message)
            }
        }
    }
}

impl Cause {
    fn status(&self) -> Option<u16> {
        match self {
            Cause::Status { status, .. } => Some(*status),
            Cause::Budget {
                last: Some(last), ..
            } => last.status(),
            _ => None,
        }
    }
}

/// One object could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    pub vault: String,
    pub kind: ObjectKind,
    pub name: String,
    pub version: Option<String>,
    /// The parts the references ask for (decides the role in the hint).
    pub parts: Vec<Part>,
    pub sites: Sites,
    /// The identity the vault was read with.
    pub who: crate::hints::Who,
    pub cause: Cause,
}

impl FetchError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        let role = akv_core::roles::role_for_parts(&self.parts);
        let what = match self.kind {
            ObjectKind::Secret => "secrets",
            ObjectKind::Certificate => {
                if self.parts.iter().any(Part::needs_certificate_secret) {
                    "certificates and secrets (the private key and chain live in the certificate's secret)"
                } else {
                    "certificates"
                }
            }
            ObjectKind::Key => "keys",
        };
        match (&self.cause, self.cause.status()) {
            (Cause::Token { message, .. }, _) => crate::hints::token_hint(&self.who, message),
            (_, Some(401)) => format!(
                "the vault did not accept the identity's token: check that the vault belongs to the identity's tenant and that {} exists there",
                self.who.label()
            ),
            // Key Vault's answer for a disabled object: 403 Forbidden, innererror
            // SecretDisabled ("Operation get is not allowed on a disabled secret.";
            // ../shared/vectors/keyvault/js-secrets-cant_get_a_disabled_secret-403.excerpt.json).
            (Cause::Status { code: Some(code), .. }, Some(403)) if code.ends_with("Disabled") => format!(
                "the {kind} is disabled in the vault (its 'enabled' attribute is false), so no role can read it: enable it (az keyvault {kind} set-attributes --vault-name VAULT --name {} --enabled true) or reference an enabled version",
                self.name,
                kind = kind_word(self.kind)
            ),
            (_, Some(403)) => format!(
                "grant the identity ({}) the '{role}' role on the vault, or an access policy with 'get' on {what}",
                self.who.label()
            ),
            (_, Some(404)) => format!(
                "check the {} name and version in the reference, or set the pod annotation akv-injector.io/ignore-missing: \"true\" to start with an empty value",
                kind_word(self.kind)
            ),
            (_, Some(429)) => "the vault kept throttling requests for the whole timeout: raise the pod annotation akv-injector.io/timeout, or start fewer pods at once".to_string(),
            (_, Some(s)) if s >= 500 => "the vault kept failing for the whole timeout: check the Azure status page, or raise the pod annotation akv-injector.io/timeout".to_string(),
            (Cause::Transport(_), _) | (Cause::Budget { .. }, _) => "check the vault name, the pod's DNS and network path to the vault (private endpoint, firewall, egress policy), or raise the pod annotation akv-injector.io/timeout".to_string(),
            (Cause::Challenge(_), _) => "check the vault URL: akv-env sends the pod's identity only to Key Vault, and this server is not answering as Key Vault does (a proxy or private endpoint must pass on Key Vault's own challenge, resource=\"https://vault.azure.net\" or its cloud's)".to_string(),
            (Cause::TooLarge(_), _) => "check the vault URL and what is stored in the object: Key Vault never sends answers this large".to_string(),
            (Cause::Content(_), _) => format!("check what is stored in the {}: the reference asks for a part it does not hold", kind_word(self.kind)),
            _ => "see the cause above".to_string(),
        }
    }
}

fn kind_word(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Secret => "secret",
        ObjectKind::Certificate => "certificate",
        ObjectKind::Key => "key",
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot read {} '{}' ({}) from vault {} for {} as {}: {}. Hint: {}",
            kind_word(self.kind),
            self.name,
            match &self.version {
                Some(v) => format!("version {v}"),
                None => "latest version".to_string(),
            },
            self.vault,
            self.sites,
            self.who.label(),
            self.cause.to_string().trim_end_matches('.'),
            self.hint()
        )
    }
}

impl std::error::Error for FetchError {}

/// Every failure of `akv-env -- CMD`.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{}", join_fetch(.0))]
    Fetch(Vec<FetchError>),
    #[error("cannot set up the workload identity credential: {0}")]
    Identity(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot execute {}: {source}{}", program_label(.program), if *.searched_path { " (searched PATH)" } else { "" })]
    Exec {
        /// The program as written, or `None` when it came from a Key Vault reference (a
        /// value is never shown).
        program: Option<String>,
        searched_path: bool,
        source: std::io::Error,
    },
    #[error("{site} would hold a NUL byte once its references are resolved, and environment variables and arguments cannot carry one (the value is not shown). Hint: store the value without NUL bytes, or write it to a file with the pod annotation akv-injector.io/file.<FILENAME>")]
    NulInValue { site: Site },
    #[error("{site}: {reference} is binary data (not UTF-8 text), which environment variables and arguments cannot carry (the value is not shown). Hint: write it to a file with the pod annotation akv-injector.io/file.<FILENAME>")]
    NotText { site: Site, reference: String },
    #[error("{0}")]
    Files(#[from] crate::files::FilesError),
    #[error("{0}")]
    Usage(String),
    #[error("install: {0}")]
    Install(String),
    #[error("restart on change (AKV_INJECTOR_REFRESH): {0}")]
    Supervise(String),
}

fn program_label(program: &Option<String>) -> String {
    match program {
        Some(p) => format!("{p:?}"),
        None => "the command (it comes from a Key Vault reference, so it is not shown)".to_string(),
    }
}

fn join_fetch(errors: &[FetchError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push_str("\nakv-env: ");
        }
        out.push_str(&e.to_string());
    }
    out
}
