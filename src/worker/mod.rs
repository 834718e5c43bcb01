//! The worker runtime: claim within a concurrency limit, run handlers, heartbeat, acknowledge in
//! batches, shut down gracefully.
//!
//! Shape of a running worker (all on one queue):
//! - the claim loop takes free concurrency permits and claims that many tasks in one call; when
//!   the queue runs dry it sleeps until a pub/sub wake-up (or a slow safety poll);
//! - each task runs in its own tokio task, holding its permit until its outcome is acknowledged;
//! - the ack flusher sends every finished outcome waiting in its channel as one `complete` and
//!   one `fail` call in a single pipelined round trip (batches form by themselves under load);
//! - the heartbeat loop renews all held leases in one call and stops handlers whose lease was
//!   lost or whose task was cancelled;
//! - the start flusher tells Redis, shortly after handlers start, that their runs started (so
//!   only a lease whose run started is charged an attempt when it expires);
//! - optionally the maintenance loops (promote, reclaim, trim) run alongside.

mod acks;
mod builder;
mod claim;
#[cfg(feature = "services")]
mod exec;
mod handler;
mod heartbeat;
#[cfg(feature = "services")]
mod http;
#[cfg(feature = "services")]
mod progress;
#[cfg(feature = "services")]
pub mod service;
mod start;
mod wake;

pub use builder::{new_worker_id, WorkerBuilder};

use acks::ack_flusher;
pub use handler::{Handler, HandlerError, HandlerResult, TaskContext};
use heartbeat::heartbeat_loop;
use start::{start_flusher, Started};
use wake::wake_listener;

use crate::client::{Claimed, Claims, Client, FailReport, FailStatus, Held, LeaseStatus, Queue};
use crate::config::{DispatchMode, SchedulerConfig};
use crate::error::{Error, Result};
use crate::maintenance::Maintenance;
use crate::ops::{self, LeaseRef, Op};
use crate::retry::Backoff;
use crate::subscription::{Signal, Subscription};
use futures_util::FutureExt;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Counters of what a worker did.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub claimed: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    /// Acknowledgements refused because the lease was gone.
    pub stale: AtomicU64,
    /// Handlers stopped because their lease was lost or the task cancelled.
    pub lost: AtomicU64,
    /// Leases given back at shutdown.
    pub released: AtomicU64,
}

/// A worker on one queue.
pub struct Worker {
    queue: Queue,
    id: String,
    concurrency: usize,
    handlers: Arc<HashMap<String, Arc<dyn Handler>>>,
    grace: Duration,
    poll_interval: Duration,
    maintenance: Option<SchedulerConfig>,
    stats: Arc<WorkerStats>,
    extra_info: serde_json::Value,
}

struct InFlight {
    token: String,
    cancel: CancellationToken,
    /// The handler has finished; its acknowledgement is on the way.
    finished: bool,
}

struct Ack {
    id: String,
    token: String,
    result_ttl: Duration,
    /// How long the handler ran.
    run: Duration,
    outcome: HandlerResult,
    _permit: OwnedSemaphorePermit,
}

type InFlightMap = Arc<Mutex<HashMap<String, InFlight>>>;

impl Worker {
    /// A worker on `queue`, configured from the client's `[worker]` and `[scheduler]` sections.
    pub fn builder(client: &Client, queue: &str) -> Result<WorkerBuilder> {
        let w = &client.config().worker;
        Ok(WorkerBuilder {
            queue: client.queue(queue)?,
            id: None,
            concurrency: w.concurrency,
            handlers: HashMap::new(),
            grace: w.shutdown_grace,
            poll_interval: w.poll_interval,
            maintenance: w.maintenance.then(|| client.config().scheduler.clone()),
            extra_info: serde_json::Value::Null,
        })
    }

    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// How this worker describes itself in the registry.
    fn info(&self) -> serde_json::Value {
        let mut kinds: Vec<&String> = self.handlers.keys().collect();
        kinds.sort();
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut info = serde_json::json!({
            "id": self.id,
            "host": hostname(),
            "pid": std::process::id(),
            "concurrency": self.concurrency,
            "capacity": self.concurrency,
            "weight": 1,
            // push dispatch assigns nothing to a worker that claims for itself
            "dispatch": self.queue.settings().dispatch.as_str(),
            "kinds": kinds,
            "started_ms": started_ms,
            "version": env!("CARGO_PKG_VERSION"),
        });
        if let (Some(obj), serde_json::Value::Object(extra)) = (info.as_object_mut(), &self.extra_info) {
            obj.extend(extra.clone());
        }
        info
    }

    /// Run until `shutdown` resolves, then stop claiming, let in-flight tasks finish within the
    /// grace period, release the rest, and return.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<Arc<WorkerStats>> {
        let queue = self.queue.clone();
        let stop_claiming = CancellationToken::new();
        let stop_all = CancellationToken::new();
        let inflight: InFlightMap = Arc::new(Mutex::new(HashMap::new()));
        let sem = Arc::new(Semaphore::new(self.concurrency));
        let claim_wake = Arc::new(Notify::new());
        let maint_wake = Arc::new(Notify::new());

