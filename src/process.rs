//! What the binaries share: logging setup, the shutdown signal, config discovery.

use crate::client::Client;
use crate::config::Config;
use crate::error::Result;
use crate::retry::Backoff;
use std::path::PathBuf;
use std::time::Duration;

/// Log to stderr; `BATON_LOG` sets the filter (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// For the CLI: only warnings and errors unless `BATON_LOG` says otherwise.
pub fn init_logging_quiet() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves at the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{name} received: shutting down");
}

/// Connect a long-running service (`baton-worker`, `baton-scheduler`). While Redis cannot be
/// reached — not started yet, restarting, loading its data, failing over — wait and retry
/// (0.2 s doubling up to 5 s), logging each failure with its fix, as a service started before
/// its database should; any other error (wrong password, TLS, a refused script) is returned at
/// once.
pub async fn connect_waiting(config: &Config) -> Result<Client> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match Client::connect(config.clone()).await {
            Err(e) if e.is_transient() => {
                let d = backoff.next_delay();
                tracing::warn!(retry_in = ?d, "waiting for Redis: {e}");
                tokio::time::sleep(d).await;
            }
            r => return r,
        }
    }
}

/// The body of `baton-worker` and `baton-scheduler`: logging, config, run until a signal, exit 1
/// with the error on failure.
pub async fn run_service<F, Fut>(name: &str, config_flag: Option<PathBuf>, service: F)
where
    F: FnOnce(Config, std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    init_logging();
    let result = match load_config(config_flag) {
        Ok(config) => service(config, Box::pin(shutdown_signal())).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}

/// The config file: `--config`, else `BATON_CONFIG`, else `config/baton.toml` when it exists,
/// else built-in defaults (with environment overrides).
pub fn load_config(flag: Option<PathBuf>) -> Result<Config> {
    let path = flag.or_else(|| std::env::var_os("BATON_CONFIG").map(PathBuf::from));
    match path {
        Some(p) => Config::load(p),
        None if std::path::Path::new("config/baton.toml").exists() => Config::load("config/baton.toml"),
        None => Config::from_env(),
    }
}
