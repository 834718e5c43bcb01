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
//! - optionally the maintenance loops (promote, reclaim, trim) run alongside.

#[cfg(feature = "services")]
mod exec;
mod handler;
#[cfg(feature = "services")]
mod http;
#[cfg(feature = "services")]
pub mod service;

pub use handler::{Handler, HandlerError, HandlerResult, TaskContext};

use crate::client::{Claimed, Client, FailReport, FailStatus, LeaseStatus, Queue};
use crate::ops::{self, LeaseRef, Op};
use crate::config::{DispatchMode, SchedulerConfig};
use crate::error::{Error, Result};
use crate::maintenance::Maintenance;
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

/// Builds a [`Worker`].
pub struct WorkerBuilder {
    queue: Queue,
    id: Option<String>,
    concurrency: usize,
    handlers: HashMap<String, Arc<dyn Handler>>,
    grace: Duration,
    poll_interval: Duration,
    maintenance: Option<SchedulerConfig>,
    extra_info: serde_json::Value,
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
        let sub = Subscription::connect(queue.conn().clone(), &[queue.keys().wake_channel()], queue.name()).await?;
        // Registered before anything is spawned: an error here leaves nothing running.
        let info = self.info();
        queue.configure().await?;
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
                let leases: Vec<LeaseRef> = leftovers.into_iter().map(|(id, token)| LeaseRef { id, token }).collect();
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

