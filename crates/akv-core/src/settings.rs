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
    #[error("'{value}' is out of range: write a duration between {min} and {max}")]
    OutOfRange {
        value: String,
        min: &'static str,
        max: &'static str,
    },
    #[error("'{0}' is not a boolean: write \"true\" or \"false\"")]
    BadBool(String),
    #[error("'{0}' is not a GUID such as 00000000-0000-0000-0000-000000000000")]
    BadGuid(String),
    #[error("'{0}' is not a tenant: give its GUID or its domain (contoso.onmicrosoft.com)")]
    BadTenant(String),
}

/// Parses a fetch budget such as `30s`, `2m`, `1m30s`, `1500ms` (1s to 1h).
pub fn parse_timeout(s: &str) -> Result<Duration, SettingError> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) || d > MAX_TIMEOUT {
        return Err(SettingError::DurationOutOfRange(s.to_string()));
    }
    Ok(d)
}

/// The longest duration [`parse_duration`] accepts: the longest single piece it reads
/// (`999999999h`), so that [`format_duration`] can always print what was parsed.
pub const MAX_DURATION: Duration = Duration::from_secs(999_999_999 * 3600);

/// Parses a Go-style duration made of `<digits><unit>` pieces (units ms, s, m, h), each
/// of at most 9 digits, in total at most [`MAX_DURATION`].
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
        if total > MAX_DURATION {
            return Err(bad());
        }
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Formats a duration (to the millisecond) the way [`parse_duration`] reads it back:
/// `90s` or `1500ms` when that number has at most 9 digits, else its decomposition
/// into hours, minutes, seconds and milliseconds (`18462h57m26s1ms`). Every duration
/// that `parse_duration` accepts prints in a form that parses back to it.
pub fn format_duration(d: Duration) -> String {
    const ONE_PIECE_MAX: u128 = 999_999_999;
    let ms = d.as_millis();
    if (d.subsec_millis() != 0 || d.as_secs() == 0) && ms <= ONE_PIECE_MAX {
        return format!("{ms}ms");
    }
    if d.subsec_millis() == 0 && u128::from(d.as_secs()) <= ONE_PIECE_MAX {
        return format!("{}s", d.as_secs());
    }
    let units = [(3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")];
    let mut rest = ms;
    let mut out = String::new();
    for (size, unit) in units {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
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

/// Checks an Entra tenant: its GUID, or one of its domains (`contoso.onmicrosoft.com`),
/// as Entra ID's authority URL takes either. Both come back lower case.
pub fn parse_tenant(s: &str) -> Result<String, SettingError> {
    if let Ok(guid) = parse_guid(s) {
        return Ok(guid);
    }
    let is_label = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let is_domain = s.len() <= 253 && s.contains('.') && s.split('.').all(is_label);
    if is_domain {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(SettingError::BadTenant(s.to_string()))
    }
}

/// The value a variable set several times has (the last one, as Kubernetes and `execve`
/// leave it), trimmed; empty counts as not set. For the `from_env` readers.
pub fn last_set<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    values
        .into_iter()
        .last()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The values of `name` in a list of name/value pairs: the lookup that
/// `PodSettings::from_pairs` and `IdentitySettings::from_pairs` give to their `from_env`.
pub fn values_in<'a, K: AsRef<str>, V: AsRef<str>>(
    pairs: &'a [(K, V)],
    name: &str,
) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k.as_ref() == name)
        .map(|(_, v)| v.as_ref())
        .collect()
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
            "999999999h1ms",
            "999999999h999999999h",
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
    fn durations_print_in_a_form_that_parses_back() {
        let cases = [
            (Duration::ZERO, "0ms"),
            (Duration::from_secs(120), "120s"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(999_999_999), "999999999s"),
            (Duration::from_secs(1_000_000_000), "277777h46m40s"),
            (Duration::from_millis(999_999_999), "999999999ms"),
            (Duration::from_millis(1_000_000_001), "277h46m40s1ms"),
            // The fuzz finding: 1ms66466646s printed as 66466646001ms (11 digits).
            (Duration::from_millis(66_466_646_001), "18462h57m26s1ms"),
            (MAX_DURATION, "999999999h"),
        ];
        for (d, shown) in cases {
            assert_eq!(format_duration(d), shown, "{d:?}");
            assert_eq!(parse_duration(shown), Ok(d), "{shown}");
        }
        assert_eq!(parse_duration("999999999h"), Ok(MAX_DURATION));
    }

    proptest::proptest! {
        #[test]
        fn every_accepted_duration_round_trips(s in "([0-9]{1,10}(ms|s|m|h)){1,4}") {
            if let Ok(d) = parse_duration(&s) {
                let shown = format_duration(d);
                proptest::prop_assert_eq!(parse_duration(&shown), Ok(d), "{} -> {}", s, shown);
            }
        }

        #[test]
        fn every_duration_up_to_the_bound_round_trips(ms in 0..=MAX_DURATION.as_millis() as u64) {
            let d = Duration::from_millis(ms);
            let shown = format_duration(d);
            proptest::prop_assert_eq!(parse_duration(&shown), Ok(d), "{}", shown);
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
        assert_eq!(parse_tenant(guid), Ok(guid.to_ascii_lowercase()));
        assert_eq!(
            parse_tenant("Contoso.OnMicrosoft.com"),
            Ok("contoso.onmicrosoft.com".into())
        );
        for bad in ["contoso", "a..b", "-a.b", "a b.c", "a/b.c", ""] {
            assert_eq!(
                parse_tenant(bad),
                Err(SettingError::BadTenant(bad.into())),
                "{bad}"
            );
        }
    }
}
