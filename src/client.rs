//! The producer API, and the typed binding of every transition script.
//!
//! `Client` holds the connection and the config; `Queue` binds one queue's keys and settings and
//! turns each script's ARGV/reply contract into Rust types. The worker runtime and the
//! maintenance loops call the same methods, so each script has exactly one Rust call site.

use crate::config::{BackoffKind, Config, QueueConfig};
use crate::conn::{Call, Conn};
use crate::error::{Error, Result};
use crate::keys::QueueKeys;
use crate::scripts::ScriptName;
use crate::task::{split3, Counts, Failure, LeaseInfo, Record, State, Task, TaskSpec};
use futures_util::StreamExt;
use redis::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The answer to an enqueue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The task's id (for a duplicate: the id of the task that already existed).
    pub id: String,
    /// False when the idempotency key (or the id) was already taken: nothing new was enqueued.
    pub created: bool,
}

/// A task claimed by a worker, with its lease.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: String,
    pub token: String,
    pub attempt: u32,
    pub deadline_ms: u64,
    pub record: Record,
}

/// What happened to a heartbeated lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseStatus {
    Renewed,
    /// Expired and reclaimed, or the token is stale: stop the handler.
    Lost,
    /// The task was cancelled: stop the handler.
    Cancelled,
}

/// What happened to a reported failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailStatus {
    /// Another attempt is scheduled.
    Retrying,
    /// No attempts left (or a final failure): moved to the dead-letter set.
    Dead,
    /// The lease was not held any more: nothing changed.
    Stale,
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

/// Maintenance call results.
#[derive(Clone, Debug, Default)]
pub struct Reclaimed {
    pub requeued: u64,
    pub dead: u64,
    /// Time until the earliest remaining lease deadline, if any (by Redis' clock).
    pub next_in: Option<Duration>,
    /// The worker of each reclaimed lease.
    pub workers: Vec<String>,
    /// Workers dropped from the registry (silent for three lease durations).
    pub pruned_workers: Vec<String>,
}

/// What one dispatch call assigned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    pub assigned: u64,
    /// (worker, tasks assigned to it) for each worker that got some.
    pub per_worker: Vec<(String, u64)>,
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

/// The reply to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// False when the worker is not in the registry (pruned as dead): register again.
    pub registered: bool,
    /// One status per lease sent.
    pub statuses: Vec<LeaseStatus>,
}

/// A registered worker.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WorkerInfo {
    pub id: String,
    /// The JSON description the worker registered with.
    pub info: serde_json::Value,
    /// Time since its last heartbeat, ms.
    #[serde(rename = "last_seen_ms", serialize_with = "ser_ms")]
    pub last_seen: Duration,
    /// Leases it holds now.
    pub inflight: u64,
    /// Tasks assigned to it (push) or claimed by it (pull), in total.
    pub assigned: u64,
    /// Tasks it completed.
    pub completed: u64,
    /// Attempts that failed on it.
    pub failed: u64,
    /// Time its handlers ran, in total (ms).
    pub busy_ms: u64,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// One queue: its keys, its settings, and every transition on it.
