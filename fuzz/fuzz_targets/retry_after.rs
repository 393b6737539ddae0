//! `Retry-After` parsing and the retry policy: never a panic, and a wait never passes
//! the remaining budget.
#![no_main]

use std::time::Duration;

use akv_env::keyvault::{next_step, parse_retry_after, Failure, Next};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    let retry_after = parse_retry_after(Some(a), (!b.is_empty()).then_some(b));
    let attempt = u32::from(data.first().copied().unwrap_or(1));
    let remaining = Duration::from_millis(u64::from(data.last().copied().unwrap_or(0)) * 100);
    let failure = Failure {
        retryable: true,
        retry_after,
        cause: akv_env::error::Cause::Transport("fuzz".to_string()),
    };
    if let Next::Wait(wait) = next_step(failure, attempt, remaining, remaining, 0.5) {
        assert!(wait < remaining, "{wait:?} >= {remaining:?}");
    }
});
