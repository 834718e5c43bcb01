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
    baton::process::init_logging();
    let args = Args::parse();
    let result = match baton::process::load_config(args.config) {
        Ok(config) => baton::worker::service::run(config, baton::process::shutdown_signal()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("baton-worker: {e}");
        std::process::exit(1);
    }
}