        // Set by a part that hit a configuration bug (a script refused its arguments): the
        // worker shuts down gracefully and `run` returns the error.
        let fatal = Fatal::default();
        // Subscribe before the first claim, so no wake-up after it can be missed.
        let sub =
            Subscription::connect(queue.conn().clone(), &[queue.keys().wake_channel()], queue.name()).await?;
        // Registered before anything is spawned: an error here leaves nothing running.
        let info = self.info();
        let _ = queue.configure().await?; // warns if the queue was in another mode
        queue.register(&self.id, &info).await?;
        let wake_task = tokio::spawn(wake_listener(
            queue.clone(),
            self.id.clone(),
            sub,
            claim_wake.clone(),
            maint_wake.clone(),
            stop_all.clone(),
        ));

        let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Ack>();
        let flusher = tokio::spawn(ack_flusher(
            queue.clone(),
            self.id.clone(),
            ack_rx,
            inflight.clone(),
            self.stats.clone(),
        ));
        let started = Arc::new(Started::default());
        let start_task = tokio::spawn(start_flusher(
            queue.clone(),
            self.id.clone(),
            started.clone(),
            inflight.clone(),
            stop_all.clone(),
        ));
        let heartbeat = tokio::spawn(heartbeat_loop(
            queue.clone(),
            self.id.clone(),
            info,
            stop_claiming.clone(),
            inflight.clone(),
            self.stats.clone(),
            stop_all.clone(),
        ));
        let maintenance = self.maintenance.clone().map(|cfg| {
            let m = Maintenance::new(vec![queue.clone()], cfg);
            let (stop, wake, fatal) = (stop_all.clone(), maint_wake.clone(), fatal.clone());
            tokio::spawn(async move {
                if let Err(e) = m.run(stop, Some(wake)).await {
                    fatal.set(e);
                }
            })
        });

        tracing::info!(worker = %self.id, queue = queue.name(), concurrency = self.concurrency, "worker started");
        {
            let claim = self.claim_loop(
                sem.clone(),
                inflight.clone(),
                &started,
                ack_tx,
                claim_wake,
                stop_claiming.clone(),
                &fatal,
            );
            tokio::pin!(claim);
            tokio::select! {
                _ = &mut claim => {}
                _ = shutdown => {
                    stop_claiming.cancel();
                    claim.await;
                }
                _ = fatal.token.cancelled() => {
                    stop_claiming.cancel();
                    claim.await;
                }
            }
        }
        tracing::info!(worker = %self.id, "shutting down: no more claims, waiting for in-flight tasks");
        // No more push assignments; assigned tasks not taken yet go back to pending.
        match queue.leave(&self.id).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(worker = %self.id, handed_back = n, "assigned tasks handed back"),
            Err(e) => {
                tracing::warn!(worker = %self.id, error = %e, "could not hand back assigned tasks; they will be reclaimed")
            }
        }

        // Every permit back = every task finished and acknowledged.
        let all = self.concurrency as u32;
        if tokio::time::timeout(self.grace, sem.acquire_many(all))
            .await
            .is_err()
        {
            // Handlers still running are stopped and their leases released; finished ones keep
            // their leases until the flusher has acknowledged them.
            let leftovers: Vec<(String, String)> = {
                let mut map = inflight.lock().unwrap();
                let running: Vec<String> = map
                    .iter()
                    .filter(|(_, f)| !f.finished)
                    .map(|(id, _)| id.clone())
                    .collect();
                running
                    .into_iter()
                    .filter_map(|id| map.remove(&id).map(|f| (id, f)))
                    .map(|(id, f)| {
                        f.cancel.cancel();
                        (id, f.token)
                    })
                    .collect()
            };
            if !leftovers.is_empty() {
                let leases: Vec<LeaseRef> = leftovers
                    .into_iter()
                    .map(|(id, token)| LeaseRef { id, token })
                    .collect();
                match queue.release(&self.id, &leases).await {
                    Ok(n) => {
                        self.stats.released.fetch_add(n, Ordering::Relaxed);
                        tracing::warn!(worker = %self.id, released = n, "grace period over: leases released, the tasks will run elsewhere");
                    }
                    Err(e) => {
                        tracing::error!(worker = %self.id, error = %e, "could not release leases; they will be reclaimed when they expire")
                    }
                }
            }
        }
        // The claim loop dropped its sender; the flusher ends after the last acknowledgement.
        let _ = flusher.await;
        stop_all.cancel();
        // After the last heartbeat, so none can register the worker again.
        let _ = heartbeat.await;
        if let Err(e) = queue.deregister(&self.id).await {
            tracing::warn!(worker = %self.id, error = %e, "deregister failed; the registry drops this worker once it is silent");
        }
        let _ = wake_task.await;
        let _ = start_task.await;
        if let Some(m) = maintenance {
            let _ = m.await;
        }
        if let Some(e) = fatal.take() {
            tracing::error!(worker = %self.id, error = %e, "worker stopped by a configuration error");
            return Err(e);
        }
        tracing::info!(worker = %self.id, "worker stopped");
        Ok(self.stats)
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// The first configuration error a part of the worker hit; setting it shuts the worker down.
#[derive(Clone, Default)]
struct Fatal {
    error: Arc<Mutex<Option<Error>>>,
    token: CancellationToken,
}

impl Fatal {
    fn set(&self, e: Error) {
        self.error.lock().unwrap().get_or_insert(e);
        self.token.cancel();
    }

    fn take(&self) -> Option<Error> {
        self.error.lock().unwrap().take()
    }
}
