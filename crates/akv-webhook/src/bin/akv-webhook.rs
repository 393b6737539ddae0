//! akv-webhook: parse flags, set up logging, serve until SIGTERM/SIGINT.

use anyhow::Context as _;
use clap::Parser as _;

use akv_webhook::{args::Args, server, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.log_format).context("cannot set up logging")?;
    server::run(args).await?;
    Ok(())
}
