//! The retry policy (pure, table-tested) and the loop that applies it inside the
//! deadline: 429 waits what `Retry-After` asks; 429 without it, 408, 5xx and transport
//! errors back off exponentially with jitter; everything else gives up at once.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::Cause;

/// One failed attempt, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub cause: Cause,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Wait(Duration),
    GiveUp(Cause),
}

/// The retry policy (pure): 429 waits what `Retry-After` asks; 429 without it, 408, 5xx
/// and transport errors back off exponentially (200 ms doubling, at most 5 s) with jitter
/// (`jitter` in 0..=1 scales the wait between 50 % and 100 %). Everything else, and any
/// wait that would pass the deadline, gives up.
pub fn next_step(
    failure: Failure,
    attempt: u32,
    remaining: Duration,
    timeout: Duration,
    jitter: f64,
) -> Next {
    if !failure.retryable {
        return Next::GiveUp(failure.cause);
    }
    let wait = match failure.retry_after {
        Some(wait) => wait,
        None => {
            let base =
                Duration::from_millis(200).saturating_mul(1u32 << attempt.min(8).saturating_sub(1));
            base.min(Duration::from_secs(5))
                .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
        }
    };
    if wait >= remaining {
        return Next::GiveUp(Cause::Budget {
            timeout,
            attempts: attempt,
            last: Some(Box::new(failure.cause)),
            retry_after: failure.retry_after,
        });
    }
    Next::Wait(wait)
}

/// A number in 0..=1 that differs per call (for jitter), without a random-number crate.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() % 10_001) as f64 / 10_000.0
}

/// Parses `Retry-After` (seconds or an HTTP date), `retry-after-ms` and `x-ms-retry-after-ms`.
pub fn parse_retry_after(
    retry_after: Option<&str>,
    retry_after_ms: Option<&str>,
) -> Option<Duration> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_millis(ms));
    }
    let v = retry_after?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = azure_core::time::parse_rfc7231(v).ok()?;
    let now = azure_core::time::OffsetDateTime::now_utc();
    Some(if when > now {
        (when - now).try_into().unwrap_or_default()
    } else {
        Duration::ZERO
    })
}

/// Runs `attempt` until it succeeds, gives up, or the deadline passes.
pub async fn with_retries<T, F, Fut>(
    deadline: Instant,
    timeout: Duration,
    mut attempt: F,
) -> Result<T, Cause>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut n = 0;
    let mut last: Option<Failure> = None;
    loop {
        n += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let failure = match tokio::time::timeout(remaining, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(failure)) => failure,
            Err(_) => {
                return Err(Cause::Budget {
                    timeout,
                    attempts: n,
                    last: last.map(|f| Box::new(f.cause)),
                    retry_after: None,
                })
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        match next_step(failure.clone(), n, remaining, timeout, jitter()) {
            Next::Wait(wait) => tokio::time::sleep(wait).await,
            Next::GiveUp(cause) => return Err(cause),
        }
        last = Some(failure);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(status: u16, retryable: bool, retry_after: Option<u64>) -> Failure {
        Failure {
            cause: Cause::Status {
                status,
                code: None,
                message: String::new(),
            },
            retryable,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn retry_policy() {
        let t = Duration::from_secs(60);
        let rem = Duration::from_secs(30);
        let cases = [
            (fail(404, false, None), 1, rem, 0.0, None),
            (fail(403, false, None), 1, rem, 0.0, None),
            (
                fail(429, true, Some(2)),
                1,
                rem,
                0.5,
                Some(Duration::from_secs(2)),
            ),
            (
                fail(503, true, None),
                1,
                rem,
                1.0,
                Some(Duration::from_millis(200)),
            ),
            (
                fail(503, true, None),
                1,
                rem,
                0.0,
                Some(Duration::from_millis(100)),
            ),
            (
                fail(500, true, None),
                3,
                rem,
                1.0,
                Some(Duration::from_millis(800)),
            ),
            (
                fail(500, true, None),
                20,
                rem,
                1.0,
                Some(Duration::from_secs(5)),
            ),
            (fail(429, true, Some(40)), 2, rem, 1.0, None),
        ];
        for (failure, attempt, remaining, j, want) in cases {
            let got = next_step(failure.clone(), attempt, remaining, t, j);
            match (want, got) {
                (Some(w), Next::Wait(d)) => assert_eq!(d, w, "{failure:?}"),
                (None, Next::GiveUp(_)) => {}
                (want, got) => panic!("{failure:?} attempt {attempt}: want {want:?}, got {got:?}"),
            }
        }
        match next_step(fail(429, true, Some(40)), 2, rem, t, 0.0) {
            Next::GiveUp(c) => assert_eq!(
                c.to_string(),
                "gave up after 2 attempt(s): the timeout of 60s ran out (the server asked to retry after 40s); last answer: HTTP 429"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            parse_retry_after(Some("3"), None),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after(Some("3"), Some("1500")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"), None),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after(Some("soon"), None), None);
        assert_eq!(parse_retry_after(None, None), None);
    }
}