#[derive(Clone)]
pub struct Queue {
    conn: Conn,
    keys: Arc<QueueKeys>,
    settings: Arc<QueueConfig>,
}

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

    fn call(&self, script: ScriptName, extra_keys: &[String]) -> Call {
        Call::new(script, self.keys.keyset(), extra_keys)
    }

    async fn eval(&self, call: &Call) -> Result<Value> {
        self.conn.eval(call, self.name()).await
    }

    fn bad_reply(&self, script: ScriptName, v: &Value) -> Error {
        Error::Protocol(format!(
            "{} on queue {} replied {:?}",
            script.file_stem(),
            self.name(),
            v
        ))
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
        if specs.len() > 1000 {
            return Err(Error::Invalid(format!(
                "enqueue_batch takes at most 1000 tasks, got {} — split the batch (each batch is atomic)",
                specs.len()
            )));
        }
        let s = &self.settings;
        let mut idem_keys = Vec::new();
        for spec in &specs {
            if let Some(k) = &spec.idempotency_key {
                if k.is_empty() || k.len() > 512 {
                    return Err(Error::Invalid("idempotency key must be 1-512 bytes".into()));
                }
                idem_keys.push(self.keys.idem(k));
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
        }
        let mut call = self.call(ScriptName::Enqueue, &idem_keys);
        call.named("max_payload", s.max_payload).named("n", specs.len());
        for spec in &specs {
            let b = spec
                .backoff
                .unwrap_or_else(|| crate::task::Backoff::from_queue(s));
            let id = spec.id.clone().unwrap_or_else(new_id);
            call.named("id", id)
                .named("kind", &spec.kind)
                .named("payload", &spec.payload[..])
                .named("priority", spec.priority)
                .named("delay_ms", ms(spec.delay))
                .named("max_attempts", spec.max_attempts.unwrap_or(s.max_attempts))
                .named(
                    "backoff",
                    match b.kind {
                        BackoffKind::Fixed => "f",
                        BackoffKind::Exponential => "e",
                    },
                )
                .named("backoff_base_ms", ms(b.base))
                .named("backoff_cap_ms", ms(b.cap.max(b.base)))
                .named("jitter_pct", (b.jitter.clamp(0.0, 1.0) * 100.0).round() as u64)
                .named("timeout_ms", ms(spec.timeout.unwrap_or(s.timeout)))
                .named("result_ttl_ms", ms(spec.result_ttl.unwrap_or(s.result_ttl)))
                .named(
                    "idem_ttl_ms",
                    if spec.idempotency_key.is_some() {
                        ms(spec.idempotency_ttl.unwrap_or(s.idempotency_ttl)).max(1)
                    } else {
                        0
                    },
                );
        }
        let v = self.eval(&call).await?;
        let items = array(&v).ok_or_else(|| self.bad_reply(ScriptName::Enqueue, &v))?;
        items
            .chunks(2)
            .map(|c| match c {
                [id, created] => Ok(Enqueued {
                    id: string(id).ok_or_else(|| self.bad_reply(ScriptName::Enqueue, &v))?,
                    created: int(created) == Some(1),
                }),
                _ => Err(self.bad_reply(ScriptName::Enqueue, &v)),
            })
            .collect()
    }

    /// Everything known about a task, or None if unknown or past its retention.
    pub async fn get(&self, id: &str) -> Result<Option<Task>> {
        let mut call = self.call(ScriptName::Get, &[]);
        call.named("id", id);
        let v = self.eval(&call).await?;
        let items = array(&v).ok_or_else(|| self.bad_reply(ScriptName::Get, &v))?;
        if items.is_empty() {
            return Ok(None);
        }
        let bad = || self.bad_reply(ScriptName::Get, &v);
        if items.len() != 7 {
            return Err(bad());
        }
        let state = string(&items[0]).and_then(|s| State::parse(&s)).ok_or_else(bad)?;
        let record = Record::parse(&bytes(&items[1]).ok_or_else(bad)?)?;
        let attempts = int(&items[2]).ok_or_else(bad)? as u32;
        let lease_raw = string(&items[3]).unwrap_or_default();
        let score = string(&items[4]).and_then(|s| s.parse::<f64>().ok());
        let lease = if lease_raw.is_empty() {
            None
        } else {
            let (t, w) = lease_raw.split_once('|').ok_or_else(bad)?;
            Some(LeaseInfo {
                token: t.into(),
                worker: w.into(),
                attempt: attempts,
                deadline_ms: score.unwrap_or(0.0) as u64,
            })
        };
        let err_raw = bytes(&items[5]).unwrap_or_default();
        let last_error = split3(&err_raw).map(|(a, at, m)| Failure {
            attempt: a as u32,
            at_ms: at,
            message: String::from_utf8_lossy(m).into_owned(),
        });
        let (result, finished_ms) = if state == State::Done {
            let expiry = score.unwrap_or(0.0) as u64;
            (
                Some(bytes(&items[6]).unwrap_or_default()),
                Some(expiry.saturating_sub(record.result_ttl.as_millis() as u64)),
            )
        } else {
            (None, None)
        };
        let due_or_expiry_ms = match state {
            State::Delayed | State::Done | State::Dead | State::Cancelled => score.map(|s| s as u64),
            _ => None,
        };
        Ok(Some(Task {
            id: id.into(),
            queue: self.name().into(),
            state,
            record,
            attempts,
            lease,
            due_or_expiry_ms,
            last_error,
            result,
            finished_ms,
        }))
    }

    /// A dedicated pub/sub connection subscribed to this queue's finish notifications.
    async fn subscribe_fin(&self) -> Result<redis::aio::PubSub> {
        let mut pubsub = self.conn.pubsub().await?;
        pubsub
            .subscribe(self.keys.fin_channel())
            .await
            .map_err(|e| self.conn.err(e, self.name()))?;
        Ok(pubsub)
    }

    /// Wait until the task is done, dead or cancelled, up to `timeout`.
    /// Woken by the scripts' finish notifications, with a slow poll as a safety net.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Outcome> {
        let started = Instant::now();
        let mut pubsub = self.subscribe_fin().await?;
        let mut messages = pubsub.on_message();
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
            let nap = left.min(Duration::from_secs(1));
            let deadline = tokio::time::Instant::now() + nap;
            loop {
                match tokio::time::timeout_at(deadline, messages.next()).await {
                    Err(_) => break, // poll again
                    Ok(None) => {
                        // pub/sub connection lost: fall back to polling
                        tokio::time::sleep_until(deadline).await;
                        break;
                    }
                    Ok(Some(msg)) => {
                        let ids: Vec<u8> = msg.get_payload_bytes().to_vec();
                        if ids.split(|&b| b == b',').any(|x| x == id.as_bytes()) {
                            break;
                        }
                    }
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
        let mut pubsub = self.subscribe_fin().await?;
        let mut messages = pubsub.on_message();
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
            loop {
                match tokio::time::timeout_at(until, messages.next()).await {
                    Ok(Some(msg)) => {
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
                    Ok(None) => {
                        tokio::time::sleep_until(until).await;
                        break;
                    }
                    Err(_) => break,
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
        for chunk in ids.chunks(1000) {
            let mut call = self.call(ScriptName::Cancel, &[]);
            call.named("ttl_ms", ms(self.settings.dead_ttl).max(1));
            for id in chunk {
                call.named("id", *id);
            }
            let v = self.eval(&call).await?;
            let items = array(&v).ok_or_else(|| self.bad_reply(ScriptName::Cancel, &v))?;
            out.extend(items.iter().map(|i| string(i).and_then(|s| State::parse(&s))));
        }
        Ok(out)
    }

    /// Move dead tasks back to pending with fresh attempts. Returns how many moved.
    pub async fn requeue_dead(&self, ids: &[&str]) -> Result<u64> {
        let mut moved = 0;
        for chunk in ids.chunks(1000) {
            let mut call = self.call(ScriptName::Requeue, &[]);
            call.named("mode", "ids");
            for id in chunk {
                call.named("target", *id);
            }
            moved += self.count_ones(ScriptName::Requeue, &call).await?;
        }
        Ok(moved)
    }

    /// Move the oldest `limit` (1..=1000) dead tasks back to pending. Returns how many moved.
    pub async fn requeue_oldest_dead(&self, limit: usize) -> Result<u64> {
        let mut call = self.call(ScriptName::Requeue, &[]);
        call.named("mode", "oldest").named("target", limit);
        self.count_ones(ScriptName::Requeue, &call).await
    }

    async fn count_ones(&self, script: ScriptName, call: &Call) -> Result<u64> {
        let v = self.eval(call).await?;
        let items = array(&v).ok_or_else(|| self.bad_reply(script, &v))?;
        Ok(items.iter().filter(|i| int(i) == Some(1)).count() as u64)
    }

    /// Delete dead tasks now. Returns how many were deleted.
    pub async fn purge_dead(&self, ids: &[&str]) -> Result<u64> {
        let mut n = 0;
        for chunk in ids.chunks(1000) {
            let mut call = self.call(ScriptName::Purge, &[]);
            call.named("mode", "ids");
            for id in chunk {
                call.named("target", *id);
            }
            let v = self.eval(&call).await?;
            n += int(&v).ok_or_else(|| self.bad_reply(ScriptName::Purge, &v))? as u64;
        }
        Ok(n)
    }

    /// Delete the oldest `limit` (1..=1000) dead tasks now. Returns how many were deleted.
    pub async fn purge_oldest_dead(&self, limit: usize) -> Result<u64> {
        let mut call = self.call(ScriptName::Purge, &[]);
        call.named("mode", "oldest").named("target", limit);
        let v = self.eval(&call).await?;
        Ok(int(&v).ok_or_else(|| self.bad_reply(ScriptName::Purge, &v))? as u64)
    }

    /// Pause (true) or resume (false) claiming on this queue. Returns whether it was paused.
    pub async fn set_paused(&self, paused: bool) -> Result<bool> {
        let mut call = self.call(ScriptName::Pause, &[]);
        call.named("paused", if paused { 1 } else { 0 });
        let v = self.eval(&call).await?;
        Ok(int(&v) == Some(1))
    }

    /// Store the queue settings the scripts read from Redis (the events stream cap). The
    /// scheduler and workers run it at start; every process should share the same [queues].
    pub async fn configure(&self) -> Result<()> {
        let mut call = self.call(ScriptName::Configure, &[]);
        call.named("events_max_len", self.settings.events_max_len);
        self.eval(&call).await?;
        Ok(())
    }

    /// Add (or refresh) a worker in the registry with its JSON description.
    pub async fn register(&self, worker: &str, info: &serde_json::Value) -> Result<()> {
        let mut call = self.call(ScriptName::Register, &[]);
        call.named("worker", worker).named("info", info.to_string());
        self.eval(&call).await.map(|_| ())
    }

    /// Remove a worker from the registry (after its last lease ended).
    pub async fn deregister(&self, worker: &str) -> Result<bool> {
        let mut call = self.call(ScriptName::Deregister, &[]);
        call.named("worker", worker).named("mode", "final");
        Ok(int(&self.eval(&call).await?) == Some(1))
    }

    /// Shutdown begins: stop receiving push assignments and hand back the assigned tasks the
    /// worker has not taken (not counted as attempts). Returns how many were handed back.
    pub async fn leave(&self, worker: &str) -> Result<u64> {
        let mut total = 0;
        loop {
            let mut call = self.call(ScriptName::Deregister, &[]);
            call.named("worker", worker).named("mode", "leave");
            let n = int(&self.eval(&call).await?).unwrap_or(0).max(0) as u64;
            total += n;
            if n < 1000 {
                return Ok(total);
            }
        }
    }

    /// Registered workers, most recently seen first (at most `limit`, 1..=1000).
    pub async fn workers(&self, limit: usize) -> Result<Vec<WorkerInfo>> {
        let mut call = self.call(ScriptName::Workers, &[]);
        call.named("limit", limit);
        let v = self.eval(&call).await?;
        let items = array(&v).ok_or_else(|| self.bad_reply(ScriptName::Workers, &v))?;
        items
            .chunks(8)
            .map(|c| {
                let bad = || self.bad_reply(ScriptName::Workers, &v);
                let [id, info, age, inflight, assigned, completed, failed, busy] = c else {
                    return Err(bad());
                };
                let n = |x: &Value| int(x).map(|i| i.max(0) as u64).ok_or_else(bad);
                Ok(WorkerInfo {
                    id: string(id).ok_or_else(bad)?,
                    info: serde_json::from_slice(&bytes(info).ok_or_else(bad)?)
                        .unwrap_or(serde_json::Value::Null),
                    last_seen: Duration::from_millis(int(age).ok_or_else(bad)? as u64),
                    inflight: n(inflight)?,
                    assigned: n(assigned)?,
                    completed: n(completed)?,
                    failed: n(failed)?,
                    busy_ms: n(busy)?,
                })
            })
            .collect()
    }

    /// Ids in the dead-letter set, oldest first (at most `limit`).
    pub async fn dead_ids(&self, limit: usize) -> Result<Vec<String>> {
        self.conn
            .query(
                redis::cmd("ZRANGE")
                    .arg(self.keys.role("dead"))
                    .arg(0)
                    .arg(limit as i64 - 1),
            )
            .await
    }

    /// Task counts by state.
    pub async fn counts(&self) -> Result<Counts> {
        let call = self.call(ScriptName::Counts, &[]);
        let v = self.eval(&call).await?;
        let n: Vec<u64> = array(&v)
            .map(|a| a.iter().filter_map(int).map(|x| x as u64).collect())
            .unwrap_or_default();
        if n.len() != 14 {
            return Err(self.bad_reply(ScriptName::Counts, &v));
        }
        Ok(Counts {
            pending: n[0],
            delayed: n[1],
            leased: n[2],
            done: n[3],
            dead: n[4],
            cancelled: n[5],
            paused: n[6] == 1,
            workers: n[7],
            completed_total: n[8],
            failed_total: n[9],
            dead_total: n[10],
            expired_total: n[11],
            enqueued_total: n[12],
            retried_total: n[13],
        })
    }

    // ---- worker side ----

    /// Claim up to `n` (1..=1000) pending tasks under a lease of the queue's lease duration.
    pub async fn claim(&self, worker: &str, n: usize) -> Result<Vec<Claimed>> {
        let v = self.eval(&self.claim_call(worker, n)).await?;
        self.parse_claim(&v)
    }

    pub(crate) fn claim_call(&self, worker: &str, n: usize) -> Call {
        let mut call = self.call(ScriptName::Claim, &[]);
        call.named("worker", worker)
            .named("n", n)
            .named("lease_ms", ms(self.settings.lease));
        call
    }

    pub(crate) fn parse_claim(&self, v: &Value) -> Result<Vec<Claimed>> {
        let items = array(v).ok_or_else(|| self.bad_reply(ScriptName::Claim, v))?;
        let mut out = Vec::with_capacity(items.len() / 4);
        for c in items.chunks(4) {
            let bad = || self.bad_reply(ScriptName::Claim, v);
            let [id, token, deadline, rec] = c else {
                return Err(bad());
            };
            let Value::BulkString(rec) = rec else {
                return Err(bad());
            };
            let record = Record::parse(rec)?;
            out.push(Claimed {
                id: string(id).ok_or_else(bad)?,
                token: string(token).ok_or_else(bad)?,
                attempt: record.attempts_used + 1,
                deadline_ms: int(deadline).ok_or_else(bad)? as u64,
                record,
            });
        }
        Ok(out)
    }

    /// Mark `worker` alive and renew the leases (id, token) it holds; one status per lease.
    pub async fn heartbeat(&self, worker: &str, leases: &[(&str, &str)]) -> Result<Heartbeat> {
        let mut out = Heartbeat {
            registered: true,
            statuses: Vec::with_capacity(leases.len()),
        };
        let mut chunks: Vec<&[(&str, &str)]> = leases.chunks(1000).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            let mut call = self.call(ScriptName::Heartbeat, &[]);
            call.named("worker", worker)
                .named("lease_ms", ms(self.settings.lease));
            for (id, token) in chunk {
                call.named("id", *id).named("token", *token);
            }
            let v = self.eval(&call).await?;
            let items = array(&v)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| self.bad_reply(ScriptName::Heartbeat, &v))?;
            out.registered &= int(&items[0]) == Some(1);
            out.statuses.extend(items[1..].iter().map(|i| match int(i) {
                Some(1) => LeaseStatus::Renewed,
                Some(2) => LeaseStatus::Cancelled,
                _ => LeaseStatus::Lost,
            }));
        }
        Ok(out)
    }

    /// Complete a claimed task; `Error::StaleLease` if its lease is not held any more.
    pub async fn complete(&self, worker: &str, task: &Claimed, result: &[u8]) -> Result<()> {
        let call = self.complete_call(
            worker,
            Duration::ZERO,
            &[(&task.id, &task.token, task.record.result_ttl, result)],
        );
        let v = self.eval(&call).await?;
        match self.parse_statuses(ScriptName::Complete, &v)?.first() {
            Some(1) => Ok(()),
            _ => Err(Error::StaleLease {
                queue: self.name().into(),
                id: task.id.clone(),
            }),
        }
    }

    /// One `complete` call for up to 1000 (id, token, result TTL, result).
    pub fn complete_call(
        &self,
        worker: &str,
        busy: Duration,
        items: &[(&str, &str, Duration, &[u8])],
    ) -> Call {
        let mut call = self.call(ScriptName::Complete, &[]);
        call.named("worker", worker).named("busy_ms", ms(busy));
        for (id, token, ttl, result) in items {
            call.named("id", *id)
                .named("token", *token)
                .named("result_ttl_ms", ms(*ttl))
                .named("result", *result);
        }
        call
    }

    /// Report one failed attempt.
    pub async fn fail(&self, worker: &str, report: &FailReport) -> Result<FailStatus> {
        let call = self.fail_call(worker, Duration::ZERO, std::slice::from_ref(report));
        let v = self.eval(&call).await?;
        match self.parse_fail(&v)?.first() {
            Some(FailStatus::Stale) | None => Err(Error::StaleLease {
                queue: self.name().into(),
                id: report.id.clone(),
            }),
            Some(s) => Ok(*s),
        }
    }

    pub(crate) fn fail_call(&self, worker: &str, busy: Duration, reports: &[FailReport]) -> Call {
        let mut call = self.call(ScriptName::Fail, &[]);
        call.named("worker", worker)
            .named("dead_ttl_ms", ms(self.settings.dead_ttl).max(1))
            .named("busy_ms", ms(busy));
        for r in reports {
            let mode = if r.retry {
                format!("r:{:.6}", fastrand::f64().min(0.999999))
            } else {
                "final".into()
            };
            call.named("id", &r.id)
                .named("token", &r.token)
                .named("error", &r.error)
                .named("mode", mode);
        }
        call
    }

    pub(crate) fn parse_fail(&self, v: &Value) -> Result<Vec<FailStatus>> {
        Ok(self
            .parse_statuses(ScriptName::Fail, v)?
            .into_iter()
            .map(|s| match s {
                1 => FailStatus::Retrying,
                2 => FailStatus::Dead,
                _ => FailStatus::Stale,
            })
            .collect())
    }

    pub(crate) fn parse_statuses(&self, script: ScriptName, v: &Value) -> Result<Vec<i64>> {
        let items = array(v).ok_or_else(|| self.bad_reply(script, v))?;
        items
            .iter()
            .map(|i| int(i).ok_or_else(|| self.bad_reply(script, v)))
            .collect()
    }

    /// Give leases back without counting the attempt (shutdown). Returns how many were released.
    pub async fn release(&self, worker: &str, leases: &[(&str, &str)]) -> Result<u64> {
        let mut n = 0;
        for chunk in leases.chunks(1000) {
            let mut call = self.call(ScriptName::Release, &[]);
            call.named("worker", worker);
            for (id, token) in chunk {
                call.named("id", *id).named("token", *token);
            }
            let v = self.eval(&call).await?;
            n += self
                .parse_statuses(ScriptName::Release, &v)?
                .iter()
                .filter(|s| **s == 1)
                .count() as u64;
        }
        Ok(n)
    }

    /// Push mode: take up to `n` (1..=1000) tasks dispatch assigned to `worker`.
    pub async fn take(&self, worker: &str, n: usize) -> Result<Vec<Claimed>> {
        let mut call = self.call(ScriptName::Take, &[]);
        call.named("worker", worker)
            .named("n", n)
            .named("lease_ms", ms(self.settings.lease));
        let v = self.eval(&call).await?;
        self.parse_claim(&v)
    }

    /// Push dispatch: assign up to `n` pending tasks to the live workers by `strategy`, with a
    /// random `seed` (1..2^31-2) for the random strategy. Workers are live if they heartbeat
    /// within three heartbeat intervals.
    pub async fn dispatch(
        &self,
        strategy: crate::config::Strategy,
        n: usize,
        seed: u32,
    ) -> Result<Dispatched> {
        let mut call = self.call(ScriptName::Dispatch, &[]);
        call.named("strategy", strategy.as_str())
            .named("n", n)
            .named("lease_ms", ms(self.settings.lease))
            .named("alive_ms", ms(self.settings.heartbeat * 3).max(1))
            .named("seed", seed.clamp(1, 2_147_483_646));
        let v = self.eval(&call).await?;
        let items = array(&v)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| self.bad_reply(ScriptName::Dispatch, &v))?;
        let bad = || self.bad_reply(ScriptName::Dispatch, &v);
        let mut out = Dispatched {
            assigned: int(&items[0]).ok_or_else(bad)? as u64,
            per_worker: Vec::new(),
        };
        for c in items[1..].chunks(2) {
            let [w, k] = c else { return Err(bad()) };
            out.per_worker
                .push((string(w).ok_or_else(bad)?, int(k).ok_or_else(bad)? as u64));
        }
        Ok(out)
    }

    // ---- maintenance ----

    /// Move due delayed tasks to pending (at most `limit`). Returns (promoted, time until the
    /// next delayed task is due).
    pub async fn promote(&self, limit: usize) -> Result<(u64, Option<Duration>)> {
        let mut call = self.call(ScriptName::Promote, &[]);
        call.named("limit", limit);
        let v = self.eval(&call).await?;
        let n = self.parse_statuses(ScriptName::Promote, &v)?;
        match n[..] {
            [p, next] => Ok((p as u64, (next >= 0).then(|| Duration::from_millis(next as u64)))),
            _ => Err(self.bad_reply(ScriptName::Promote, &v)),
        }
    }

    /// Take back expired leases (at most `limit`), and drop workers silent for three lease
    /// durations from the registry.
    pub async fn reclaim(&self, limit: usize) -> Result<Reclaimed> {
        let mut call = self.call(ScriptName::Reclaim, &[]);
        call.named("limit", limit)
            .named("dead_ttl_ms", ms(self.settings.dead_ttl).max(1))
            .named("worker_ttl_ms", ms(self.settings.lease * 3).max(1));
        let v = self.eval(&call).await?;
        let items = array(&v).ok_or_else(|| self.bad_reply(ScriptName::Reclaim, &v))?;
        let bad = || self.bad_reply(ScriptName::Reclaim, &v);
        let [requeued, dead, next, workers, pruned] = items else {
            return Err(bad());
        };
        let next = int(next).ok_or_else(bad)?;
        Ok(Reclaimed {
            requeued: int(requeued).ok_or_else(bad)? as u64,
            dead: int(dead).ok_or_else(bad)? as u64,
            next_in: (next >= 0).then(|| Duration::from_millis(next as u64)),
            workers: array(workers)
                .map(|w| w.iter().filter_map(string).collect())
                .unwrap_or_default(),
            pruned_workers: array(pruned)
                .map(|w| w.iter().filter_map(string).collect())
                .unwrap_or_default(),
        })
    }

    /// Drop finished tasks past their retention (at most `limit` per set). Returns (dropped, more).
    pub async fn trim(&self, limit: usize) -> Result<(u64, bool)> {
        let mut call = self.call(ScriptName::Trim, &[]);
        call.named("limit", limit);
        let v = self.eval(&call).await?;
        match self.parse_statuses(ScriptName::Trim, &v)?[..] {
            [d, more] => Ok((d as u64, more == 1)),
            _ => Err(self.bad_reply(ScriptName::Trim, &v)),
        }
    }
}

/// A new task id: a ULID (26 characters, sortable by creation time).
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

pub(crate) fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

pub(crate) fn string(v: &Value) -> Option<String> {
    bytes(v).and_then(|b| String::from_utf8(b).ok())
}
