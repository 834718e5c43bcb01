//! `baton`: the command line for people and scripts (see `baton --help`).
use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    baton::process::init_logging_quiet();
    let cli = baton::cli::Cli::parse();
    std::process::exit(baton::cli::run(cli).await);
}
