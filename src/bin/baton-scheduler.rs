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
    let args = Args::parse();
    baton::process::run_service("baton-scheduler", args.config, baton::scheduler::service::run).await;
}
