//! akv-webhook: parse flags, then run (logging, serving until SIGTERM/SIGINT), or check
//! manifests offline (`akv-webhook check`).

use std::process::ExitCode;

use clap::Parser as _;

use akv_webhook::args::Args;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    Ok(Args::parse().run().await?)
}
