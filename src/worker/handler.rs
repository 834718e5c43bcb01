//! What a task handler is: the trait, the context it receives, and how it reports failure.
//!
//! A handler is any `Fn(TaskContext) -> Future<Output = Result<Vec<u8>, HandlerError>>`; the
//! returned bytes become the task's result. `HandlerError::retry` lets the task's retry policy
//! decide; `HandlerError::fatal` sends it to the dead-letter set at once.

use crate::client::{ProgressAck, Queue};
use crate::ops::LeaseRef;
use futures_util::future::BoxFuture;
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// Largest result a handler of baton-worker may return (exec stdout, http body): larger output is
/// refused while it is read, never buffered whole.
#[cfg(feature = "services")]
pub(crate) const MAX_RESULT: usize = 16 << 20;

/// The task as a handler sees it.
#[derive(Clone, Debug)]
pub struct TaskContext {
    pub id: String,
    pub queue: String,
    pub kind: String,
    pub payload: Vec<u8>,
    /// 1 for the first try (of the attempts given since the task was last requeued from the
    /// dead-letter set).
    pub attempt: u32,
    /// This run's number over the task's whole life: never reset by a requeue, so it tells
    /// runs apart (it equals `attempt` for a task never requeued). Events name runs by it.
    pub run: u32,
    pub max_attempts: u32,
    /// When the task was enqueued, ms since the Unix epoch (Redis' clock).
    pub enqueued_ms: u64,
    /// Fires when the lease is lost, the task is cancelled, or shutdown gives up waiting:
    /// long handlers should watch it and stop (the handler's future is dropped anyway).
    pub cancelled: CancellationToken,
    /// Where progress reports go: this run's lease on its queue.
    pub(crate) reporter: Reporter,
}

/// What a context needs to report progress under its lease.
#[derive(Clone)]
pub(crate) struct Reporter {
    pub queue: Queue,
    pub worker: String,
    pub lease: LeaseRef,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Reporter({} on {} by {})",
            self.lease.id,
            self.queue.name(),
            self.worker
        )
    }
}

impl TaskContext {
    /// Report how far this run got: `percent` (0..=100; more is clamped) and an optional short
    /// `message` (cut to 200 bytes). One Redis call, under this run's fencing token: `baton
    /// status`, the dashboard and `get` show the last report, and a `progress` event announces
    /// it (at most one per task per 500 ms; later reports inside that window are stored, not
    /// announced). Report when something changed, not in a tight loop: every call is a round
    /// trip.
    ///
    /// [`ProgressAck::Stale`] (this run lost its lease: reclaimed after expiry, or acknowledged
    /// already) and [`ProgressAck::Cancelled`] also fire [`TaskContext::cancelled`]: stop, the
    /// run's result would be refused anyway.
    pub async fn progress(&self, percent: u8, message: &str) -> crate::Result<ProgressAck> {
        let r = &self.reporter;
        let ack = r.queue.progress(&r.worker, &r.lease, percent, message).await?;
        if ack != ProgressAck::Stored {
            self.cancelled.cancel();
        }
        Ok(ack)
    }

    /// This task's dependencies (`TaskSpec::after`) with how each ended and its result (when
    /// done) or last error (when dead or cancelled: under `OnFailure::Continue` the task runs
    /// anyway and can see which failed), read in one call whatever their number.
    pub async fn dependencies(&self) -> crate::Result<Vec<crate::ops::dependencies::Dependency>> {
        self.reporter.queue.dependencies(&self.id).await
    }

    /// Dynamic fan-out: enqueue `specs` as children of this task while it runs. They join its
    /// flow or batch (if any), and every task waiting for this one waits for them too, so a
    /// join or a batch callback cannot fire before they finish. Give them ids if this handler
    /// may run again after a lost lease (enqueue by id is idempotent).
    pub async fn spawn(&self, specs: Vec<crate::TaskSpec>) -> crate::Result<Vec<crate::Enqueued>> {
        let specs = specs.into_iter().map(|s| s.spawned_by(self.id.clone())).collect();
        self.reporter.queue.enqueue_batch(specs).await
    }

    /// This run's fencing token (as claim or take handed it out).
    pub fn token(&self) -> &str {
        &self.reporter.lease.token
    }

    /// The payload parsed as JSON; a malformed payload is a fatal error (retrying won't fix it).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_slice(&self.payload).map_err(|e| {
            HandlerError::fatal(format!(
                "payload of task {} ({}) is not the JSON this handler expects: {e}",
                self.id, self.kind
            ))
        })
    }
}

/// A failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerError {
    pub message: String,
    /// False: no more attempts, dead now.
    pub retry: bool,
}

impl HandlerError {
    /// A failure the retry policy handles (retried while attempts are left).
    pub fn retry(message: impl Into<String>) -> HandlerError {
        HandlerError {
            message: message.into(),
            retry: true,
        }
    }
    /// A failure retrying cannot fix: the task goes to the dead-letter set now.
    pub fn fatal(message: impl Into<String>) -> HandlerError {
        HandlerError {
            message: message.into(),
            retry: false,
        }
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for HandlerError {
    fn from(s: String) -> Self {
        HandlerError::retry(s)
    }
}
impl From<&str> for HandlerError {
    fn from(s: &str) -> Self {
        HandlerError::retry(s)
    }
}
impl From<std::io::Error> for HandlerError {
    fn from(e: std::io::Error) -> Self {
        HandlerError::retry(e.to_string())
    }
}

/// Result of one handler run.
pub type HandlerResult = Result<Vec<u8>, HandlerError>;

/// Runs tasks of one kind.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, task: TaskContext) -> BoxFuture<'static, HandlerResult>;
}

impl<F, Fut> Handler for F
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(&self, task: TaskContext) -> BoxFuture<'static, HandlerResult> {
        Box::pin((self)(task))
    }
}
