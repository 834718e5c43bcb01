//! `baton-worker`: claims tasks from the configured queues and runs their handlers until SIGTERM.
use clap::Parser;

/// Run tasks from Baton queues with the handlers of the config file.
#[derive(Parser)]
#[command(name = "baton-worker", version)]
struct Args {
    /// Config file (default: $BATON_CONFIG, else config/baton.toml when present).
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    baton::process::run_service("baton-worker", args.config, baton::worker::service::run).await;
}
