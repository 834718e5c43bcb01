//! The `baton-scheduler` process: the maintenance loops for every configured queue plus the
//! cron entries. Any number of replicas may run (see `cron` for why firing stays exact).

use super::cron::{self, CronStats};
use super::Maintenance;
use crate::client::Client;
use crate::config::Config;
use crate::error::Result;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often cron entries are checked (occurrences fire within this of their time).
const CRON_TICK: Duration = Duration::from_millis(250);

/// Run until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
    let client = Client::connect(config.clone()).await?;
    let names = config.scheduler_queues();
    let queues = names
        .iter()
        .map(|q| client.queue(q))
        .collect::<Result<Vec<_>>>()?;
    let stop = CancellationToken::new();
    let maintenance =
        tokio::spawn(Maintenance::new(queues, config.scheduler.clone()).run(stop.clone(), None));
    let entries: Vec<_> = config.scheduler.cron.clone().into_iter().collect();
    let n_cron = entries.len();
    let stats = Arc::new(CronStats::default());
    let cron = tokio::spawn(cron::run(client, entries, CRON_TICK, stop.clone(), stats));
    tracing::info!(queues = ?names, cron_entries = n_cron, "baton-scheduler running");
    shutdown.await;
    stop.cancel();
    let _ = maintenance.await;
    let _ = cron.await;
    tracing::info!("baton-scheduler stopped");
    Ok(())
}
