//! Periodic (cron) tasks.
//!
//! Every scheduler replica computes the same occurrences from the same expressions and enqueues
//! each one with the idempotency key `cron:<entry>:<unix seconds of the occurrence>`; the
//! enqueue script accepts the first and answers the others with the same task id. So any number
//! of schedulers may run: each occurrence becomes exactly one task (clocks only need to agree
//! within the idempotency window), and no leader election is needed.

use crate::client::Client;
use crate::config::CronEntry;
use crate::task::TaskSpec;
use chrono::{DateTime, Utc};
use croner::Cron;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long an occurrence's idempotency key is kept: replicas whose clocks differ by less than
/// this never fire the same occurrence twice.
const OCCURRENCE_KEY_TTL: Duration = Duration::from_secs(86400);
/// Most occurrences of one entry fired per tick (after a long pause, older ones are skipped).
const MAX_CATCH_UP: usize = 100;

/// Parse a cron expression (5 fields, or 6 with seconds first), UTC.
pub fn parse(expr: &str) -> Result<Cron, String> {
    Cron::from_str(expr).map_err(|e| {
        format!("{expr:?} is not a cron expression ({e}) — use 5 fields \"min hour day month weekday\" or 6 with seconds first, e.g. \"0 3 * * *\"")
    })
}

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

/// Occurrences in (after, until], whole seconds, at most MAX_CATCH_UP. (croner's iterator
/// keeps sub-second parts and skips occurrences, so the search steps from whole seconds.)
fn occurrences(cron: &Cron, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let Some(mut t) = DateTime::from_timestamp(after.timestamp(), 0) else {
        return out;
    };
    while out.len() < MAX_CATCH_UP {
        match cron.find_next_occurrence(&t, false) {
            Ok(next) if next <= until => {
                out.push(next);
                t = next;
            }
            _ => break,
        }
    }
    out
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
                tracing::warn!(entry = %name, error = %e, "cron enqueue failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return tracing::error!(entry = %name, at = %at, error = %e, "cron occurrence not fired")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_five_and_six_fields_and_refuses_garbage() {
        assert!(parse("0 3 * * *").is_ok());
        assert!(parse("*/5 * * * * *").is_ok());
        let e = parse("every day").unwrap_err();
        assert!(e.contains("5 fields"), "{e}");
    }

    #[test]
    fn occurrences_are_the_same_for_every_replica() {
        let c = parse("*/10 * * * * *").unwrap();
        let start = DateTime::from_timestamp(1_700_000_003, 250_000_000).unwrap();
        let until = DateTime::from_timestamp(1_700_000_030, 0).unwrap();
        let got: Vec<i64> = occurrences(&c, start, until)
            .iter()
            .map(|t| t.timestamp())
            .collect();
        assert_eq!(got, vec![1_700_000_010, 1_700_000_020, 1_700_000_030]);
        let every = parse("* * * * * *").unwrap();
        let got: Vec<i64> = occurrences(&every, start, until)
            .iter()
            .map(|t| t.timestamp())
            .collect();
        assert_eq!(
            got,
            (1_700_000_004..=1_700_000_030).collect::<Vec<_>>(),
            "no second skipped"
        );
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
