//! Periodic (cron) tasks.
//!
//! Every scheduler replica computes the same occurrences from the same expressions and enqueues
//! each one with the idempotency key `cron:<entry>:<unix seconds of the occurrence>`; the
//! enqueue script accepts the first and answers the others with the same task id. So any number
//! of schedulers may run: each occurrence becomes exactly one task (clocks only need to agree
//! within the idempotency window), and no leader election is needed.

use crate::client::Client;
use crate::config::CronEntry;
use crate::cron_expr::{occurrences, parse};
use crate::retry::Backoff;
use crate::task::TaskSpec;
use chrono::{DateTime, Utc};
use croner::Cron;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long an occurrence's idempotency key is kept: replicas whose clocks differ by less than
/// this never fire the same occurrence twice.
const OCCURRENCE_KEY_TTL: Duration = Duration::from_secs(86400);
/// Counters of a cron runner.
#[derive(Debug, Default)]
pub struct CronStats {
    /// Occurrences this replica enqueued first.
    pub fired: AtomicU64,
    /// Occurrences another replica (or an earlier run) had already enqueued.
    pub duplicates: AtomicU64,
}

/// Fire `entries` until `stop`. Checks every `tick`.
pub async fn run(
    client: Client,
    entries: Vec<(String, CronEntry)>,
    tick: Duration,
    stop: CancellationToken,
    stats: Arc<CronStats>,
) {
    let parsed: Vec<(String, CronEntry, Cron)> = entries
        .into_iter()
        .filter_map(|(name, e)| match parse(&e.schedule) {
            Ok(c) => Some((name, e, c)),
            Err(err) => {
                tracing::error!(entry = %name, "{err}");
                None
            }
        })
        .collect();
    if parsed.is_empty() {
        return;
    }
    // Look back two ticks at start: an occurrence a replica fired already is deduplicated.
    let mut last: DateTime<Utc> = Utc::now() - chrono::Duration::from_std(tick * 2).unwrap_or_default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.cancelled() => return,
        }
        let now = Utc::now();
        for (name, entry, cron) in &parsed {
            for at in occurrences(cron, last, now) {
                fire(&client, name, entry, at, &stats).await;
            }
        }
        last = now;
    }
}

async fn fire(client: &Client, name: &str, entry: &CronEntry, at: DateTime<Utc>, stats: &CronStats) {
    let queue = match client.queue(&entry.queue) {
        Ok(q) => q,
        Err(e) => return tracing::error!(entry = %name, error = %e, "cron entry has a bad queue"),
    };
    let spec = TaskSpec::new(&entry.kind, entry.payload.as_bytes().to_vec())
        .priority(entry.priority)
        .idempotency_key(format!("cron:{name}:{}", at.timestamp()))
        .idempotency_ttl(OCCURRENCE_KEY_TTL);
    // Retried on transient errors: the idempotency key makes a repeat harmless.
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
    for attempt in 0..3 {
        match queue.enqueue(spec.clone()).await {
            Ok(e) if e.created => {
                stats.fired.fetch_add(1, Ordering::Relaxed);
                tracing::info!(entry = %name, at = %at, task = %e.id, "cron fired");
                return;
            }
            Ok(e) => {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(entry = %name, at = %at, task = %e.id, "cron occurrence already fired by another scheduler");
                return;
            }
            Err(e) if e.is_transient() && attempt < 2 => {
                let d = backoff.next_delay();
                tracing::warn!(entry = %name, error = %e, "cron enqueue failed; retrying in {d:?}");
                tokio::time::sleep(d).await;
            }
            Err(e) => {
                return tracing::error!(entry = %name, at = %at, error = %e, "cron occurrence not fired")
            }
        }
    }
}

#[cfg(test)]
mod live {
    use super::*;

    #[tokio::test]
    async fn fires_every_second_entry() {
        let redis = crate::local_redis::LocalRedis::start().unwrap();
        let mut cfg = crate::Config::default();
        cfg.redis.url = redis.url();
        let client = Client::connect(cfg).await.unwrap();
        let entry = CronEntry {
            schedule: "* * * * * *".into(),
            queue: "q".into(),
            kind: "k".into(),
            payload: String::new(),
            priority: 0,
        };
        let stop = CancellationToken::new();
        let stats = Arc::new(CronStats::default());
        let h = tokio::spawn(run(
            client.clone(),
            vec![("e".into(), entry)],
            Duration::from_millis(100),
            stop.clone(),
            stats.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(2600)).await;
        stop.cancel();
        h.await.unwrap();
        let fired = stats.fired.load(Ordering::Relaxed);
        assert!((2..=5).contains(&fired), "fired {fired}");
    }
}