    async fn claim_loop(
        &self,
        sem: Arc<Semaphore>,
        inflight: InFlightMap,
        ack_tx: mpsc::UnboundedSender<Ack>,
        wake: Arc<Notify>,
        stop: CancellationToken,
        fatal: &Fatal,
    ) {
        let batch = self.queue.settings().claim_batch.min(self.concurrency).max(1);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            // biased: once shutdown has begun, never claim again
            let first = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                p = sem.clone().acquire_owned() => p.expect("semaphore never closed"),
            };
            let mut permits = vec![first];
            while permits.len() < batch {
                match sem.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let want = permits.len();
            let claimed = match self.queue.settings().dispatch {
                DispatchMode::Pull => self.queue.claim(&self.id, want).await,
                DispatchMode::Push => self.queue.take(&self.id, want).await,
            };
            match claimed {
                Ok(tasks) => {
                    backoff.reset();
                    let got = tasks.len();
                    self.stats.claimed.fetch_add(got as u64, Ordering::Relaxed);
                    for task in tasks {
                        let permit = permits.pop().expect("one permit per claimed task");
                        self.spawn_task(task, permit, &inflight, &ack_tx);
                    }
                    drop(permits);
                    if got < want {
                        tokio::select! {
                            _ = wake.notified() => {}
                            _ = tokio::time::sleep(self.poll_interval) => {}
                            _ = stop.cancelled() => return,
                        }
                    }
                }
                Err(e @ Error::BadArgument { .. }) => {
                    tracing::error!(worker = %self.id, error = %e, "claim refused its arguments: this is a configuration bug (a value outside the scripts' limits, or binaries of different versions), not a transient error — stopping the worker; fix the config and restart");
                    fatal.set(e);
                    return;
                }
                Err(e) => {
                    drop(permits);
                    tracing::warn!(worker = %self.id, error = %e, "claim failed; retrying");
                    if !backoff.wait(&stop).await {
                        return;
                    }
                }
            }
        }
    }

    fn spawn_task(
        &self,
        task: Claimed,
        permit: OwnedSemaphorePermit,
        inflight: &InFlightMap,
        ack_tx: &mpsc::UnboundedSender<Ack>,
    ) {
        let cancel = CancellationToken::new();
        // The same id claimed again (our earlier lease was reclaimed): the older attempt must stop.
        if let Some(old) = inflight.lock().unwrap().insert(
            task.id.clone(),
            InFlight {
                token: task.token.clone(),
                cancel: cancel.clone(),
                finished: false,
            },
        ) {
            old.cancel.cancel();
        }
        let handler = self.handlers.get(&task.record.kind).cloned();
        let ack_tx = ack_tx.clone();
        let inflight = inflight.clone();
        let worker = self.id.clone();
        let queue = self.queue.name().to_string();
        let metric_queue = queue.clone();
        tokio::spawn(async move {
            let Claimed {
                id,
                token,
                attempt,
                record,
                ..
            } = task;
            let result_ttl = record.result_ttl;
            let started = std::time::Instant::now();
            let outcome = match handler {
                None => Some(Err(HandlerError::retry(format!(
                    "no handler for task kind {:?} on worker {worker} (queue {queue}) — register a handler for it, or send this kind to a queue whose workers have one",
                    record.kind
                )))),
                Some(h) => {
                    let ctx = TaskContext {
                        id: id.clone(),
                        queue,
                        kind: record.kind.clone(),
                        payload: record.payload,
                        attempt,
                        max_attempts: record.max_attempts,
                        enqueued_ms: record.created_ms,
                        cancelled: cancel.clone(),
                    };
                    let run = AssertUnwindSafe(h.call(ctx)).catch_unwind();
                    let timed = async {
                        match record.timeout {
                            Some(t) => match tokio::time::timeout(t, run).await {
                                Ok(r) => r,
                                Err(_) => Ok(Err(HandlerError::retry(format!("timed out after {t:?} (the task's execution timeout)")))),
                            },
                            None => run.await,
                        }
                    };
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => None,
                        r = timed => Some(r.unwrap_or_else(|p| Err(HandlerError::retry(format!("handler panicked: {}", panic_message(&p)))))),
                    }
                }
            };
            let label = match &outcome {
                Some(Ok(_)) => "completed",
                Some(Err(_)) => "failed",
                None => "stopped",
            };
            metrics::histogram!("baton_worker_task_run_seconds", "queue" => metric_queue.clone(), "outcome" => label)
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("baton_worker_tasks_total", "queue" => metric_queue, "outcome" => label)
                .increment(1);
            match outcome {
                Some(outcome) => {
                    if let Some(f) = inflight.lock().unwrap().get_mut(&id).filter(|f| f.token == token) {
                        f.finished = true;
                    }
                    let _ = ack_tx.send(Ack {
                        id,
                        token,
                        result_ttl,
                        run: started.elapsed(),
                        outcome,
                        _permit: permit,
                    });
                }
                None => {
                    // Lease lost, cancelled, or released at shutdown: nothing to acknowledge.
                    let mut map = inflight.lock().unwrap();
                    if map.get(&id).is_some_and(|f| f.token == token) {
                        map.remove(&id);
                    }
                }
            }
        });
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Sends finished outcomes as batched `complete` + `fail` calls in one round trip.
async fn ack_flusher(
    queue: Queue,
    worker: String,
    mut rx: mpsc::UnboundedReceiver<Ack>,
    inflight: InFlightMap,
    stats: Arc<WorkerStats>,
) {
    let max = queue.settings().claim_batch.clamp(100, 1000);
    let mut batch: Vec<Ack> = Vec::with_capacity(max);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        let mut done: Vec<ops::complete::Completion> = Vec::new();
        let mut failed: Vec<FailReport> = Vec::new();
        let (mut busy_done, mut busy_failed) = (Duration::ZERO, Duration::ZERO);
        for a in &batch {
            match &a.outcome {
                Ok(result) => {
                    busy_done += a.run;
                    done.push(ops::complete::Completion {
                        id: &a.id,
                        token: &a.token,
                        result_ttl: a.result_ttl,
                        result,
                    });
                }
                Err(e) => {
                    busy_failed += a.run;
                    failed.push(FailReport {
                        id: a.id.clone(),
                        token: a.token.clone(),
                        error: e.message.clone(),
                        retry: e.retry,
                    });
                }
            }
        }
        // the calls still to acknowledge, and which script each one is
        let mut calls: Vec<crate::conn::Call> = Vec::new();
        let mut kinds: Vec<AckKind> = Vec::new();
        if !done.is_empty() {
            let req = ops::complete::Request {
                worker: &worker,
                busy: busy_done,
                items: done,
            };
            calls.push(req.call(queue.keys()));
            kinds.push(AckKind::Complete);
        }
        if !failed.is_empty() {
            calls.push(queue.fail_request(&worker, busy_failed, &failed).call(queue.keys()));
            kinds.push(AckKind::Fail);
        }
        // Acks are idempotent (a repeat is refused as stale), so retrying is safe; permits stay
        // held meanwhile, which stops new claims (backpressure). Past two lease durations the
        // leases are gone anyway: give up, the tasks run again elsewhere.
        let give_up = std::time::Instant::now() + queue.settings().lease * 2;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        while !calls.is_empty() {
            let mut retry: Vec<usize> = Vec::new();
            match queue.conn().eval_pipeline(&calls, queue.name()).await {
                Ok(results) => {
                    for (i, r) in results.into_iter().enumerate() {
                        match r {
                            Err(e) if e.is_transient() => {
                                tracing::warn!(error = %e, "acknowledgement failed; retrying");
                                retry.push(i);
                            }
                            r => count_acks(&queue, r, &stats, kinds[i]),
                        }
                    }
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, n = batch.len(), "acknowledgement failed; retrying");
                    retry = (0..calls.len()).collect();
                }
                Err(e) => {
                    tracing::error!(error = %e, n = batch.len(), "acknowledgement refused; the leases will expire and the tasks run again");
                }
            }
            if retry.is_empty() {
                break;
            }
            if std::time::Instant::now() >= give_up {
                tracing::error!(n = batch.len(), "acknowledgements still failing after two lease durations: giving up, the tasks will run again");
                break;
            }
            let keep: std::collections::HashSet<usize> = retry.into_iter().collect();
            let mut i = 0;
            calls.retain(|_| {
                i += 1;
                keep.contains(&(i - 1))
            });
            let mut j = 0;
            kinds.retain(|_| {
                j += 1;
                keep.contains(&(j - 1))
            });
            tokio::time::sleep(backoff.next_delay()).await;
        }
        {
            let mut map = inflight.lock().unwrap();
            for a in &batch {
                if map.get(&a.id).is_some_and(|f| f.token == a.token) {
                    map.remove(&a.id);
                }
            }
        }
        batch.clear(); // drops the permits: the claim loop may take more
    }
}

