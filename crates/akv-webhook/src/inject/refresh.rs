//! Restart on change (`akv-injector.io/refresh`), the webhook's side: the interval is
//! checked (`1m` to `24h`), a pod that would never be restarted is refused, the grace
//! period is passed down, and the user is told that containers will restart.
//!
//! The interval and the grace period travel in the pod's settings
//! ([`akv_core::PodSettings::refresh`] and `grace`), so `akv-env` gets them as
//! `AKV_INJECTOR_REFRESH` and `AKV_INJECTOR_GRACE` with every other setting.

use std::time::Duration;

use akv_core::refresh::{grace_for, parse_refresh_annotation};
use akv_core::settings::format_duration;
use k8s_openapi::api::core::v1::PodSpec;

use super::annotations::{AnnotationError, PodConfig};
use super::cost::Warnings;
use super::denial::Denial;
use super::plan::{ContainerKind, Target};

/// The annotation.
pub const REFRESH: &str = "akv-injector.io/refresh";

/// The annotation's value, or a denial that names it and what is allowed.
pub fn parse(value: &str) -> Result<Duration, AnnotationError> {
    parse_refresh_annotation(value).map_err(|reason| AnnotationError::Setting {
        key: REFRESH.to_string(),
        reason,
    })
}

/// For a pod that asks for refresh: refuses what cannot work (a pod that is never
/// restarted, an init container), sets the grace period akv-env waits before SIGKILL,
/// and warns that containers restart. Nothing happens to a pod without the annotation.
pub fn apply(
    config: &mut PodConfig,
    spec: &PodSpec,
    targets: &[Target<'_>],
    warnings: &mut Warnings,
) -> Result<(), Denial> {
    let Some(interval) = config.settings.refresh else {
        return Ok(());
    };
    if spec.restart_policy.as_deref() == Some("Never") {
        return Err(Denial::RefreshNeverRestarts);
    }
    if let Some(init) = targets.iter().find(|t| t.id.kind == ContainerKind::Init) {
        return Err(Denial::RefreshInitContainer {
            container: init.id.name.clone(),
        });
    }
    let grace = grace_for(spec.termination_grace_period_seconds);
    config.settings.grace = Some(grace);
    warnings.push_with(|| {
        format!(
            "annotation {REFRESH}: akv-env checks every {} for new versions of the objects it read at latest, and restarts the container on one (SIGTERM, SIGKILL after {}); pin NAME/VERSION where no restart is wanted",
            short(interval),
            short(grace)
        )
    });
    Ok(())
}

/// `10m`, `1h`, `90s`: the largest whole unit (intervals and grace periods are whole seconds).
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format_duration(d),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_durations() {
        for (secs, want) in [
            (600, "10m"),
            (3600, "1h"),
            (28, "28s"),
            (90, "90s"),
            (86_400, "24h"),
        ] {
            assert_eq!(short(Duration::from_secs(secs)), want);
        }
    }

    #[test]
    fn interval_denials_name_the_annotation() {
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        for (value, want) in [
            ("30s", "annotation akv-injector.io/refresh: '30s' is out of range: write a duration between 1m and 24h"),
            ("2d", "annotation akv-injector.io/refresh: '2d' is not a duration"),
            ("25h", "annotation akv-injector.io/refresh: '25h' is out of range"),
        ] {
            let err = parse(value).expect_err(value).to_string();
            assert!(err.starts_with(want), "{err}");
        }
    }
}
