//! Typed configuration: one TOML file, environment overrides, validation with named errors.
//!
//! The file is `config/baton.toml` by default (every knob is listed there with its default);
//! `BATON__SECTION__KEY` environment variables override it (`BATON__REDIS__URL`). Unknown keys,
//! bad durations and impossible values are refused at start with a message that names the key.

use crate::error::{Error, Result};
pub use crate::task::{BackoffKind, DispatchMode, Strategy};

pub mod limits;
#[cfg(test)]
mod tests;
mod validate;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub redis: RedisConfig,
    /// One table per queue; a queue without one uses the built-in defaults.
    pub queues: BTreeMap<String, QueueConfig>,
    pub worker: WorkerConfig,
    pub scheduler: SchedulerConfig,
}

/// How to reach Redis.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db` (or `rediss://` for TLS).
    pub url: String,
    /// ACL user name; overrides the one in `url`.
    pub username: Option<String>,
    /// Password; overrides the one in `url`.
    pub password: Option<String>,
    /// Database number; overrides the one in `url`.
    pub db: Option<i64>,
    /// Prefix of every key Baton writes.
    pub prefix: String,
    /// Time allowed to open a connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for one reply; a call that times out may still have run on the server.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    /// PEM file of the CA that signed the server's TLS certificate (`rediss://`), when it is not
    /// a public CA.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Redis Sentinel: ask these sentinels for the primary of `master` (in place of `url`).
    pub sentinel: Option<SentinelConfig>,
    /// Redis Cluster: seed node URLs (in place of `url`); queues spread over the primaries.
    pub cluster: Option<Vec<String>>,
    /// Durability: after each enqueue and complete, wait until this many replicas have the
    /// write (Redis WAIT) before acknowledging; 0 = do not wait. See docs/operations.md.
    pub wait_replicas: u32,
    /// Longest WAIT; when it passes with fewer replicas the call fails with an error naming it.
    #[serde(with = "humantime_serde")]
    pub wait_timeout: Duration,
}

/// `[redis] sentinel = { master = "mymaster", nodes = ["redis://127.0.0.1:26379"] }`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// The master (service) name the sentinels monitor.
    pub master: String,
    /// Sentinel addresses (`redis://host:port`, `rediss://` for TLS).
    pub nodes: Vec<String>,
    /// Password of the sentinels themselves (`requirepass` in sentinel.conf), if any. The data
    /// nodes use `[redis] username` / `password`.
    pub password: Option<String>,
    /// ACL user on the sentinels, if any.
    pub username: Option<String>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379/0".into(),
            username: None,
            password: None,
            db: None,
            prefix: "baton".into(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            tls_ca: None,
            sentinel: None,
            cluster: None,
            wait_replicas: 0,
            wait_timeout: Duration::from_secs(1),
        }
    }
}

