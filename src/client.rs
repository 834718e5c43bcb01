//! The producer API: a [`Client`] (connection + config) and a [`Queue`] facade that fills each
//! script's typed request (`crate::ops`) from the queue's settings and runs it.
//!
//! The worker runtime and the maintenance loops call the same facade, so each script has one
//! Rust call path: `Queue::<method>` → `ops::<script>::Request` → `lua/<script>.lua`.

use crate::config::{Config, QueueConfig};
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::keys::{QueueKeys, Role};
use crate::ops::{self, DeadSelection, LeaseRef, Op};
use crate::task::{Counts, State, Task, TaskSpec};
use crate::subscription::{Signal, Subscription};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::ops::claim::Claimed;
pub use crate::ops::complete::Completed;
pub use crate::ops::dispatch::Dispatched;
pub use crate::ops::enqueue::Enqueued;
pub use crate::ops::fail::{FailMode, FailStatus};
pub use crate::ops::heartbeat::{Heartbeat, LeaseStatus};
pub use crate::ops::promote::Promoted;
pub use crate::ops::reclaim::Reclaimed;
pub use crate::ops::trim::Trimmed;
pub use crate::ops::workers::WorkerInfo;

/// A connection to Baton's Redis plus the configuration; cheap to clone.
#[derive(Clone)]
pub struct Client {
    conn: Conn,
    config: Arc<Config>,
}

impl Client {
    /// Connect to the Redis named in `config.redis` and load the scripts.
    pub async fn connect(config: Config) -> Result<Client> {
        config.validate()?;
        let conn = Conn::connect(&config.redis).await?;
        Ok(Client {
            conn,
            config: Arc::new(config),
        })
    }

    /// A handle on one queue, with its configured settings.
    pub fn queue(&self, name: &str) -> Result<Queue> {
        let keys = QueueKeys::new(&self.config.redis.prefix, name)?;
        Ok(Queue {
            conn: self.conn.clone(),
            keys: Arc::new(keys),
            settings: Arc::new(self.config.queue(name)),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The underlying connection.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }
}

/// How a failure should be treated.
#[derive(Clone, Debug)]
pub struct FailReport {
    pub id: String,
    pub token: String,
    pub error: String,
    /// False: dead now, whatever attempts are left.
    pub retry: bool,
}

impl FailReport {
    fn as_failure(&self) -> ops::fail::Failure<'_> {
        ops::fail::Failure {
            id: &self.id,
            token: &self.token,
            error: &self.error,
            mode: if self.retry { FailMode::retry() } else { FailMode::Final },
        }
    }
}

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

impl Claimed {
    /// The proof of this claim's lease.
    pub fn lease(&self) -> LeaseRef {
        LeaseRef::new(&self.id, &self.token)
    }

    /// This attempt's success with `result`, for a batched `complete`.
    pub fn completion<'a>(&'a self, result: &'a [u8]) -> ops::complete::Completion<'a> {
        ops::complete::Completion {
            id: &self.id,
            token: &self.token,
            result_ttl: self.record.result_ttl,
            result,
        }
    }
}

/// One queue: its keys, its settings, and every transition on it.
#[derive(Clone)]
pub struct Queue {
    conn: Conn,
    keys: Arc<QueueKeys>,
    settings: Arc<QueueConfig>,
}

/// Most items one script call takes (ids, leases, tasks): the scripts' batch bound.
const MAX_BATCH: usize = ops::bounds::claim::N.max as usize;

impl Queue {
    /// The queue's name.
    pub fn name(&self) -> &str {
        self.keys.queue()
    }
    /// The queue's keys.
    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }
    /// The queue's settings.
    pub fn settings(&self) -> &QueueConfig {
        &self.settings
    }
    /// The connection.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }
    /// Same queue, other settings (tests, tools).
    pub fn with_settings(&self, settings: QueueConfig) -> Queue {
        Queue {
            conn: self.conn.clone(),
            keys: self.keys.clone(),
            settings: Arc::new(settings),
        }
    }

    /// Run one script request on this queue and decode its reply.
    pub async fn run<O: Op>(&self, op: &O) -> Result<O::Reply> {
        let v = self.conn.eval(&op.call(&self.keys), self.name()).await?;
        self.decode::<O>(v)
    }

