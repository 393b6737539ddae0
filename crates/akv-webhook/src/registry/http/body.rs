//! Bounded bodies: an answer is read up to its declared descriptor size or a fixed cap,
//! whichever is smaller, and a larger one fails ("too large"); error and token answers up
//! to 64 KiB. Buffers come out of one budget shared by all lookups.

use std::sync::Arc;

use reqwest13::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{classify, error_code, HttpError};

/// Largest manifest or image index read.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Largest image config read (real ones are a few KiB; long histories, ~100 KiB).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// Largest error or token answer read.
pub(super) const MAX_SMALL_BYTES: u64 = 64 * 1024;
/// Body buffers of all lookups together, in KiB (each body at most its cap).
pub(super) const MAX_BUFFERED_KIB: usize = 8 * 1024;

/// How much of a body to read.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub what: &'static str,
    /// The descriptor's size, when one declares it: the body must be exactly this long.
    pub declared: Option<u64>,
    pub cap: u64,
}

/// A body read into memory, holding its share of the buffer budget until dropped.
pub struct Body {
    data: Vec<u8>,
    _budget: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

/// KiB of `bytes`, rounded up, as semaphore permits.
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)
}

/// Reads a body up to `limit`: too large past the cap or the declared size, invalid when
/// shorter than declared. Every byte of buffer capacity is first taken from `budget`,
/// shared by all lookups, so that many large answers at once wait rather than add up.
pub(super) async fn read_body(
    mut response: Response,
    limit: Limit,
    budget: &Arc<Semaphore>,
) -> Result<Body, HttpError> {
    let (max, declared) = match limit.declared {
        Some(size) if size <= limit.cap => (size, true),
        Some(_) => {
            return Err(HttpError::TooLarge {
                what: limit.what,
                limit: limit.cap,
                declared: false,
            })
        }
        None => (limit.cap, false),
    };
    let too_large = HttpError::TooLarge {
        what: limit.what,
        limit: max,
        declared,
    };
    if response.content_length().is_some_and(|len| len > max) {
        return Err(too_large);
    }
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut out: Vec<u8> = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
        let needed = out.len() + chunk.len();
        if needed > max {
            return Err(too_large);
        }
        if needed > out.capacity() {
            let target = needed
                .max(out.capacity().saturating_mul(2))
                .max(16 * 1024)
                .min(max);
            let have = held.as_ref().map_or(0, |p| p.num_permits());
            let more = kib(target).saturating_sub(u32::try_from(have).unwrap_or(u32::MAX));
            if more > 0 {
                let permit = Arc::clone(budget)
                    .acquire_many_owned(more)
                    .await
                    .map_err(|_| HttpError::Connect("the webhook is stopping".to_string()))?;
                match held.as_mut() {
                    Some(h) => h.merge(permit),
                    None => held = Some(permit),
                }
            }
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk);
    }
    if declared && out.len() != max {
        return Err(HttpError::Invalid(format!(
            "the {} the registry sent is {} bytes, not the {max} its descriptor declares",
            limit.what,
            out.len()
        )));
    }
    Ok(Body {
        data: out,
        _budget: held,
    })
}

/// A non-success answer, classified; only the OCI error code of its body is kept.
pub(super) async fn status_error(response: Response, budget: &Arc<Semaphore>) -> HttpError {
    let status = response.status().as_u16();
    let limit = Limit {
        what: "error answer",
        declared: None,
        cap: MAX_SMALL_BYTES,
    };
    let code = match read_body(response, limit, budget).await {
        Ok(body) => error_code(&body),
        Err(_) => None,
    };
    match status {
        401 | 403 => HttpError::Unauthorized { status, code },
        404 => HttpError::NotFound { code },
        _ => HttpError::Status { status, code },
    }
}
