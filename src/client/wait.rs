//! Waiting for tasks to finish: woken by the scripts' finish notifications (the queue's `fin`
//! channel, on a connection of its own), with slow re-checks as a safety net.

use super::Queue;
use crate::error::{Error, Result};
use crate::subscription::{Signal, Subscription};
use crate::task::{State, Task};
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The outcome of waiting for a task.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Completed with this result (empty when the task kept no result).
    Done(Vec<u8>),
    /// Moved to the dead-letter set; the last error.
    Dead(String),
    /// Cancelled.
    Cancelled,
}

/// How a group of waited-for tasks ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WaitSummary {
    pub done: u64,
    pub dead: u64,
    pub cancelled: u64,
    /// Unknown, or dropped after their retention before they were seen finished.
    pub missing: u64,
    /// Still not finished when the wait ended.
    pub unfinished: u64,
}

impl Queue {
    /// A subscription to this queue's finish notifications (comma-joined ids).
    async fn finished(&self) -> Result<Subscription> {
        Subscription::connect(self.conn.clone(), &[self.keys.fin_channel()], self.name()).await
    }

    /// Wait until the task is done, dead or cancelled, up to `timeout`.
    /// Woken by the scripts' finish notifications, with a slow poll as a safety net.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Outcome> {
        let started = Instant::now();
        let mut sub = self.finished().await?;
        let never = CancellationToken::new();
        loop {
            // Checked after subscribing, so a finish between the check and the wait is not missed.
            let state = match self.get(id).await? {
                None => {
                    return Err(Error::NotFound {
                        queue: self.name().into(),
                        id: id.into(),
                    })
                }
                Some(t) => match t.state {
                    State::Done => return Ok(Outcome::Done(t.result.unwrap_or_default())),
                    State::Dead => {
                        return Ok(Outcome::Dead(t.last_error.map(|f| f.message).unwrap_or_default()))
                    }
                    State::Cancelled => return Ok(Outcome::Cancelled),
                    s => s,
                },
            };
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(Error::WaitTimeout {
                    queue: self.name().into(),
                    id: id.into(),
                    waited: timeout,
                    state: state.to_string(),
                });
            }
            let deadline = tokio::time::Instant::now() + left.min(Duration::from_secs(1));
            // Until a notification names the task, a resubscription (check again) or the nap ends.
            while let Ok(Some(Signal::Message(msg))) =
                tokio::time::timeout_at(deadline, sub.next(&never)).await
            {
                if msg
                    .get_payload_bytes()
                    .split(|&b| b == b',')
                    .any(|x| x == id.as_bytes())
                {
                    break;
                }
            }
        }
    }

    /// Wait until every task in `ids` is done, dead or cancelled, or `timeout` passes; calls
    /// `progress(finished)` as tasks finish. Woken by finish notifications, with a re-check of
    /// the unfinished ones every 2 s as a safety net.
    pub async fn wait_many(
        &self,
        ids: &[String],
        timeout: Duration,
        mut progress: impl FnMut(u64),
    ) -> Result<WaitSummary> {
        let started = Instant::now();
        let mut sub = self.finished().await?;
        let never = CancellationToken::new();
        let mut open: std::collections::HashSet<String> = ids.iter().cloned().collect();
        let mut summary = WaitSummary::default();
        let mut check: Vec<String> = open.iter().cloned().collect();
        loop {
            let states: Vec<(String, Result<Option<Task>>)> = futures_util::stream::iter(check.drain(..))
                .map(|id| async move {
                    let t = self.get(&id).await;
                    (id, t)
                })
                .buffer_unordered(64)
                .collect()
                .await;
            for (id, t) in states {
                let state = match t? {
                    None => None,
                    Some(t) if t.state.is_final() => Some(t.state),
                    Some(_) => continue,
                };
                if open.remove(&id) {
                    match state {
                        Some(State::Done) => summary.done += 1,
                        Some(State::Dead) => summary.dead += 1,
                        Some(State::Cancelled) => summary.cancelled += 1,
                        _ => summary.missing += 1,
                    }
                    progress(ids.len() as u64 - open.len() as u64);
                }
            }
            if open.is_empty() || started.elapsed() >= timeout {
                summary.unfinished = open.len() as u64;
                return Ok(summary);
            }
            let until =
                tokio::time::Instant::now() + (timeout - started.elapsed()).min(Duration::from_secs(2));
            // Collect finished ids until the safety-net re-check is due or a batch is ready; after a
            // resubscription everything open is checked again.
            while let Ok(Some(signal)) = tokio::time::timeout_at(until, sub.next(&never)).await {
                let Signal::Message(msg) = signal else {
                    check = open.iter().cloned().collect();
                    break;
                };
                for id in msg.get_payload_bytes().split(|&b| b == b',') {
                    if let Ok(id) = std::str::from_utf8(id) {
                        if open.contains(id) {
                            check.push(id.to_string());
                        }
                    }
                }
                if check.len() >= 256 {
                    break;
                }
            }
            if check.is_empty() {
                check = open.iter().cloned().collect(); // safety-net re-check
            }
        }
    }
}
