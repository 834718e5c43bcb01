//! The producer API: a [`Client`] (connection + config) and a [`Queue`] facade that fills each
//! script's typed request (`crate::ops`) from the queue's settings and runs it.
//!
//! The worker runtime and the maintenance loops call the same facade, so each script has one
//! Rust call path: `Queue::<method>` → `ops::<script>::Request` → `lua/<script>.lua`.

use crate::config::{Config, QueueConfig};
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::keys::QueueKeys;
use crate::ops::{self, LeaseRef, Op};
use crate::task::{Task, TaskSpec};
use std::sync::Arc;

pub use crate::ops::claim::{Claimed, Claims, Held};
pub use crate::ops::complete::Completed;
pub use crate::ops::dispatch::Dispatched;
pub use crate::ops::enqueue::Enqueued;
pub use crate::ops::fail::{FailMode, FailStatus};
pub use crate::ops::heartbeat::{Heartbeat, LeaseStatus};
pub use crate::ops::progress::ProgressAck;
pub use crate::ops::promote::Promoted;
pub use crate::ops::reclaim::Reclaimed;
pub use crate::ops::trim::Trimmed;
pub use crate::ops::workers::WorkerInfo;
pub use flows::{Batch, CancelledFlow, Flow, OpenBatch, SubmittedFlow, FLOW_MAX_TASKS};
pub use wait::{Outcome, WaitSummary};

mod across;
mod admin;
mod flows;
mod wait;
mod work;

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
            config: self.config.clone(),
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
            mode: if self.retry {
                FailMode::retry()
            } else {
                FailMode::Final
            },
        }
    }
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
    /// The client's configuration: the settings of the other queues a flow or a dependency
    /// across queues names.
    config: Arc<Config>,
}

/// Most items one script call takes (ids, leases, tasks): the scripts' batch bound.
pub(crate) const MAX_BATCH: usize = ops::bounds::claim::N.max as usize;

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
            config: self.config.clone(),
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
        let tasks = specs
            .into_iter()
            .map(|spec| self.new_task(spec))
            .collect::<Result<Vec<_>>>()?;
        if tasks.iter().any(|t| t.after.iter().any(|d| d.contains('/'))) {
            self.check_remote_deps(tasks.iter().flat_map(|t| t.after.iter().map(String::as_str)))
                .await?;
        }
        self.run(&ops::enqueue::Request {
            max_payload: self.settings.max_payload,
            tasks,
        })
        .await
    }

    /// One task of an enqueue, checked and with the queue's defaults filled in.
    pub(crate) fn new_task(&self, spec: TaskSpec) -> Result<ops::enqueue::NewTask> {
        let s = &self.settings;
        let keys = [
            ("idempotency", spec.idempotency_key.as_deref()),
            ("unique", spec.unique_key.as_deref()),
            ("debounce", spec.debounce.as_ref().map(|(k, ..)| k.as_str())),
        ];
        for (what, key) in keys {
            if key.is_some_and(|k| k.is_empty() || k.len() > 512) {
                return Err(Error::Invalid(format!("{what} key must be 1-512 bytes")));
            }
        }
        if let Some((k, window, max_wait)) = &spec.debounce {
            if window.is_zero() || max_wait < window || !spec.delay.is_zero() {
                return Err(Error::Invalid(format!(
                    "debounce {k}: the window must be > 0 and max-wait at least the window (got {} and {}), and a debounced task takes no delay",
                    humantime::format_duration(*window),
                    humantime::format_duration(*max_wait)
                )));
            }
        }
        if let Some(g) = &spec.group {
            crate::keys::validate_name(g, "group")?;
        }
        if !spec.after.is_empty() {
            for d in &spec.after {
                match across::remote_ref(d) {
                    Some((q, id)) => {
                        crate::keys::validate_name(q, "after (the queue of a dependency written queue/id)")?;
                        // "<queue>/#<flow>": the seal of a flow of that queue
                        let id = id.strip_prefix('#').unwrap_or(id);
                        crate::keys::validate_name(id, "after (a dependency's task id)")?;
                    }
                    None => crate::keys::validate_name(d, "after (a dependency's task id)")?,
                }
            }
            if !spec.delay.is_zero() || spec.debounce.is_some() {
                return Err(Error::Invalid(format!(
                    "a {} task with dependencies (after) takes no delay or debounce: it runs when they finish",
                    spec.kind
                )));
            }
        }
        let cb = crate::bounds::enqueue::COST;
        if !cb.contains(spec.cost.into()) {
            return Err(Error::Invalid(format!(
                "a {} task's cost must be between {} and {} (what it counts for under the rate limits), got {}",
                spec.kind, cb.min, cb.max, spec.cost
            )));
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
        Ok(ops::enqueue::NewTask {
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
            unique: spec.unique_key.map(|k| (k, s.unique_ttl)),
            debounce: spec.debounce,
            expires_in: spec.expires_in.unwrap_or(std::time::Duration::ZERO),
            group: spec.group,
            cost: spec.cost,
            after: spec.after,
            on_failure: spec.on_failure,
            unrun_ttl: s.dead_ttl,
            flow: spec.flow,
            name: spec.name,
            spawned_by: spec.spawned_by,
        })
    }

    /// Task `id`'s dependencies (`TaskSpec::after`): how each ended and its result or last
    /// error, in one call. Empty when it has none.
    pub async fn dependencies(&self, id: &str) -> Result<Vec<crate::ops::dependencies::Dependency>> {
        crate::keys::validate_name(id, "task id")?;
        let mut deps = self.run(&ops::dependencies::Request { id: id.into() }).await?;
        if deps.iter().any(|d| d.id.contains('/')) {
            self.remote_results(&mut deps).await?;
        }
        Ok(deps)
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
}

/// A new task id: a ULID (26 characters, sortable by creation time).
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}
