//! Building a [`Worker`]: its handlers, concurrency and timing.

use super::*;

/// Builds a [`Worker`].
pub struct WorkerBuilder {
    pub(super) queue: Queue,
    pub(super) id: Option<String>,
    pub(super) concurrency: usize,
    pub(super) handlers: HashMap<String, Arc<dyn Handler>>,
    pub(super) grace: Duration,
    pub(super) poll_interval: Duration,
    pub(super) maintenance: Option<SchedulerConfig>,
    pub(super) extra_info: serde_json::Value,
}

impl WorkerBuilder {
    /// Extra fields (a JSON object) for this worker's entry in the registry.
    pub fn info(mut self, extra: serde_json::Value) -> Self {
        self.extra_info = extra;
        self
    }
    /// Most tasks run at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    /// Use this worker id (default: unique per process, never reused).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// Run tasks of `kind` with `handler` (a closure or a [`Handler`]).
    pub fn handler(mut self, kind: impl Into<String>, handler: impl Handler) -> Self {
        self.handlers.insert(kind.into(), Arc::new(handler));
        self
    }
    /// Run tasks of `kind` with a shared handler.
    pub fn handler_arc(mut self, kind: impl Into<String>, handler: Arc<dyn Handler>) -> Self {
        self.handlers.insert(kind.into(), handler);
        self
    }
    /// On shutdown, how long in-flight tasks may finish before their leases are released.
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.grace = d;
        self
    }
    /// Safety-net poll interval when no wake-up arrives.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }
    /// Run the maintenance loops (promote, reclaim, trim) in this worker too (None: don't).
    pub fn maintenance(mut self, cfg: Option<SchedulerConfig>) -> Self {
        self.maintenance = cfg;
        self
    }

    /// Use these queue settings instead of the configured ones (tests, tools).
    pub fn queue_settings(mut self, settings: crate::config::QueueConfig) -> Self {
        self.queue = self.queue.with_settings(settings);
        self
    }

    pub fn build(self) -> Result<Worker> {
        if self.concurrency == 0 {
            return Err(Error::Invalid("worker concurrency must be at least 1".into()));
        }
        let id = self.id.unwrap_or_else(new_worker_id);
        crate::keys::validate_name(&id, "worker id")?;
        Ok(Worker {
            queue: self.queue,
            id,
            concurrency: self.concurrency,
            handlers: Arc::new(self.handlers),
            grace: self.grace,
            poll_interval: self.poll_interval,
            maintenance: self.maintenance,
            stats: Arc::new(WorkerStats::default()),
            extra_info: self.extra_info,
        })
    }
}

/// A unique worker id: `w-<pid>-<ulid>` (never reused, even across restarts).
pub fn new_worker_id() -> String {
    format!("w-{}-{}", std::process::id(), ulid::Ulid::new())
}
