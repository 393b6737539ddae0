//! When to check, and when to warn again (pure: the random draw and the clock are passed in).

use std::time::{Duration, Instant};

/// The spread around the interval: ±10 %, so that pods started together (a rollout, a
/// node's restart) do not ask Key Vault at the same moment every interval.
pub const JITTER: f64 = 0.10;

/// The wait before the next check: `interval` × (1 ± [`JITTER`]), with `unit` a uniform
/// draw from [0, 1). The first check comes one such wait after the start.
pub fn next_wait(interval: Duration, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let factor = 1.0 - JITTER + 2.0 * JITTER * unit;
    interval.mul_f64(factor)
}

/// A uniform draw from [0, 1) without a random-number crate: std's per-process random
/// SipHash keys, hashed with the time (jitter needs spread, not secrecy).
pub fn draw() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// At most one warning per `every`; the ones held back are counted and named in the next.
#[derive(Debug)]
pub struct WarnLimit {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl WarnLimit {
    pub fn new(every: Duration) -> Self {
        WarnLimit {
            every,
            last: None,
            held: 0,
        }
    }

    /// Whether to print a warning now; `Some(n)`: print it, saying `n` were held back since
    /// the last one.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_within_ten_percent() {
        let ten = Duration::from_secs(600);
        for (unit, want) in [
            (0.0, 540_000),
            (0.5, 600_000),
            (0.999_999, 659_999),
            (1.0, 660_000),
            (-3.0, 540_000),
            (f64::NAN, 600_000),
        ] {
            assert_eq!(next_wait(ten, unit).as_millis(), want, "{unit}");
        }
        for _ in 0..1000 {
            let u = draw();
            assert!((0.0..1.0).contains(&u), "{u}");
            let w = next_wait(ten, u);
            assert!(w >= Duration::from_secs(540) && w <= Duration::from_secs(660));
        }
    }

    #[test]
    fn draws_spread() {
        let draws: Vec<f64> = (0..200).map(|_| draw()).collect();
        let low = draws.iter().filter(|u| **u < 0.5).count();
        assert!((50..150).contains(&low), "{low} of 200 below 0.5");
    }

    #[test]
    fn warnings_are_rate_limited() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut limit = WarnLimit::new(s(300));
        assert_eq!(limit.allow(t0), Some(0));
        assert_eq!(limit.allow(t0 + s(10)), None);
        assert_eq!(limit.allow(t0 + s(299)), None);
        assert_eq!(limit.allow(t0 + s(300)), Some(2));
        assert_eq!(limit.allow(t0 + s(301)), None);
        assert_eq!(limit.allow(t0 + s(900)), Some(1));
    }
}