/// Which acknowledgement script a pipelined call runs.
#[derive(Clone, Copy)]
enum AckKind {
    Complete,
    Fail,
}

fn count_acks(queue: &Queue, r: Result<redis::Value>, stats: &WorkerStats, kind: AckKind) {
    let v = match r {
        Ok(v) => v,
        Err(e) => {
            // Not transient (those were retried): a refused argument is a bug, not bad luck.
            tracing::error!(error = %e, "acknowledgement refused; the leases will expire and the tasks run again");
            return;
        }
    };
    let (ok, stale) = match kind {
        AckKind::Complete => match queue.decode::<ops::complete::Request>(v) {
            Ok(s) => {
                let stale = s.iter().filter(|c| **c == ops::complete::Completed::Stale).count();
                (s.len() - stale, stale)
            }
            Err(e) => return tracing::error!(error = %e, "bad acknowledgement reply"),
        },
        AckKind::Fail => match queue.decode::<ops::fail::Request>(v) {
            Ok(s) => {
                let stale = s.iter().filter(|f| **f == FailStatus::Stale).count();
                (s.len() - stale, stale)
            }
            Err(e) => return tracing::error!(error = %e, "bad acknowledgement reply"),
        },
    };
    stats.stale.fetch_add(stale as u64, Ordering::Relaxed);
    let counter = match kind {
        AckKind::Complete => &stats.completed,
        AckKind::Fail => &stats.failed,
    };
    counter.fetch_add(ok as u64, Ordering::Relaxed);
}

async fn heartbeat_loop(
    queue: Queue,
    worker: String,
    info: serde_json::Value,
    leaving: CancellationToken,
    inflight: InFlightMap,
    stats: Arc<WorkerStats>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(queue.settings().heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let held: Vec<LeaseRef> = inflight
            .lock()
            .unwrap()
            .iter()
            .map(|(id, f)| LeaseRef::new(id, &f.token))
            .collect();
        // sent even with no lease: it is also the worker's liveness in the registry
        match queue.heartbeat(&worker, &held).await {
            Ok(hb) => {
                if !hb.registered && !leaving.is_cancelled() {
                    tracing::warn!(worker = %worker, "not in the registry (pruned after a long silence?): registering again");
                    if let Err(e) = queue.register(&worker, &info).await {
                        tracing::warn!(worker = %worker, error = %e, "register failed; will retry");
                    }
                }
                let mut map = inflight.lock().unwrap();
                for (LeaseRef { id, token }, s) in held.iter().zip(hb.statuses) {
                    if s == LeaseStatus::Renewed {
                        continue;
                    }
                    if let Some(f) = map.get(id).filter(|f| &f.token == token) {
                        if f.finished {
                            continue; // acknowledged meanwhile: the flusher will drop it
                        }
                        f.cancel.cancel();
                        map.remove(id);
                        stats.lost.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(worker = %worker, task = %id, status = ?s, "lease no longer held: handler stopped");
                    }
                }
            }
            Err(e) => tracing::warn!(worker = %worker, error = %e, "heartbeat failed; will retry"),
        }
    }
}

/// Forwards wake-ups from the queue's channel (resubscribing after a lost connection).
async fn wake_listener(
    queue: Queue,
    me: String,
    mut sub: Subscription,
    claim: Arc<Notify>,
    maint: Arc<Notify>,
    stop: CancellationToken,
) {
    let push = queue.settings().dispatch == DispatchMode::Push;
    while let Some(signal) = sub.next(&stop).await {
        match signal {
            // pull workers wake on "p" (pending became non-empty), push workers on "a:<their
            // id>" (tasks assigned to them)
            Signal::Message(m) => match (m.get_payload_bytes(), push) {
                (b"d", _) => maint.notify_one(),
                (b"p", false) => claim.notify_one(),
                (a, true) if a.strip_prefix(b"a:") == Some(me.as_bytes()) => claim.notify_one(),
                _ => {}
            },
            // Anything may have happened while disconnected.
            Signal::Subscribed => {
                claim.notify_one();
                maint.notify_one();
            }
        }
    }
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
