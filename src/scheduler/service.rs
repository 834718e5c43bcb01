//! The `baton-scheduler` process: the maintenance loops for every configured queue plus the
//! cron entries. Any number of replicas may run (see `cron` for why firing stays exact).

use super::cron::{self, CronStats};
use super::observe::{self, History};
use super::web::{self, Web};
use crate::client::Queue;
use crate::config::Config;
use crate::error::Result;
use crate::maintenance::Maintenance;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often cron entries are checked (occurrences fire within this of their time).
const CRON_TICK: Duration = Duration::from_millis(250);

/// Serve the dashboard and metrics on `addr`, with the history sampler and the events followers
/// that feed them, until `stop`.
async fn serve_http(
    addr: &str,
    config: &Config,
    queues: &[Queue],
    stop: &CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = crate::metrics::bind(addr, "scheduler.http").await?;
    let history = Arc::new(History::default());
    tokio::spawn(observe::sample(queues.to_vec(), history.clone(), stop.clone()));
    for q in queues {
        tokio::spawn(observe::follow(q.clone(), stop.clone()));
    }
    let token = config.scheduler.http_token.clone();
    if token.is_none() {
        tracing::info!(
            "dashboard actions are off: set [scheduler] http_token to enable requeue, purge and pause"
        );
    }
    let web = Web {
        queues: queues.iter().map(|q| (q.name().to_string(), q.clone())).collect(),
        token,
        history,
        prometheus: crate::metrics::install(),
    };
    tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "dashboard at / and metrics at /metrics");
    Ok(crate::metrics::spawn_server(
        listener,
        web::router(web),
        stop.clone(),
    ))
}

/// Run until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
    tokio::pin!(shutdown);
    let client = tokio::select! {
        c = crate::process::connect_waiting(&config) => c?,
        _ = &mut shutdown => return Ok(()), // stopped while waiting for Redis
    };
    let names = config.scheduler_queues();
    let queues = names
        .iter()
        .map(|q| client.queue(q))
        .collect::<Result<Vec<_>>>()?;
    for q in &queues {
        let _ = q.configure().await?; // warns if the queue was in another mode
    }
    let stop = CancellationToken::new();
    let http = match &config.scheduler.http {
        Some(addr) => Some(serve_http(addr, &config, &queues, &stop).await?),
        None => None,
    };
    let mut maintenance =
        tokio::spawn(Maintenance::new(queues, config.scheduler.clone()).run(stop.clone(), None));
    let entries: Vec<_> = config.scheduler.cron.clone().into_iter().collect();
    let n_cron = entries.len();
    let stats = Arc::new(CronStats::default());
    let cron = tokio::spawn(cron::run(client, entries, CRON_TICK, stop.clone(), stats));
    tracing::info!(queues = ?names, cron_entries = n_cron, "baton-scheduler running");
    // The maintenance loops end early only on a configuration error: stop everything then.
    let fatal = tokio::select! {
        _ = shutdown => None,
        r = &mut maintenance => r.ok().and_then(|r| r.err()),
    };
    stop.cancel();
    if fatal.is_none() {
        let _ = maintenance.await;
    }
    let _ = cron.await;
    if let Some(h) = http {
        let _ = h.await;
    }
    if let Some(e) = fatal {
        tracing::error!(error = %e, "baton-scheduler stopped by a configuration error");
        return Err(e);
    }
    tracing::info!("baton-scheduler stopped");
    Ok(())
}