/// Per-queue settings (defaults for the tasks enqueued there, and lease timing).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Lease duration: a task whose worker stops heartbeating is reclaimed this long after its
    /// last heartbeat.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Heartbeat interval; must be shorter than `lease` (about a third of it).
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Attempts before a task goes to the dead-letter set.
    pub max_attempts: u32,
    /// `exponential` or `fixed`.
    pub backoff: BackoffKind,
    /// First retry delay (exponential doubles it each attempt).
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_cap: Duration,
    /// Share of each retry delay removed at random, 0.0 to 1.0.
    pub backoff_jitter: f64,
    /// Execution timeout of a task (0s = none).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a result (and the finished task) is kept (0s = dropped at once).
    #[serde(with = "humantime_serde")]
    pub result_ttl: Duration,
    /// How long dead and cancelled tasks are kept.
    #[serde(with = "humantime_serde")]
    pub dead_ttl: Duration,
    /// How long an idempotency key maps to its first task.
    #[serde(with = "humantime_serde")]
    pub idempotency_ttl: Duration,
    /// Longest a unique key (`TaskSpec::unique`, `baton enqueue --unique`) is held by a task that
    /// is still pending, delayed or running; it is free again as soon as the task finishes.
    #[serde(with = "humantime_serde")]
    pub unique_ttl: Duration,
    /// Largest payload accepted, in bytes.
    pub max_payload: u64,
    /// Most tasks a worker claims (and acknowledges) in one call.
    pub claim_batch: usize,
    /// `pull` (workers claim) or `push` (tasks are assigned to workers by `strategy`).
    pub dispatch: DispatchMode,
    /// Push strategy: `random`, `round-robin`, `weighted` or `least-concurrency`.
    pub strategy: Strategy,
    /// Lifecycle events: approximate cap of the queue's events stream, in entries (one entry per
    /// script call and event type); 0 = no events at all (no stream, no pub/sub).
    pub events_max_len: u64,
    /// Priority aging: how long a pending task must wait to move up one priority step
    /// (0s = strict priority). A task of priority p is ahead of every task of priority p + k
    /// that started waiting more than k × aging after it. Turning it on or off is refused while
    /// tasks are pending.
    #[serde(with = "humantime_serde")]
    pub aging: Duration,
    /// Rate limit of the queue across all workers and processes, as tasks per period
    /// (`"200/s"`, `"5/m"`, `"10/30s"`): claim, take and dispatch hand out no more (GCRA, with
    /// `burst`). Unset = no rate limit. See docs/flow-control.md.
    pub rate: Option<crate::flow::Rate>,
    /// How many tasks `rate` lets go at once after an idle spell (default 1: evenly spaced).
    /// Any window of length T starts at most rate × T + burst tasks. Needs `rate`.
    pub burst: Option<u32>,
    /// Most tasks of this queue running at once across all workers (leases alive); 0 = no cap.
    /// A killed worker's slots free themselves when its leases expire.
    pub concurrency: u32,
    /// `"fifo"` (priority, then first in first out) or `"fair"`: the groups that have pending
    /// tasks share the workers by weight (`baton groups set --weight`), so one tenant's flood
    /// cannot delay the others. Switching is refused while tasks are pending.
    pub fairness: crate::flow::Fairness,
    /// On a fair queue: most tasks of one group running at once, across all workers (leases
    /// alive); 0 = none. `baton groups set --concurrency` gives a group its own cap. A group at
    /// its cap is parked, never holding the others back.
    pub group_concurrency: u32,
    /// On a fair queue: every group's own rate limit, written like `rate` (`"10/s"`), with
    /// `group_burst`. `baton groups set --rate` gives a group its own. A group over its rate is
    /// parked until the rate admits it, never holding the others back. Unset = none.
    pub group_rate: Option<crate::flow::Rate>,
    /// The burst of `group_rate` (default 1). Needs `group_rate`.
    pub group_burst: Option<u32>,
}

impl QueueConfig {
    /// How recently a worker must have heartbeated for push dispatch to assign it tasks: one
    /// heartbeat interval plus half of one for a late beat. A worker that stopped beating gets
    /// nothing after that, long before its leases expire.
    pub fn dispatch_liveness(&self) -> std::time::Duration {
        self.heartbeat + self.heartbeat / 2
    }

    /// The burst the scripts receive: `burst`, or 1 (evenly spaced) when unset.
    pub fn burst_or_default(&self) -> u32 {
        self.burst.unwrap_or(1)
    }

