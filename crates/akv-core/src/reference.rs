//! The Key Vault reference grammar:
//!
//! ```text
//! akv:NAME[/VERSION][#PART]
//! akv://VAULT/NAME[/VERSION][#PART]
//! ```
//!
//! A [`Reference`] parses with [`str::parse`] and prints back with `Display`; the two
//! round-trip. Every parse error is a [`ReferenceError`] whose message tells the user
//! what is wrong and what is allowed.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

pub use crate::json_path::JsonPath;

/// Every reference starts with this prefix.
pub const PREFIX: &str = "akv:";

const NAME_MAX: usize = 127;
const VAULT_NAME_LEN: std::ops::RangeInclusive<usize> = 3..=24;
const VERSION_LEN: usize = 32;
const HOST_MAX: usize = 253;

/// Azure's rule for Key Vault and Managed HSM names, as every message about a vault name
/// states it (Microsoft.KeyVault `vaults` and `managedHSMs` follow the same rule).
pub const VAULT_NAME_RULE: &str = "a vault name has 3 to 24 letters, digits or '-', starts with a letter, ends with a letter or digit, and has no '--'";

/// A reference to one Key Vault object, and which part of it to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    vault: Option<VaultRef>,
    name: String,
    version: Option<String>,
    part: Part,
}

/// The vault named inside a reference (`akv://VAULT/...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VaultRef {
    /// A bare vault name such as `my-vault`, meaning `my-vault.vault.azure.net`.
    Name(String),
    /// A DNS name such as `my-vault.vault.azure.cn`, optionally with `:PORT`.
    Host(String),
}

/// Which part of an object a reference reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Part {
    /// A secret's value (the default).
    #[default]
    Value,
    /// A certificate's X.509 leaf certificate, PEM.
    Cert,
    /// A certificate's private key, PEM.
    Key,
    /// A certificate's full chain, PEM, leaf first.
    Chain,
    /// A key's public key, PEM SubjectPublicKeyInfo.
    Pubkey,
    /// A certificate with its private key and chain as PKCS#12, without a password.
    Pfx,
    /// A secret's value, base64-decoded (standard or URL-safe, padded or not).
    Base64,
    /// One field of a secret whose value is a JSON object.
    Json(JsonPath),
}

impl Part {
    /// Every part without an argument, in the order the grammar lists them.
    pub const ALL: [Part; 7] = [
        Part::Value,
        Part::Cert,
        Part::Key,
        Part::Chain,
        Part::Pubkey,
        Part::Pfx,
        Part::Base64,
    ];

    /// The word written after `#` (`json` for `#json:PATH`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Part::Value => "value",
            Part::Cert => "cert",
            Part::Key => "key",
            Part::Chain => "chain",
            Part::Pubkey => "pubkey",
            Part::Pfx => "pfx",
            Part::Base64 => "base64",
            Part::Json(_) => "json",
        }
    }

    /// Which kind of Key Vault object this part is read from.
    pub fn object_kind(&self) -> ObjectKind {
        match self {
            Part::Value | Part::Base64 | Part::Json(_) => ObjectKind::Secret,
            Part::Cert | Part::Key | Part::Chain | Part::Pfx => ObjectKind::Certificate,
            Part::Pubkey => ObjectKind::Key,
        }
    }

    /// Whether the part needs the certificate's backing secret (its private key or chain).
    pub fn needs_certificate_secret(&self) -> bool {
        matches!(self, Part::Key | Part::Chain | Part::Pfx)
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Json(path) => write!(f, "json:{path}"),
            other => f.write_str(other.as_str()),
        }
    }
}

impl FromStr for Part {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("json:") {
            return Ok(Part::Json(path.parse()?));
        }
        if s == "json" {
            return Err(ReferenceError::EmptyJsonPath);
        }
        Part::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ReferenceError::UnknownPart(s.to_string()))
    }
}

/// The Key Vault collection an object lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Secret,
    Certificate,
    Key,
}

