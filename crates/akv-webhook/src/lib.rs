//! akv-webhook: the admission side of akv-injector.
#![forbid(unsafe_code)]

pub mod admission;
pub mod args;
pub mod check;
pub mod inject;
pub mod metrics;
pub mod registry;
mod run;
pub mod server;
pub mod telemetry;
pub mod tls;
