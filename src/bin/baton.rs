//! `baton`: the command line for people and scripts (see `baton --help`).
use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `baton ... | head` must end quietly, not panic on a closed pipe
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    baton::process::init_logging_quiet();
    let cli = baton::cli::Cli::parse();
    std::process::exit(baton::cli::run(cli).await);
}