impl ObjectKind {
    /// The path segment of the Key Vault REST API (`/secrets/...`).
    pub fn collection(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secrets",
            ObjectKind::Certificate => "certificates",
            ObjectKind::Key => "keys",
        }
    }
}

/// Why a reference does not parse. Messages are shown to users as they are.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReferenceError {
    #[error("a reference starts with 'akv:', e.g. akv:db-password")]
    MissingPrefix,
    #[error(
        "the object name is missing: write akv:NAME or akv://VAULT/NAME, e.g. akv:db-password"
    )]
    EmptyName,
    #[error("object name is {0} characters long; Key Vault object names have 1 to 127")]
    NameTooLong(usize),
    #[error("object name '{name}' contains {found}; Key Vault object names use only letters, digits and '-'")]
    BadNameChar { name: String, found: CharDesc },
    #[error("version '{0}' is not a Key Vault object version: 32 hexadecimal digits, e.g. akv:db-password/0123456789abcdef0123456789abcdef")]
    BadVersion(String),
    #[error("unknown part '#{0}': use #value, #cert, #key, #chain, #pubkey, #pfx, #base64 or #json:FIELD")]
    UnknownPart(String),
    #[error("#json needs a path: write #json:FIELD or #json:FIELD.FIELD, e.g. akv:db-config#json:password")]
    EmptyJsonPath,
    #[error("JSON path '{0}' has an empty field: separate fields with single dots, e.g. #json:db.password")]
    EmptyJsonField(String),
    #[error("JSON field is {0} characters long; a field has 1 to 128")]
    JsonFieldTooLong(usize),
    #[error("JSON field '{field}' contains {found}; a field uses only letters, digits, '_' and '-' (or is an array index such as 0)")]
    BadJsonFieldChar { field: String, found: CharDesc },
    #[error("JSON path has {0} fields; a path has at most 32")]
    JsonPathTooDeep(usize),
    #[error("too many '/' in '{0}': write NAME or NAME/VERSION after the vault")]
    TooManySegments(String),
    #[error("the vault is missing after 'akv://': write akv://VAULT/NAME, e.g. akv://my-vault/db-password")]
    EmptyVault,
    #[error("'akv://{0}' names a vault but no object: write akv://{0}/NAME")]
    MissingObject(String),
    #[error("vault '{0}' is not a vault name nor a DNS name: {VAULT_NAME_RULE}; a DNS name has a dot, e.g. my-vault.vault.azure.cn")]
    BadVaultName(String),
    #[error(
        "vault host '{host}' names vault '{name}', which Azure does not allow: {VAULT_NAME_RULE}"
    )]
    BadVaultNameInHost { host: String, name: String },
    #[error("vault host '{0}' is not a valid DNS name: labels of 1 to 63 letters, digits or '-', not starting or ending with '-', and an optional :PORT")]
    BadVaultHost(String),
    #[error("the reference contains {0}; references have no spaces or control characters")]
    Whitespace(CharDesc),
    #[error("'${{akv:' at byte {0} is not closed: write ${{akv:NAME}}")]
    Unclosed(usize),
}

/// A character as it is named in an error message: printable ones quoted, others by code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CharDesc(pub char);

impl fmt::Display for CharDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ' ' => f.write_str("a space"),
            '\t' => f.write_str("a tab"),
            '\n' => f.write_str("a line break"),
            c if c.is_control() || c.is_whitespace() => write!(f, "character U+{:04X}", c as u32),
            c => write!(f, "'{c}'"),
        }
    }
}

impl Reference {
    /// A reference to the latest value of secret `name` in the default vault.
    /// Fails when `name` is not a valid object name.
    pub fn secret(name: &str) -> Result<Self, ReferenceError> {
        check_name(name)?;
        Ok(Reference {
            vault: None,
            name: name.to_string(),
            version: None,
            part: Part::Value,
        })
    }

    /// Builds a reference from its parts, checking each of them.
    pub fn new(
        vault: Option<VaultRef>,
        name: &str,
        version: Option<&str>,
        part: Part,
    ) -> Result<Self, ReferenceError> {
        if let Some(v) = &vault {
            VaultRef::parse(v.as_str())?;
        }
        check_name(name)?;
        if let Some(v) = version {
            check_version(v)?;
        }
        Ok(Reference {
            vault,
            name: name.to_string(),
            version: version.map(str::to_string),
            part,
        })
    }

