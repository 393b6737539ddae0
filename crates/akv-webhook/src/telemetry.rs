//! Logging: `tracing` to stderr, as text or JSON lines, filtered by `RUST_LOG` (default
//! `info`).

use std::io::IsTerminal;

use thiserror::Error;
use tracing_subscriber::filter::{FromEnvError, LevelFilter};
use tracing_subscriber::util::{SubscriberInitExt as _, TryInitError};
use tracing_subscriber::EnvFilter;

use crate::args::LogFormat;

#[derive(Debug, Error)]
pub enum TelemetryError {
    #[error("RUST_LOG is not a valid filter (e.g. info, akv_webhook=debug): {0}")]
    Filter(#[from] FromEnvError),
    #[error("cannot install the logger: {0}")]
    Init(#[from] TryInitError),
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .finish()
            .try_init()?,
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .try_init()?,
    }
    Ok(())
}
