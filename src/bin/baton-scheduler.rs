//! `baton-scheduler`: promotes delayed tasks, reclaims expired leases and dead workers, trims
//! finished tasks, fires cron entries — until SIGTERM. Any number of replicas may run.
use clap::Parser;

/// Run Baton's maintenance loops and cron entries for the queues of the config file.
#[derive(Parser)]
#[command(name = "baton-scheduler", version)]
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
        Ok(config) => baton::scheduler::service::run(config, baton::process::shutdown_signal()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("baton-scheduler: {e}");
        std::process::exit(1);
    }
}
