//! Operator transitions and reads of a queue: cancel, the dead-letter set, pause, the worker
//! registry, counts, and the maintenance transitions (promote, reclaim, trim).

use super::{Promoted, Queue, Reclaimed, Trimmed, WorkerInfo, MAX_BATCH};
use crate::error::Result;
use crate::keys::Role;
use crate::ops::{self, DeadSelection};
use crate::task::{Counts, State};

impl Queue {
    /// Cancel unfinished tasks. Returns, per id, the state it was cancelled from (None: not
    /// cancellable — unknown, or already finished).
    pub async fn cancel(&self, ids: &[&str]) -> Result<Vec<Option<State>>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_BATCH) {
            let req = ops::cancel::Request {
                ttl: self.settings.dead_ttl,
                ids: chunk.iter().map(|s| s.to_string()).collect(),
            };
            out.extend(self.run(&req).await?.into_iter().map(|c| c.0));
        }
        Ok(out)
    }

    /// Move dead tasks back to pending with fresh attempts. Returns how many moved.
    pub async fn requeue_dead(&self, ids: &[&str]) -> Result<u64> {
        let mut moved = 0;
        for chunk in ids.chunks(MAX_BATCH) {
            let select = DeadSelection::Ids(chunk.iter().map(|s| s.to_string()).collect());
            moved += self.run(&ops::requeue::Request { select }).await?.0;
        }
        Ok(moved)
    }

    /// Move the oldest `limit` (1..=1000) dead tasks back to pending. Returns how many moved.
    pub async fn requeue_oldest_dead(&self, limit: usize) -> Result<u64> {
        let select = DeadSelection::Oldest(limit);
        Ok(self.run(&ops::requeue::Request { select }).await?.0)
    }

    /// Delete dead tasks now. Returns how many were deleted.
    pub async fn purge_dead(&self, ids: &[&str]) -> Result<u64> {
        let mut n = 0;
        for chunk in ids.chunks(MAX_BATCH) {
            let select = DeadSelection::Ids(chunk.iter().map(|s| s.to_string()).collect());
            n += self.run(&ops::purge::Request { select }).await?;
        }
        Ok(n)
    }

    /// Delete the oldest `limit` (1..=1000) dead tasks now. Returns how many were deleted.
    pub async fn purge_oldest_dead(&self, limit: usize) -> Result<u64> {
        let select = DeadSelection::Oldest(limit);
        self.run(&ops::purge::Request { select }).await
    }

    /// Set a group's weight under fair queueing (1..=10000), at run time: it applies from the
    /// group's next claim. Returns the weight it had.
    pub async fn set_group_weight(&self, group: &str, weight: u32) -> Result<u64> {
        Ok(self
            .change_group(group, ops::group_set::Change::Weight(weight))
            .await?
            .weight)
    }

    /// Change a group's settings (weight, own concurrency cap, or reset) at run time; returns
    /// what it had.
    pub async fn change_group(
        &self,
        group: &str,
        change: ops::group_set::Change,
    ) -> Result<ops::group_set::Before> {
        crate::keys::validate_name(group, "group")?;
        self.run(&ops::group_set::Request {
            group: group.into(),
            change,
        })
        .await
    }

    /// The queue's groups: those with pending tasks (fair queues), next served first, then those
    /// with a weight set; at most `limit` (1..=1000).
    pub async fn groups(&self, limit: usize) -> Result<Vec<crate::ops::groups::GroupInfo>> {
        self.run(&ops::groups::Request { limit }).await
    }

    /// Pause (true) or resume (false) claiming on this queue. Returns whether it was paused.
    pub async fn set_paused(&self, paused: bool) -> Result<bool> {
        self.run(&ops::pause::Request { paused }).await
    }

    /// Store the queue settings the scripts read from Redis (the events stream cap, priority
    /// aging, the rate limit and concurrency cap, fairness and the groups' default limits, the
    /// dispatch mode). The scheduler and workers run it at start; every process should share the
    /// same [queues]. Logs a warning when the queue was in another dispatch mode before: the
    /// processes' configs disagree, or a switch is rolling out. Returns the mode it had.
    pub async fn configure(&self) -> Result<Option<crate::task::DispatchMode>> {
        let req = ops::configure::Request {
            events_max_len: self.settings.events_max_len,
            dispatch: self.settings.dispatch,
            aging_ms: self.settings.aging.as_millis() as u64,
            rate_interval_us: self.settings.rate.map_or(0, |r| r.interval_us()),
            burst: self.settings.burst_or_default(),
            concurrency: self.settings.concurrency,
            fairness: self.settings.fairness,
            group_concurrency: self.settings.group_concurrency,
            group_rate_interval_us: self.settings.group_rate.map_or(0, |r| r.interval_us()),
            group_burst: self.settings.group_burst.unwrap_or(1),
        };
        let before = self.run(&req).await?.0;
        if let Some(b) = before.filter(|b| *b != req.dispatch) {
            tracing::warn!(
                queue = self.name(),
                "queue was in {} mode; this process's config (queues.{}.dispatch) sets {} — every process of a queue should use the same mode (a rolling switch is safe: take claims in pull mode, dispatch skips pull workers)",
                b.as_str(),
                self.name(),
                req.dispatch.as_str()
            );
        }
        Ok(before)
    }

    /// Add (or refresh) a worker in the registry with its JSON description.
    pub async fn register(&self, worker: &str, info: &serde_json::Value) -> Result<()> {
        let req = ops::register::Request {
            worker: worker.into(),
            info: info.clone(),
        };
        self.run(&req).await
    }

    /// Remove a worker from the registry (after its last lease ended).
    pub async fn deregister(&self, worker: &str) -> Result<bool> {
        let req = ops::deregister::Request {
            worker: worker.into(),
            mode: ops::deregister::Leave::Registry,
        };
        Ok(self.run(&req).await? == 1)
    }

    /// Shutdown begins: stop receiving push assignments and hand back the assigned tasks the
    /// worker has not taken (not counted as attempts). Returns how many were handed back.
    pub async fn leave(&self, worker: &str) -> Result<u64> {
        let req = ops::deregister::Request {
            worker: worker.into(),
            mode: ops::deregister::Leave::Assignments,
        };
        let mut total = 0;
        loop {
            let n = self.run(&req).await?;
            total += n;
            if n < MAX_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Registered workers, most recently seen first (at most `limit`, 1..=1000).
    pub async fn workers(&self, limit: usize) -> Result<Vec<WorkerInfo>> {
        self.run(&ops::workers::Request { limit }).await
    }

    /// Ids in the dead-letter set, oldest first (at most `limit`).
    pub async fn dead_ids(&self, limit: usize) -> Result<Vec<String>> {
        self.conn
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.keys.key(Role::Dead))
                    .arg(0)
                    .arg(limit as i64 - 1),
            )
            .await
    }

    /// Task counts by state.
    pub async fn counts(&self) -> Result<Counts> {
        self.run(&ops::counts::Request).await
    }

    /// Move due delayed tasks to pending (at most `limit`).
    pub async fn promote(&self, limit: usize) -> Result<Promoted> {
        self.run(&ops::promote::Request { limit }).await
    }

    /// Take back expired leases (at most `limit`), and drop workers silent for three lease
    /// durations from the registry.
    pub async fn reclaim(&self, limit: usize) -> Result<Reclaimed> {
        let req = ops::reclaim::Request {
            limit,
            dead_ttl: self.settings.dead_ttl,
            worker_ttl: self.settings.lease * 3,
        };
        self.run(&req).await
    }

    /// Drop finished tasks past their retention (at most `limit` per set).
    pub async fn trim(&self, limit: usize) -> Result<Trimmed> {
        self.run(&ops::trim::Request { limit }).await
    }
}