    /// The vault the reference names, if it names one.
    pub fn vault(&self) -> Option<&VaultRef> {
        self.vault.as_ref()
    }

    /// The object name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pinned version, if any (`None` means the latest).
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Which part of the object is read.
    pub fn part(&self) -> &Part {
        &self.part
    }

    /// Parses the text after `akv:` (also what `${akv:...}` holds after `akv:`).
    fn parse_body(body: &str) -> Result<Self, ReferenceError> {
        if let Some(c) = body.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(ReferenceError::Whitespace(CharDesc(c)));
        }
        let (path, part) = match body.split_once('#') {
            Some((path, part)) => (path, part.parse::<Part>()?),
            None => (body, Part::Value),
        };
        let (vault, object) = match path.strip_prefix("//") {
            Some(rest) => {
                let (vault, object) = rest.split_once('/').unwrap_or((rest, ""));
                if vault.is_empty() {
                    return Err(ReferenceError::EmptyVault);
                }
                let vault = VaultRef::parse(vault)?;
                if object.is_empty() {
                    return Err(ReferenceError::MissingObject(vault.as_str().to_string()));
                }
                (Some(vault), object)
            }
            None => (None, path),
        };
        let mut segments = object.split('/');
        let name = segments.next().unwrap_or_default();
        let version = segments.next();
        if segments.next().is_some() {
            return Err(ReferenceError::TooManySegments(object.to_string()));
        }
        Reference::new(vault, name, version, part)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s
            .strip_prefix(PREFIX)
            .ok_or(ReferenceError::MissingPrefix)?;
        Reference::parse_body(body)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        if let Some(vault) = &self.vault {
            write!(f, "//{}/", vault.as_str())?;
        }
        f.write_str(&self.name)?;
        if let Some(version) = &self.version {
            write!(f, "/{version}")?;
        }
        if self.part != Part::Value {
            write!(f, "#{}", self.part)?;
        }
        Ok(())
    }
}

impl VaultRef {
    /// Parses the `VAULT` of `akv://VAULT/...`: a name, or a DNS name (one with a dot).
    /// A name, and the name in a host under a Key Vault or Managed HSM suffix, must
    /// follow [`VAULT_NAME_RULE`]. This is the check for every place a vault is named
    /// (references, the `vault` annotation, `client-id.<VAULT>` annotations).
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.contains('.') {
            check_vault_host(s)?;
            Ok(VaultRef::Host(s.to_ascii_lowercase()))
        } else if is_vault_name(s) {
            Ok(VaultRef::Name(s.to_ascii_lowercase()))
        } else {
            Err(ReferenceError::BadVaultName(shown(s)))
        }
    }

    /// The vault as written in a reference.
    pub fn as_str(&self) -> &str {
        match self {
            VaultRef::Name(s) | VaultRef::Host(s) => s,
        }
    }
}

/// Whether `s` is a Key Vault or Managed HSM name by Azure's rule ([`VAULT_NAME_RULE`]).
/// Case does not matter: Azure treats vault names case-insensitively.
pub fn is_vault_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    VAULT_NAME_LEN.contains(&bytes.len())
        && first.is_ascii_alphabetic()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && !s.contains("--")
}

/// Checks a `host[:port]` DNS name, and, for a host under a Key Vault or Managed HSM
/// suffix (`NAME.vault.azure.net`, `NAME.managedhsm.azure.net`, ...), that `NAME` is
/// one vault name by Azure's rule.
pub(crate) fn check_vault_host(s: &str) -> Result<(), ReferenceError> {
    let host = s.rsplit_once(':').map_or(s, |(host, _)| host);
    if let Some(name) = crate::vault::name_under_suffix(host) {
        if !is_vault_name(name) {
            return Err(ReferenceError::BadVaultNameInHost {
                host: shown(s),
                name: shown(name),
            });
        }
    }
    check_host(s)
}