    /// Decode a reply of `O`'s script (a pipelined call's answer).
    pub fn decode<O: Op>(&self, v: redis::Value) -> Result<O::Reply> {
        <O::Reply as redis::FromRedisValue>::from_redis_value(v).map_err(|e| {
            Error::Protocol(format!(
                "{} on queue {} replied unexpectedly: {e}",
                O::SCRIPT.file_stem(),
                self.name()
            ))
        })
    }

    // ---- producer side ----

    /// Enqueue one task.
    pub async fn enqueue(&self, spec: TaskSpec) -> Result<Enqueued> {
        let mut v = self.enqueue_batch(vec![spec]).await?;
        Ok(v.remove(0))
    }

    /// Enqueue up to 1000 tasks atomically: all are stored or none (on any error).
    pub async fn enqueue_batch(&self, specs: Vec<TaskSpec>) -> Result<Vec<Enqueued>> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        if specs.len() > MAX_BATCH {
            return Err(Error::Invalid(format!(
                "enqueue_batch takes at most {MAX_BATCH} tasks, got {} — split the batch (each batch is atomic)",
                specs.len()
            )));
        }
        let s = &self.settings;
        let mut tasks = Vec::with_capacity(specs.len());
        for spec in specs {
            if let Some(k) = &spec.idempotency_key {
                if k.is_empty() || k.len() > 512 {
                    return Err(Error::Invalid("idempotency key must be 1-512 bytes".into()));
                }
            }
            if spec.payload.len() as u64 > s.max_payload {
                return Err(Error::PayloadTooLarge {
                    queue: self.name().into(),
                    detail: format!(
                        "payload of a {} task is {} bytes, over the limit of {} (queues.{}.max_payload): store large data elsewhere and enqueue a reference",
                        spec.kind,
                        spec.payload.len(),
                        s.max_payload,
                        self.name()
                    ),
                });
            }
            let b = spec.backoff.unwrap_or_else(|| s.backoff());
            let idempotency_ttl = spec.idempotency_ttl.unwrap_or(s.idempotency_ttl);
            tasks.push(ops::enqueue::NewTask {
                id: spec.id.unwrap_or_else(new_id),
                kind: spec.kind,
                payload: spec.payload,
                priority: spec.priority,
                delay: spec.delay,
                max_attempts: spec.max_attempts.unwrap_or(s.max_attempts),
                backoff: b.kind,
                backoff_base: b.base,
                backoff_cap: b.cap.max(b.base),
                jitter_pct: (b.jitter.clamp(0.0, 1.0) * 100.0).round() as u8,
                timeout: spec.timeout.unwrap_or(s.timeout),
                result_ttl: spec.result_ttl.unwrap_or(s.result_ttl),
                idempotency: spec.idempotency_key.map(|k| (k, idempotency_ttl)),
            });
        }
        self.run(&ops::enqueue::Request {
            max_payload: s.max_payload,
            tasks,
        })
        .await
    }

    /// Everything known about a task, or None if unknown or past its retention.
    pub async fn get(&self, id: &str) -> Result<Option<Task>> {
        let found = self.run(&ops::get::Request { id: id.into() }).await?;
        found
            .0
            .map(|s| s.into_task(id, self.name()))
            .transpose()
            .map_err(|e| Error::Protocol(format!("get on queue {}: {e}", self.name())))
    }

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
            while let Ok(Some(Signal::Message(msg))) = tokio::time::timeout_at(deadline, sub.next(&never)).await {
                if msg.get_payload_bytes().split(|&b| b == b',').any(|x| x == id.as_bytes()) {
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

    /// Pause (true) or resume (false) claiming on this queue. Returns whether it was paused.
    pub async fn set_paused(&self, paused: bool) -> Result<bool> {
        self.run(&ops::pause::Request { paused }).await
    }

    /// Store the queue settings the scripts read from Redis (the events stream cap). The
    /// scheduler and workers run it at start; every process should share the same [queues].
    pub async fn configure(&self) -> Result<()> {
        let events_max_len = self.settings.events_max_len;
        self.run(&ops::configure::Request { events_max_len }).await
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

    // ---- worker side ----

    /// Claim up to `n` (1..=1000) pending tasks under a lease of the queue's lease duration.
    pub async fn claim(&self, worker: &str, n: usize) -> Result<Vec<Claimed>> {
        self.run(&self.claim_request(worker, n)).await
    }

    /// The claim request a worker sends (benchmarks pipeline it).
    pub fn claim_request(&self, worker: &str, n: usize) -> ops::claim::Request {
        ops::claim::Request {
            worker: worker.into(),
            n,
            lease: self.settings.lease,
        }
    }

    /// Mark `worker` alive and renew the leases it holds; one status per lease.
    pub async fn heartbeat(&self, worker: &str, leases: &[LeaseRef]) -> Result<Heartbeat> {
        let mut out = Heartbeat {
            registered: true,
            statuses: Vec::with_capacity(leases.len()),
        };
        // with no lease it is still sent: it is also the worker's liveness in the registry
        let mut chunks: Vec<&[LeaseRef]> = leases.chunks(MAX_BATCH).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            let req = ops::heartbeat::Request {
                worker: worker.into(),
                lease: self.settings.lease,
                leases: chunk.to_vec(),
            };
            let hb = self.run(&req).await?;
            out.registered &= hb.registered;
            out.statuses.extend(hb.statuses);
        }
        Ok(out)
    }

    /// Complete a claimed task; `Error::StaleLease` if its lease is not held any more.
    pub async fn complete(&self, worker: &str, task: &Claimed, result: &[u8]) -> Result<()> {
        let req = ops::complete::Request {
            worker,
            busy: Duration::ZERO,
            items: vec![task.completion(result)],
        };
        match self.run(&req).await?.first() {
            Some(Completed::Done) => Ok(()),
            _ => Err(Error::StaleLease {
                queue: self.name().into(),
                id: task.id.clone(),
            }),
        }
    }

    /// Report one failed attempt.
    pub async fn fail(&self, worker: &str, report: &FailReport) -> Result<FailStatus> {
        let req = self.fail_request(worker, Duration::ZERO, std::slice::from_ref(report));
        match self.run(&req).await?.first() {
            Some(FailStatus::Stale) | None => Err(Error::StaleLease {
                queue: self.name().into(),
                id: report.id.clone(),
            }),
            Some(s) => Ok(*s),
        }
    }

    /// One fail request for up to 1000 failed attempts that ran for `busy` in total.
    pub fn fail_request<'a>(
        &self,
        worker: &'a str,
        busy: Duration,
        reports: &'a [FailReport],
    ) -> ops::fail::Request<'a> {
        ops::fail::Request {
            worker,
            dead_ttl: self.settings.dead_ttl,
            busy,
            items: reports.iter().map(FailReport::as_failure).collect(),
        }
    }

    /// Give leases back without counting the attempt (shutdown). Returns how many were released.
    pub async fn release(&self, worker: &str, leases: &[LeaseRef]) -> Result<u64> {
        let mut n = 0;
        for chunk in leases.chunks(MAX_BATCH) {
            let req = ops::release::Request {
                worker: worker.into(),
                leases: chunk.to_vec(),
            };
            n += self
                .run(&req)
                .await?
                .iter()
                .filter(|r| **r == ops::release::Released::Released)
                .count() as u64;
        }
        Ok(n)
    }

    /// Push mode: take up to `n` (1..=1000) tasks dispatch assigned to `worker`.
    pub async fn take(&self, worker: &str, n: usize) -> Result<Vec<Claimed>> {
        let req = ops::take::Request {
            worker: worker.into(),
            n,
            lease: self.settings.lease,
        };
        self.run(&req).await
    }

    /// Push dispatch: assign up to `n` pending tasks to the live workers by `strategy`, with a
    /// random `seed` for the random strategy. Workers are live if they heartbeat within three
    /// heartbeat intervals.
    pub async fn dispatch(&self, strategy: crate::task::Strategy, n: usize, seed: u32) -> Result<Dispatched> {
        let req = ops::dispatch::Request {
            strategy,
            n,
            lease: self.settings.lease,
            alive: self.settings.heartbeat * 3,
            seed,
        };
        self.run(&req).await
    }

    // ---- maintenance ----

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

/// A new task id: a ULID (26 characters, sortable by creation time).
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}