    /// The retry policy of tasks that set none.
    pub fn backoff(&self) -> crate::task::Backoff {
        crate::task::Backoff {
            kind: self.backoff,
            base: self.backoff_base,
            cap: self.backoff_cap,
            jitter: self.backoff_jitter,
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            lease: Duration::from_secs(4),
            heartbeat: Duration::from_secs(1),
            max_attempts: 5,
            backoff: BackoffKind::Exponential,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(600),
            backoff_jitter: 0.2,
            timeout: Duration::from_secs(1800),
            result_ttl: Duration::from_secs(3600),
            dead_ttl: Duration::from_secs(7 * 86400),
            idempotency_ttl: Duration::from_secs(86400),
            unique_ttl: Duration::from_secs(86400),
            max_payload: 1 << 20,
            claim_batch: 100,
            dispatch: DispatchMode::Pull,
            strategy: Strategy::LeastConcurrency,
            events_max_len: 10000,
            aging: Duration::ZERO,
            rate: None,
            burst: None,
            concurrency: 0,
            fairness: crate::flow::Fairness::Fifo,
            group_concurrency: 0,
            group_rate: None,
            group_burst: None,
        }
    }
}

/// Worker process settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Queues this worker takes tasks from.
    pub queues: Vec<String>,
    /// Most tasks run at once (per queue).
    pub concurrency: usize,
    /// On shutdown, how long in-flight tasks may finish before their leases are released.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Safety-net poll when no wake-up arrives (workers normally wake on pub/sub).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Also run the maintenance loops (promote, reclaim, trim) in the worker.
    pub maintenance: bool,
    /// This worker's share under weighted push dispatch (shown in the registry).
    pub weight: u32,
    /// Most tasks push dispatch may assign to this worker at once (default: concurrency).
    pub capacity: Option<usize>,
    /// Address to serve this worker's Prometheus `/metrics` on (e.g. "127.0.0.1:9091"); off when
    /// unset. The same listener takes http handlers' progress callbacks.
    pub metrics: Option<String>,
    /// Base URL your http handlers reach this worker's `metrics` listener at, for progress
    /// callbacks (each request carries `x-baton-progress-url`: this base plus the run's path).
    /// Default: `http://<metrics>` when `metrics` is a specific address; set it when the
    /// listener is on 0.0.0.0 or behind a different name. Needs `metrics`.
    pub progress_url: Option<String>,
    /// How each task kind is run: one table per kind.
    pub handlers: BTreeMap<String, HandlerConfig>,
}

/// How `baton-worker` runs one task kind: exactly one of `exec`, `shell`, `http`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HandlerConfig {
    /// Run this program (argv, no shell): payload on stdin, stdout is the result, a non-zero
    /// exit is a failure with the tail of stderr as the error.
    pub exec: Option<Vec<String>>,
    /// Run this command line with `sh -c` (only when you want a shell); same I/O as `exec`.
    pub shell: Option<String>,
    /// POST the payload to this URL; a 2xx answer is success with the body as result.
    pub http: Option<String>,
    /// Kill / abort an attempt after this long (the task's own timeout applies as well).
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Extra environment variables for `exec`/`shell`.
    pub env: BTreeMap<String, String>,
    /// Extra request headers for `http`.
    pub headers: BTreeMap<String, String>,
    /// `exec`/`shell`: hand the program its task's dependencies (how each ended, its result or
    /// error) as a JSON file named by `BATON_DEPENDENCIES_FILE` — one Redis call per task, so
    /// only for kinds that run after others (docs/workflows.md).
    pub dependencies: bool,
}

/// A periodic task fired by `baton-scheduler`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CronEntry {
    /// Cron expression, UTC: 5 fields (minute precision) or 6 (with seconds first).
    pub schedule: String,
    /// Queue to enqueue on.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Task kind.
    pub kind: String,
    /// Payload (a string; JSON by convention).
    #[serde(default)]
    pub payload: String,
    /// Priority of the fired tasks.
    #[serde(default)]
    pub priority: i32,
}

fn default_queue() -> String {
    "default".into()
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            queues: vec!["default".into()],
            concurrency: 16,
            shutdown_grace: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            maintenance: true,
            weight: 1,
            capacity: None,
            metrics: None,
            progress_url: None,
            handlers: BTreeMap::new(),
        }
    }
}

