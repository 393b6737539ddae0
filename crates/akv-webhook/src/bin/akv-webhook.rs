//! akv-webhook: parse flags, then run (logging, serving until SIGTERM/SIGINT).

use clap::Parser as _;

use akv_webhook::args::Args;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Args::parse().run().await?;
    Ok(())
}
