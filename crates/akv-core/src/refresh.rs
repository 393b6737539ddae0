//! Restart on change (`akv-injector.io/refresh`): the two settings the webhook passes down
//! for it, and their parsers, shared so that both sides agree on what they mean.
//!
//! - `AKV_INJECTOR_REFRESH`: how often `akv-env` asks Key Vault whether an object it read
//!   at "latest" has a new version. The webhook admits `1m` to `24h` from the annotation;
//!   `akv-env` itself reads `1s` to `24h` from the variable, so a test (or someone running
//!   akv-env by hand) can use a short interval through the same documented variable.
//! - `AKV_INJECTOR_GRACE`: how long `akv-env` waits after SIGTERM before SIGKILL when it
//!   restarts the application; the webhook writes the pod's
//!   `terminationGracePeriodSeconds` (default 30) minus [`GRACE_MARGIN`].

use std::time::Duration;

use crate::settings::{parse_duration, SettingError};

/// The interval, e.g. `10m`. Absent: refresh is off and akv-env `execve`s.
pub const ENV_REFRESH: &str = "AKV_INJECTOR_REFRESH";
/// SIGTERM-to-SIGKILL wait on a restart, e.g. `28s`.
pub const ENV_GRACE: &str = "AKV_INJECTOR_GRACE";

/// The shortest interval the annotation admits.
pub const MIN_ANNOTATION_REFRESH: Duration = Duration::from_secs(60);
/// The shortest interval akv-env accepts from [`ENV_REFRESH`] (tests, manual runs).
pub const MIN_ENV_REFRESH: Duration = Duration::from_secs(1);
/// The longest interval, on both sides.
pub const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);
/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE: Duration = Duration::from_secs(30);
/// Taken off the pod's grace period, so that akv-env's SIGKILL comes before the kubelet's
/// when both stop the container at once.
pub const GRACE_MARGIN: Duration = Duration::from_secs(2);
/// The shortest wait the webhook writes (a pod with a grace period of 2 s or less still
/// gives its application a second).
pub const MIN_GRACE: Duration = Duration::from_secs(1);
/// The longest wait accepted.
pub const MAX_GRACE: Duration = Duration::from_secs(24 * 3600);
/// akv-env's wait when [`ENV_GRACE`] is absent: the default grace period less the margin.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(28);

/// The annotation's value: `1m` to `24h`.
pub fn parse_refresh_annotation(s: &str) -> Result<Duration, SettingError> {
    in_range(s, MIN_ANNOTATION_REFRESH, MAX_REFRESH, "1m", "24h")
}

/// [`ENV_REFRESH`] as akv-env reads it: `1s` to `24h`.
pub fn parse_refresh_env(s: &str) -> Result<Duration, SettingError> {
    in_range(s, MIN_ENV_REFRESH, MAX_REFRESH, "1s", "24h")
}

/// [`ENV_GRACE`]: `0s` to `24h`.
pub fn parse_grace(s: &str) -> Result<Duration, SettingError> {
    in_range(s, Duration::ZERO, MAX_GRACE, "0s", "24h")
}

/// The wait the webhook passes down for a pod's `terminationGracePeriodSeconds`
/// (`None`: Kubernetes' default of 30 s): that less [`GRACE_MARGIN`], at least
/// [`MIN_GRACE`], at most [`MAX_GRACE`].
pub fn grace_for(termination_grace_seconds: Option<i64>) -> Duration {
    let total = termination_grace_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
        .unwrap_or(DEFAULT_TERMINATION_GRACE);
    total
        .saturating_sub(GRACE_MARGIN)
        .clamp(MIN_GRACE, MAX_GRACE)
}

fn in_range(
    s: &str,
    min: Duration,
    max: Duration,
    min_text: &'static str,
    max_text: &'static str,
) -> Result<Duration, SettingError> {
    let d = parse_duration(s)?;
    if d < min || d > max {
        return Err(SettingError::OutOfRange {
            value: s.to_string(),
            min: min_text,
            max: max_text,
        });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        let s = Duration::from_secs;
        let cases: &[(&str, Option<Duration>, Option<Duration>)] = &[
            // value, annotation, env
            ("10m", Some(s(600)), Some(s(600))),
            ("1m", Some(s(60)), Some(s(60))),
            ("24h", Some(s(86_400)), Some(s(86_400))),
            ("1h30m", Some(s(5_400)), Some(s(5_400))),
            ("59s", None, Some(s(59))),
            ("2s", None, Some(s(2))),
            ("1s", None, Some(s(1))),
            ("999ms", None, None),
            ("0s", None, None),
            ("24h1s", None, None),
            ("soon", None, None),
            ("", None, None),
        ];
        for (value, annotation, env) in cases {
            assert_eq!(parse_refresh_annotation(value).ok(), *annotation, "{value}");
            assert_eq!(parse_refresh_env(value).ok(), *env, "{value}");
        }
        assert_eq!(
            parse_refresh_annotation("30s").unwrap_err().to_string(),
            "'30s' is out of range: write a duration between 1m and 24h"
        );
    }

    #[test]
    fn grace() {
        let s = Duration::from_secs;
        for (seconds, want) in [
            (None, s(28)),
            (Some(30), s(28)),
            (Some(60), s(58)),
            (Some(3), s(1)),
            (Some(2), s(1)),
            (Some(0), s(1)),
            (Some(-5), s(1)),
            (Some(10 * 86_400), s(86_400)),
        ] {
            assert_eq!(grace_for(seconds), want, "{seconds:?}");
        }
        assert_eq!(parse_grace("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_grace("28s"), Ok(s(28)));
        assert!(parse_grace("25h").is_err());
    }
}
