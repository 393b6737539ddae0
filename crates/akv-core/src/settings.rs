//! The settings the webhook passes down to `akv-env` as `AKV_INJECTOR_*` variables,
//! and the parsers both sides use for them, so that the webhook refuses at admission
//! exactly what `akv-env` would refuse in the pod.

use std::time::Duration;

use thiserror::Error;

/// Every variable the webhook adds starts with this; `akv-env` removes them all before exec.
pub const ENV_PREFIX: &str = "AKV_INJECTOR_";
/// Default vault, as `https://host[:port]`.
pub const ENV_VAULT: &str = "AKV_INJECTOR_VAULT";
/// Client id overriding `AZURE_CLIENT_ID`.
pub const ENV_CLIENT_ID: &str = "AKV_INJECTOR_CLIENT_ID";
/// Tenant id overriding `AZURE_TENANT_ID`.
pub const ENV_TENANT_ID: &str = "AKV_INJECTOR_TENANT_ID";
/// `true`: a missing object resolves to an empty string.
pub const ENV_IGNORE_MISSING: &str = "AKV_INJECTOR_IGNORE_MISSING";
/// Total fetch budget, e.g. `60s`.
pub const ENV_TIMEOUT: &str = "AKV_INJECTOR_TIMEOUT";
/// Extra vault hosts the operator allowed, comma-separated.
pub const ENV_ALLOW_VAULT_HOSTS: &str = "AKV_INJECTOR_ALLOW_VAULT_HOSTS";

/// The default fetch budget.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest fetch budget accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// A setting that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SettingError {
    #[error(
        "'{0}' is not a duration: write a number and a unit (ms, s, m, h), e.g. 30s, 2m or 1m30s"
    )]
    BadDuration(String),
    #[error("'{0}' is out of range: the timeout must be between 1s and 1h")]
    DurationOutOfRange(String),
    #[error("'{0}' is not a boolean: write \"true\" or \"false\"")]
    BadBool(String),
    #[error("'{0}' is not a GUID such as 00000000-0000-0000-0000-000000000000")]
    BadGuid(String),
}

/// Parses a fetch budget such as `30s`, `2m`, `1m30s`, `1500ms` (1s to 1h).
pub fn parse_timeout(s: &str) -> Result<Duration, SettingError> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) || d > MAX_TIMEOUT {
        return Err(SettingError::DurationOutOfRange(s.to_string()));
    }
    Ok(d)
}

/// Parses a Go-style duration made of `<digits><unit>` pieces (units ms, s, m, h).
pub fn parse_duration(s: &str) -> Result<Duration, SettingError> {
    let bad = || SettingError::BadDuration(s.to_string());
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let piece = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
        total = total.checked_add(piece).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Formats a duration the way [`parse_duration`] reads it back.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Parses `"true"` or `"false"` (exactly; annotation values are not guessed at).
pub fn parse_bool(s: &str) -> Result<bool, SettingError> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SettingError::BadBool(s.to_string())),
    }
}

/// Checks an Entra client or tenant id: a GUID.
pub fn parse_guid(s: &str) -> Result<String, SettingError> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let ok = groups.len() == lens.len()
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(SettingError::BadGuid(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("30s", 30_000),
            ("2m", 120_000),
            ("1m30s", 90_000),
            ("1500ms", 1_500),
            ("1h", 3_600_000),
            ("0s", 0),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for bad in [
            "",
            "30",
            "s",
            "1.5s",
            "-1s",
            "30 s",
            "1d",
            "10sec",
            "9999999999s",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(SettingError::BadDuration(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn timeouts_are_bounded() {
        assert_eq!(parse_timeout("60s"), Ok(DEFAULT_TIMEOUT));
        for bad in ["0s", "500ms", "2h"] {
            assert_eq!(
                parse_timeout(bad).map_err(|e| e.to_string()),
                Err(format!(
                    "'{bad}' is out of range: the timeout must be between 1s and 1h"
                ))
            );
        }
        for d in [
            Duration::from_secs(60),
            Duration::from_millis(1500),
            Duration::ZERO,
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn booleans_and_guids() {
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool("false"), Ok(false));
        for bad in ["True", "yes", "1", ""] {
            assert!(parse_bool(bad).is_err(), "{bad}");
        }
        let guid = "0A1b2c3d-0000-4000-8000-00000000000F";
        assert_eq!(parse_guid(guid), Ok(guid.to_ascii_lowercase()));
        for bad in [
            "",
            "abc",
            "0a1b2c3d00004000800000000000000f",
            "0a1b2c3d-0000-4000-8000-00000000000g",
        ] {
            assert!(parse_guid(bad).is_err(), "{bad}");
        }
    }
}