/// A vault as quoted in a message: no valid vault or host is longer than 253 characters,
/// so longer text (a pod author's) is cut there rather than echoed whole.
fn shown(s: &str) -> String {
    const SHOWN: usize = 253;
    match s.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_string(),
    }
}

fn check_name(name: &str) -> Result<(), ReferenceError> {
    if name.is_empty() {
        return Err(ReferenceError::EmptyName);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(ReferenceError::BadNameChar {
            name: name.to_string(),
            found: CharDesc(c),
        });
    }
    if name.len() > NAME_MAX {
        return Err(ReferenceError::NameTooLong(name.len()));
    }
    Ok(())
}

fn check_version(version: &str) -> Result<(), ReferenceError> {
    if version.len() == VERSION_LEN && version.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ReferenceError::BadVersion(version.to_string()))
    }
}

/// Checks a `host[:port]` DNS name.
pub(crate) fn check_host(s: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::BadVaultHost(shown(s));
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (s, None),
    };
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 && !port.starts_with('0') => {}
            _ => return Err(bad()),
        }
    }
    if host.is_empty() || host.len() > HOST_MAX {
        return Err(bad());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V: &str = "0123456789abcdef0123456789abcdef";

    fn r(vault: Option<VaultRef>, name: &str, version: Option<&str>, part: Part) -> Reference {
        Reference::new(vault, name, version, part).expect("valid test reference")
    }

    #[test]
    fn parses_every_form() {
        let name = |s: &str| Some(VaultRef::Name(s.into()));
        let host = |s: &str| Some(VaultRef::Host(s.into()));
        let long = "a".repeat(127);
        let cases: Vec<(String, Reference)> = vec![
            ("akv:db".into(), r(None, "db", None, Part::Value)),
            (
                "akv:db-password".into(),
                r(None, "db-password", None, Part::Value),
            ),
            (
                "akv:DB-Password-2".into(),
                r(None, "DB-Password-2", None, Part::Value),
            ),
            ("akv:db#value".into(), r(None, "db", None, Part::Value)),
            (format!("akv:db/{V}"), r(None, "db", Some(V), Part::Value)),
            (
                format!("akv:db/{}", V.to_uppercase()),
                r(None, "db", Some(&V.to_uppercase()), Part::Value),
            ),
            ("akv:tls#cert".into(), r(None, "tls", None, Part::Cert)),
            ("akv:tls#key".into(), r(None, "tls", None, Part::Key)),
            ("akv:tls#chain".into(), r(None, "tls", None, Part::Chain)),
            (
                "akv:signing#pubkey".into(),
                r(None, "signing", None, Part::Pubkey),
            ),
            (
                format!("akv:tls/{V}#chain"),
                r(None, "tls", Some(V), Part::Chain),
            ),
            (
                "akv://my-vault/db".into(),
                r(name("my-vault"), "db", None, Part::Value),
            ),
            (
                "akv://My-Vault/db".into(),
                r(name("my-vault"), "db", None, Part::Value),
            ),
            (
                format!("akv://kv1/db/{V}"),
                r(name("kv1"), "db", Some(V), Part::Value),
            ),
            (
                format!("akv://kv1/tls/{V}#key"),
                r(name("kv1"), "tls", Some(V), Part::Key),
            ),
            (
                "akv://my-vault.vault.azure.cn/db".into(),
                r(host("my-vault.vault.azure.cn"), "db", None, Part::Value),
            ),
            (
                "akv://kv.privatelink.vaultcore.azure.net/db#value".into(),
                r(
                    host("kv.privatelink.vaultcore.azure.net"),
                    "db",
                    None,
                    Part::Value,
                ),
            ),
            (
                "akv://127.0.0.1:8443/db".into(),
                r(host("127.0.0.1:8443"), "db", None, Part::Value),
            ),
            (
                "akv://abcdefghijklmnopqrstuvwx/db".into(),
                r(name("abcdefghijklmnopqrstuvwx"), "db", None, Part::Value),
            ),
            (format!("akv:{long}"), r(None, &long, None, Part::Value)),
        ];
        for (input, want) in cases {
            let got: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn rejects_malformed_with_a_message() {
        let long_name = format!("akv:{}", "a".repeat(128));
        let cases: Vec<(String, &str)> = vec![
            ("db".into(), "a reference starts with 'akv:', e.g. akv:db-password"),
            ("AKV:db".into(), "a reference starts with 'akv:', e.g. akv:db-password"),
            ("akv:".into(), "the object name is missing: write akv:NAME or akv://VAULT/NAME, e.g. akv:db-password"),
            ("akv:#cert".into(), "the object name is missing: write akv:NAME or akv://VAULT/NAME, e.g. akv:db-password"),
            ("akv:db_password".into(), "object name 'db_password' contains '_'; Key Vault object names use only letters, digits and '-'"),
            ("akv:db.password".into(), "object name 'db.password' contains '.'; Key Vault object names use only letters, digits and '-'"),
            ("akv:pässword".into(), "object name 'pässword' contains 'ä'; Key Vault object names use only letters, digits and '-'"),
            ("akv:db password".into(), "the reference contains a space; references have no spaces or control characters"),
            ("akv:db\n".into(), "the reference contains a line break; references have no spaces or control characters"),
            (long_name, "object name is 128 characters long; Key Vault object names have 1 to 127"),
            ("akv:db/latest".into(), "version 'latest' is not a Key Vault object version: 32 hexadecimal digits, e.g. akv:db-password/0123456789abcdef0123456789abcdef"),
            ("akv:db/0123456789abcdef".into(), "version '0123456789abcdef' is not a Key Vault object version: 32 hexadecimal digits, e.g. akv:db-password/0123456789abcdef0123456789abcdef"),
            ("akv:db/0123456789abcdef0123456789abcdeg".into(), "version '0123456789abcdef0123456789abcdeg' is not a Key Vault object version: 32 hexadecimal digits, e.g. akv:db-password/0123456789abcdef0123456789abcdef"),
            ("akv:db/".into(), "version '' is not a Key Vault object version: 32 hexadecimal digits, e.g. akv:db-password/0123456789abcdef0123456789abcdef"),
            ("akv:db#".into(), "unknown part '#': use #value, #cert, #key, #chain, #pubkey, #pfx, #base64 or #json:FIELD"),
            ("akv:db#password".into(), "unknown part '#password': use #value, #cert, #key, #chain, #pubkey, #pfx, #base64 or #json:FIELD"),
            ("akv:db#Cert".into(), "unknown part '#Cert': use #value, #cert, #key, #chain, #pubkey, #pfx, #base64 or #json:FIELD"),
            ("akv:db#cert#key".into(), "unknown part '#cert#key': use #value, #cert, #key, #chain, #pubkey, #pfx, #base64 or #json:FIELD"),
            (format!("akv:db/{V}/x"), "too many '/' in 'db/0123456789abcdef0123456789abcdef/x': write NAME or NAME/VERSION after the vault"),
            ("akv:my-vault/db/x".into(), "too many '/' in 'my-vault/db/x': write NAME or NAME/VERSION after the vault"),
            ("akv:///db".into(), "the vault is missing after 'akv://': write akv://VAULT/NAME, e.g. akv://my-vault/db-password"),
            ("akv://my-vault".into(), "'akv://my-vault' names a vault but no object: write akv://my-vault/NAME"),
            ("akv://my-vault/".into(), "'akv://my-vault' names a vault but no object: write akv://my-vault/NAME"),
            ("akv://my-vault..azure.net/db".into(), "vault host 'my-vault..azure.net' is not a valid DNS name: labels of 1 to 63 letters, digits or '-', not starting or ending with '-', and an optional :PORT"),
            ("akv://kv1.vault.azure.net:0/db".into(), "vault host 'kv1.vault.azure.net:0' is not a valid DNS name: labels of 1 to 63 letters, digits or '-', not starting or ending with '-', and an optional :PORT"),
            ("akv://kv1.vault.azure.net:99999/db".into(), "vault host 'kv1.vault.azure.net:99999' is not a valid DNS name: labels of 1 to 63 letters, digits or '-', not starting or ending with '-', and an optional :PORT"),
        ];
        let bad_name = |v: &str| {
            format!("vault '{v}' is not a vault name nor a DNS name: {VAULT_NAME_RULE}; a DNS name has a dot, e.g. my-vault.vault.azure.cn")
        };
        let bad_in_host = |h: &str, v: &str| {
            format!(
                "vault host '{h}' names vault '{v}', which Azure does not allow: {VAULT_NAME_RULE}"
            )
        };
        let cases = cases
            .into_iter()
            .map(|(input, want)| (input, want.to_string()))
            .chain([
                ("akv://kv/db".into(), bad_name("kv")),
                (
                    "akv://abcdefghijklmnopqrstuvwxy/db".into(),
                    bad_name("abcdefghijklmnopqrstuvwxy"),
                ),
                ("akv://my_vault/db".into(), bad_name("my_vault")),
                ("akv://akak-/db".into(), bad_name("akak-")),
                ("akv://1kv/db".into(), bad_name("1kv")),
                ("akv://-kv1/db".into(), bad_name("-kv1")),
                ("akv://my--vault/db".into(), bad_name("my--vault")),
                (
                    "akv://https://kv1.vault.azure.net/db".into(),
                    bad_name("https:"),
                ),
                (
                    "akv://-kv.vault.azure.net/db".into(),
                    bad_in_host("-kv.vault.azure.net", "-kv"),
                ),
                (
                    "akv://akak-.vault.azure.net/db".into(),
                    bad_in_host("akak-.vault.azure.net", "akak-"),
                ),
                (
                    "akv://kv.vault.azure.net/db".into(),
                    bad_in_host("kv.vault.azure.net", "kv"),
                ),
                (
                    "akv://a--b.managedhsm.azure.net:8443/db".into(),
                    bad_in_host("a--b.managedhsm.azure.net:8443", "a--b"),
                ),
            ]);
        for (input, want) in cases {
            let err = input.parse::<Reference>().expect_err(&input);
            assert_eq!(err.to_string(), want, "{input:?}");
        }
    }

    fn json(path: &str) -> Part {
        Part::Json(path.parse().expect("valid path"))
    }

    #[test]
    fn parses_the_file_parts() {
        let cases: Vec<(String, Reference)> = vec![
            ("akv:tls#pfx".into(), r(None, "tls", None, Part::Pfx)),
            (
                format!("akv:tls/{V}#pfx"),
                r(None, "tls", Some(V), Part::Pfx),
            ),
            (
                "akv:blob#base64".into(),
                r(None, "blob", None, Part::Base64),
            ),
            (
                "akv:cfg#json:password".into(),
                r(None, "cfg", None, json("password")),
            ),
            (
                "akv:cfg#json:db.hosts.0".into(),
                r(None, "cfg", None, json("db.hosts.0")),
            ),
            (
                "akv:cfg#json:a_b-C9".into(),
                r(None, "cfg", None, json("a_b-C9")),
            ),
            (
                "akv://kv1/cfg#json:x.y".into(),
                r(Some(VaultRef::Name("kv1".into())), "cfg", None, json("x.y")),
            ),
            (
                format!("akv:cfg#json:{}", "f".repeat(128)),
                r(None, "cfg", None, json(&"f".repeat(128))),
            ),
        ];
        for (input, want) in cases {
            let got: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got, want, "{input}");
            assert_eq!(got.to_string(), input, "prints back");
        }
        let steps: Vec<String> = match "akv:c#json:a.0.b"
            .parse::<Reference>()
            .expect("valid")
            .part()
        {
            Part::Json(p) => p.steps().map(str::to_string).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(steps, ["a", "0", "b"]);
        assert_eq!(Part::Pfx.object_kind(), ObjectKind::Certificate);
        assert_eq!(Part::Base64.object_kind(), ObjectKind::Secret);
        assert_eq!(json("a").object_kind(), ObjectKind::Secret);
        assert!(Part::Pfx.needs_certificate_secret() && !Part::Cert.needs_certificate_secret());
    }

    /// The new parts' malformed forms, each with the message the user sees.
    #[test]
    fn rejects_malformed_file_parts() {
        let unknown = |p: &str| {
            format!("unknown part '#{p}': use #value, #cert, #key, #chain, #pubkey, #pfx, #base64 or #json:FIELD")
        };
        let no_path = "#json needs a path: write #json:FIELD or #json:FIELD.FIELD, e.g. akv:db-config#json:password".to_string();
        let empty_field = |p: &str| {
            format!("JSON path '{p}' has an empty field: separate fields with single dots, e.g. #json:db.password")
        };
        let bad_char = |f: &str, c: &str| {
            format!("JSON field '{f}' contains {c}; a field uses only letters, digits, '_' and '-' (or is an array index such as 0)")
        };
        let cases: Vec<(String, String)> = vec![
            ("akv:cfg#json".into(), no_path.clone()),
            ("akv:cfg#json:".into(), no_path.clone()),
            ("akv:cfg#json:.a".into(), empty_field(".a")),
            ("akv:cfg#json:a.".into(), empty_field("a.")),
            ("akv:cfg#json:a..b".into(), empty_field("a..b")),
            ("akv:cfg#json:a/b".into(), bad_char("a/b", "'/'")),
            ("akv:cfg#json:a[0]".into(), bad_char("a[0]", "'['")),
            ("akv:cfg#json:$.a".into(), bad_char("$", "'$'")),
            ("akv:cfg#json:pässword".into(), bad_char("pässword", "'ä'")),
            ("akv:cfg#json:a:b".into(), bad_char("a:b", "':'")),
            ("akv:cfg#json:a#b".into(), bad_char("a#b", "'#'")),
            ("akv:cfg#json:a b".into(), "the reference contains a space; references have no spaces or control characters".into()),
            (format!("akv:cfg#json:{}", "f".repeat(129)), "JSON field is 129 characters long; a field has 1 to 128".into()),
            (format!("akv:cfg#json:{}", vec!["a"; 33].join(".")), "JSON path has 33 fields; a path has at most 32".into()),
            ("akv:cfg#JSON:a".into(), unknown("JSON:a")),
            ("akv:cfg#json=a".into(), unknown("json=a")),
            ("akv:tls#PFX".into(), unknown("PFX")),
            ("akv:tls#p12".into(), unknown("p12")),
            ("akv:blob#base64url".into(), unknown("base64url")),
            ("akv:blob#base64#json:a".into(), unknown("base64#json:a")),
            ("akv:blob#b64".into(), unknown("b64")),
            ("akv:#pfx".into(), "the object name is missing: write akv:NAME or akv://VAULT/NAME, e.g. akv:db-password".into()),
        ];
        assert!(cases.len() >= 15);
        for (input, want) in cases {
            let err = input.parse::<Reference>().expect_err(&input);
            assert_eq!(err.to_string(), want, "{input:?}");
        }
    }

    #[test]
    fn display_is_canonical() {
        for (input, shown) in [
            ("akv:db#value", "akv:db"),
            ("akv://My-Vault/db", "akv://my-vault/db"),
            (
                "akv://KV1.Vault.Azure.Net/db#cert",
                "akv://kv1.vault.azure.net/db#cert",
            ),
        ] {
            let parsed: Reference = input.parse().expect(input);
            assert_eq!(parsed.to_string(), shown);
        }
    }

    #[test]
    fn part_kinds() {
        assert_eq!(Part::Value.object_kind().collection(), "secrets");
        assert_eq!(Part::Cert.object_kind().collection(), "certificates");
        assert_eq!(Part::Key.object_kind().collection(), "certificates");
        assert_eq!(Part::Chain.object_kind().collection(), "certificates");
        assert_eq!(Part::Pubkey.object_kind().collection(), "keys");
    }

    /// Names that follow Azure's rule: a letter, then letters or digits with single '-'
    /// between them.
    fn arb_vault_name() -> impl Strategy<Value = String> {
        "[a-zA-Z](-?[a-zA-Z0-9]){2,11}"
    }

    #[test]
    fn long_vaults_are_cut_in_messages() {
        let long = "a".repeat(10_000);
        for input in [
            format!("akv://{long}/db"),
            format!("akv://{long}.vault.azure.net/db"),
            format!("akv://x.{long}/db"),
        ] {
            let err = input
                .parse::<Reference>()
                .expect_err("too long")
                .to_string();
            assert!(err.len() < 700, "{} bytes", err.len());
            assert!(err.contains('…'), "{err}");
        }
    }

    #[test]
    fn vault_names_follow_azure_rule() {
        for ok in [
            "abc",
            "a-b",
            "kv1",
            "My-Vault-2",
            "abcdefghijklmnopqrstuvwx",
            "a1-2-3",
        ] {
            assert!(is_vault_name(ok), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "abcdefghijklmnopqrstuvwxy",
            "akak-",
            "-abc",
            "1abc",
            "a--b",
            "a_b",
            "a.b",
            "ab c",
            "äbc",
        ] {
            assert!(!is_vault_name(bad), "{bad}");
        }
    }

    fn arb_reference() -> impl Strategy<Value = Reference> {
        let vault = prop_oneof![
            Just(None),
            arb_vault_name().prop_map(|s| Some(VaultRef::Name(s.to_ascii_lowercase()))),
            (
                "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){1,3}",
                proptest::option::of(1u16..)
            )
                .prop_map(|(h, p)| Some(VaultRef::Host(match p {
                    Some(p) => format!("{h}:{p}"),
                    None => h,
                }))),
        ];
        let part = prop_oneof![
            proptest::sample::select(Part::ALL.to_vec()),
            "[A-Za-z0-9_-]{1,12}(\\.[A-Za-z0-9_-]{1,12}){0,4}"
                .prop_map(|p| Part::Json(p.parse().expect("generated path is valid"))),
        ];
        (
            vault,
            "[0-9A-Za-z-]{1,127}",
            proptest::option::of("[0-9a-fA-F]{32}"),
            part,
        )
            .prop_map(|(vault, name, version, part)| {
                Reference::new(vault, &name, version.as_deref(), part)
                    .expect("generated reference is valid")
            })
    }

    proptest! {
        #[test]
        fn display_and_from_str_round_trip(reference in arb_reference()) {
            let shown = reference.to_string();
            let parsed: Reference = shown.parse().map_err(|e| TestCaseError::fail(format!("{shown}: {e}")))?;
            prop_assert_eq!(parsed, reference);
        }

        #[test]
        fn generated_names_are_vault_names(name in arb_vault_name()) {
            prop_assert!(is_vault_name(&name), "{}", name);
        }

        /// A vault name is accepted exactly when it follows the rule, and then its DNS
        /// form is accepted too; no vault is accepted in one form and refused in another.
        #[test]
        fn vault_forms_agree(s in "[a-zA-Z0-9_-]{0,26}") {
            let bare = VaultRef::parse(&s);
            prop_assert_eq!(bare.is_ok(), is_vault_name(&s), "{}", s);
            for suffix in crate::vault::KEY_VAULT_SUFFIXES {
                let host = format!("{s}.{suffix}");
                prop_assert_eq!(VaultRef::parse(&host).is_ok(), bare.is_ok(), "{}", host);
            }
        }

        #[test]
        fn parse_never_panics(s in "akv:\\PC{0,80}") {
            let _ = s.parse::<Reference>();
        }

        #[test]
        fn accepted_strings_reparse_to_the_same_reference(s in "akv:(//[a-zA-Z0-9.:-]{0,30}/)?[a-zA-Z0-9_-]{0,10}(/[0-9a-f]{0,33})?(#[a-z]{0,7}(:[a-z0-9._]{0,6})?)?") {
            if let Ok(first) = s.parse::<Reference>() {
                let again: Reference = first.to_string().parse().map_err(|e| TestCaseError::fail(format!("{s}: {e}")))?;
                prop_assert_eq!(again, first);
            }
        }
    }
}
