//! What the scheduler watches for its dashboard and metrics: a short history of each queue's
//! totals (throughput over time), and task wait/run-time histograms derived from the lifecycle
//! events stream. Runs only when `[scheduler] http` is set.

use crate::client::Queue;
use crate::events::{Event, Since};
use crate::retry::Backoff;
use futures_util::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Samples kept per queue (at SAMPLE_EVERY: six minutes).
const SAMPLES: usize = 180;
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// Tasks tracked at once for the histograms; beyond it the oldest tracking is dropped (those
/// tasks are not measured), so memory stays bounded whatever the backlog.
const TRACKED: usize = 200_000;

/// One sample of a queue's cumulative totals.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    pub t: u64,
    pub enqueued: u64,
    pub completed: u64,
}

/// Recent samples per queue.
#[derive(Default)]
pub struct History {
    by_queue: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl History {
    pub fn push(&self, queue: &str, s: Sample) {
        let mut m = self.by_queue.lock().expect("history lock");
        let v = m.entry(queue.to_string()).or_default();
        if v.len() == SAMPLES {
            v.pop_front();
        }
        v.push_back(s);
    }

    pub fn get(&self, queue: &str) -> Vec<Sample> {
        let m = self.by_queue.lock().expect("history lock");
        m.get(queue)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Sample every queue's totals until `stop`.
pub async fn sample(queues: Vec<Queue>, history: Arc<History>, stop: CancellationToken) {
    loop {
        for q in &queues {
            match q.counts().await {
                Ok(c) => history.push(
                    q.name(),
                    Sample {
                        t: now_ms(),
                        enqueued: c.enqueued_total,
                        completed: c.completed_total,
                    },
                ),
                Err(e) => tracing::debug!(queue = q.name(), error = %e, "history sample skipped"),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Wait and run-time histograms from one queue's events (Redis time on both ends): wait = from
/// the moment a task became runnable (enqueued, promoted, retried, requeued, released,
/// reclaimed) to its claim or dispatch; run = from claim or dispatch to completed or failed.
#[derive(Default)]
pub struct Timings {
    runnable: HashMap<String, u64>,
    started: HashMap<String, u64>,
}

impl Timings {
    pub fn apply(&mut self, e: &Event) {
        let q = e.queue.clone();
        match e.kind.as_str() {
            "enqueued" | "promoted" | "retried" | "requeued" | "released" | "reclaimed" => {
                for t in &e.tasks {
                    self.started.remove(&t.id);
                    bounded_insert(&mut self.runnable, &t.id, e.at_ms);
                }
            }
            "claimed" | "dispatched" => {
                for t in &e.tasks {
                    if let Some(since) = self.runnable.remove(&t.id) {
                        metrics::histogram!("baton_task_wait_seconds", "queue" => q.clone())
                            .record(e.at_ms.saturating_sub(since) as f64 / 1000.0);
                    }
                    // Push: dispatched then claimed (taken); the run starts at the first.
                    if !self.started.contains_key(&t.id) {
                        bounded_insert(&mut self.started, &t.id, e.at_ms);
                    }
                }
            }
            "completed" | "failed" => {
                let outcome = if e.kind == "completed" {
                    "completed"
                } else {
                    "failed"
                };
                for t in &e.tasks {
                    if let Some(since) = self.started.remove(&t.id) {
                        metrics::histogram!("baton_task_run_seconds", "queue" => q.clone(), "outcome" => outcome)
                            .record(e.at_ms.saturating_sub(since) as f64 / 1000.0);
                    }
                }
            }
            "cancelled" | "dead" | "purged" => {
                for t in &e.tasks {
                    self.runnable.remove(&t.id);
                    self.started.remove(&t.id);
                }
            }
            _ => {}
        }
    }
}

fn bounded_insert(m: &mut HashMap<String, u64>, id: &str, at: u64) {
    if m.len() >= TRACKED && !m.contains_key(id) {
        // Drop the oldest half: a backlog this large is measured again from its next events.
        let mut ts: Vec<u64> = m.values().copied().collect();
        let mid = ts.len() / 2;
        let cut = *ts.select_nth_unstable(mid).1;
        m.retain(|_, t| *t > cut);
    }
    m.insert(id.to_string(), at);
}

/// Follow a queue's events and feed the histograms until `stop`; restarts after errors.
pub async fn follow(queue: Queue, stop: CancellationToken) {
    let mut timings = Timings::default();
    let mut from = Since::Now;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    while !stop.is_cancelled() {
        let events = match queue.events(from.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(queue = queue.name(), error = %e, "events follower: retrying");
                if !backoff.wait(&stop).await {
                    return;
                }
                continue;
            }
        };
        let mut events = std::pin::pin!(events);
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                n = events.next() => n,
            };
            match next {
                Some(Ok(e)) => {
                    backoff.reset();
                    timings.apply(&e);
                    from = Since::After(e.id);
                }
                Some(Err(e)) => {
                    tracing::debug!(queue = queue.name(), error = %e, "events follower: reconnecting");
                    break;
                }
                None => break,
            }
        }
    }
}