/// Maintenance loop timing (scheduler, and workers with `maintenance = true`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Longest sleep between promotions of due delayed tasks (they also wake it).
    #[serde(with = "humantime_serde")]
    pub promote_interval: Duration,
    /// Longest sleep between reclaims of expired leases.
    #[serde(with = "humantime_serde")]
    pub reclaim_interval: Duration,
    /// Interval of the janitor that drops finished tasks past their retention.
    #[serde(with = "humantime_serde")]
    pub trim_interval: Duration,
    /// Most tasks one maintenance call handles.
    pub batch: usize,
    /// Push queues: longest sleep between dispatch rounds (new tasks and freed capacity wake it).
    #[serde(with = "humantime_serde")]
    pub dispatch_interval: Duration,
    /// Queues the scheduler maintains (empty: every queue named in this file).
    pub queues: Vec<String>,
    /// Address of the dashboard (`/`) and Prometheus metrics (`/metrics`), e.g.
    /// "127.0.0.1:9090"; off when unset.
    pub http: Option<String>,
    /// Token the dashboard's state-changing actions (requeue, purge, pause) must present as
    /// `Authorization: Bearer <token>`; without one, actions are refused (read-only dashboard).
    pub http_token: Option<String>,
    /// Periodic tasks, one table per entry name.
    pub cron: BTreeMap<String, CronEntry>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            promote_interval: Duration::from_secs(1),
            reclaim_interval: Duration::from_millis(500),
            trim_interval: Duration::from_secs(5),
            batch: 500,
            dispatch_interval: Duration::from_millis(200),
            queues: Vec::new(),
            http: None,
            http_token: None,
            cron: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Load a TOML file, apply `BATON__…` environment overrides, validate.
    pub fn load(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::Config(format!(
                "file {} not found — pass --config FILE or set BATON_CONFIG (an example: config/baton.toml)",
                path.display()
            )));
        }
        let builder =
            config::Config::builder().add_source(config::File::from(path).format(config::FileFormat::Toml));
        Self::build(builder, &path.display().to_string())
    }

    /// Built-in defaults with `BATON__…` environment overrides, validated.
    pub fn from_env() -> Result<Config> {
        Self::build(config::Config::builder(), "<defaults>")
    }

    /// Parse TOML text (no environment overrides), validate.
    pub fn from_toml(text: &str) -> Result<Config> {
        let builder =
            config::Config::builder().add_source(config::File::from_str(text, config::FileFormat::Toml));
        Self::build_without_env(builder, "<toml>")
    }

    fn build(builder: config::ConfigBuilder<config::builder::DefaultState>, origin: &str) -> Result<Config> {
        let builder = builder.add_source(
            config::Environment::with_prefix("BATON")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("worker.queues")
                .try_parsing(true),
        );
        Self::build_without_env(builder, origin)
    }

    fn build_without_env(
        builder: config::ConfigBuilder<config::builder::DefaultState>,
        origin: &str,
    ) -> Result<Config> {
        let raw = builder
            .build()
            .map_err(|e| Error::Config(format!("{origin}: {e} — check the TOML syntax")))?;
        let cfg: Config = raw.try_deserialize().map_err(|e| {
            Error::Config(format!(
                "{origin}: {e} — every key and its default is listed in config/baton.toml"
            ))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The queues a scheduler maintains: `scheduler.queues`, or every queue this file names
    /// (its `[queues.*]` tables, `worker.queues` and the cron entries' queues).
    pub fn scheduler_queues(&self) -> Vec<String> {
        if !self.scheduler.queues.is_empty() {
            return self.scheduler.queues.clone();
        }
        let mut q: std::collections::BTreeSet<String> = self.queues.keys().cloned().collect();
        q.extend(self.worker.queues.iter().cloned());
        q.extend(self.scheduler.cron.values().map(|c| c.queue.clone()));
        q.into_iter().collect()
    }

    /// Settings of one queue (its table, or the built-in defaults).
    pub fn queue(&self, name: &str) -> QueueConfig {
        self.queues.get(name).cloned().unwrap_or_default()
    }
}
