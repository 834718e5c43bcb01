//! What a task is: the spec a producer enqueues, the record Redis keeps, the state it is in.
//!
//! The record format (`used|base|strays|expires_ms|kind|prio|max_attempts|backoff|base_ms|cap_ms|jitter_pct|
//! timeout_ms|result_ttl_ms|created_ms|payload`) is part of the script contract (docs/contract.md): the
//! small header is parsed by Lua on the rare paths (fail, reclaim, promote) and by clients at
//! claim, while the payload stays raw bytes.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::time::Duration;

/// Retry backoff shape.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BackoffKind {
    Fixed,
    Exponential,
}

/// How tasks reach workers.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DispatchMode {
    /// Idle workers claim the highest-priority pending tasks themselves.
    #[default]
    Pull,
    /// The scheduler (and workers' maintenance) assign each task to a worker by `strategy`.
    Push,
}

/// Push dispatch strategy.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Uniformly at random among workers with free capacity.
    Random,
    /// Each live worker in turn.
    RoundRobin,
    /// Smooth weighted round-robin: worker i receives weight_i / sum of weights of the tasks.
    Weighted,
    /// The worker with the fewest tasks in flight (ties taken in turn).
    #[default]
    LeastConcurrency,
}

impl DispatchMode {
    /// The name the config and the configure script use.
    pub fn as_str(self) -> &'static str {
        match self {
            DispatchMode::Pull => "pull",
            DispatchMode::Push => "push",
        }
    }

    /// Parse a stored mode.
    pub fn parse(s: &str) -> Option<DispatchMode> {
        match s {
            "pull" => Some(DispatchMode::Pull),
            "push" => Some(DispatchMode::Push),
            _ => None,
        }
    }
}

impl BackoffKind {
    /// The code the record and the enqueue script use.
    pub fn code(self) -> &'static str {
        match self {
            BackoffKind::Fixed => "f",
            BackoffKind::Exponential => "e",
        }
    }
}

impl Strategy {
    /// The name the dispatch script takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::RoundRobin => "round-robin",
            Strategy::Weighted => "weighted",
            Strategy::LeastConcurrency => "least-concurrency",
        }
    }
}

/// Retry policy of a task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub kind: BackoffKind,
    /// First delay (fixed: every delay).
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
    /// Share of each delay removed at random, 0.0..=1.0.
    pub jitter: f64,
}

impl Backoff {
    /// Retry after the same delay every time.
    pub fn fixed(delay: Duration) -> Backoff {
        Backoff {
            kind: BackoffKind::Fixed,
            base: delay,
            cap: delay,
            jitter: 0.0,
        }
    }

    /// Double the delay each attempt from `base` up to `cap`.
    pub fn exponential(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            kind: BackoffKind::Exponential,
            base,
            cap,
            jitter: 0.0,
        }
    }

    /// Remove up to this share of each delay at random (0.0..=1.0).
    pub fn with_jitter(mut self, jitter: f64) -> Backoff {
        self.jitter = jitter;
        self
    }
}

/// A task to enqueue. Unset fields take the queue's configured defaults.
#[derive(Clone, Debug)]
pub struct TaskSpec {
    pub(crate) id: Option<String>,
    pub(crate) kind: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) priority: i32,
    pub(crate) delay: Duration,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) result_ttl: Option<Duration>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) idempotency_ttl: Option<Duration>,
    pub(crate) unique_key: Option<String>,
    pub(crate) debounce: Option<(String, Duration, Duration)>,
    pub(crate) expires_in: Option<Duration>,
    pub(crate) group: Option<String>,
    pub(crate) cost: u32,
    pub(crate) after: Vec<String>,
    pub(crate) on_failure: OnFailure,
    /// The flow or batch it joins, its name there, and the running task adding it.
    pub(crate) flow: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) spawned_by: Option<String>,
}

/// What a dependency that ended dead or cancelled does to the tasks waiting for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// The dependent is not run: it ends the same way (dead or cancelled), the reason naming
    /// the dependency, and so do its own dependents.
    #[default]
    Fail,
    /// The dependent runs anyway once every dependency has finished.
    Continue,
    /// The dependent runs as if the dependency had succeeded.
    Ignore,
}

impl OnFailure {
    /// The name the scripts and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Fail => "fail",
            OnFailure::Continue => "continue",
            OnFailure::Ignore => "ignore",
        }
    }

    /// Parse `fail`, `continue` or `ignore`.
    pub fn parse(s: &str) -> std::result::Result<OnFailure, String> {
        match s {
            "fail" => Ok(OnFailure::Fail),
            "continue" => Ok(OnFailure::Continue),
            "ignore" => Ok(OnFailure::Ignore),
            _ => Err(format!("{s:?}: write fail, continue or ignore")),
        }
    }
}

impl TaskSpec {
    /// A task of `kind` with raw payload bytes.
    pub fn new(kind: impl Into<String>, payload: impl Into<Vec<u8>>) -> TaskSpec {
        TaskSpec {
            id: None,
            kind: kind.into(),
            payload: payload.into(),
            priority: 0,
            delay: Duration::ZERO,
            max_attempts: None,
            backoff: None,
            timeout: None,
            result_ttl: None,
            idempotency_key: None,
            idempotency_ttl: None,
            unique_key: None,
            debounce: None,
            expires_in: None,
            group: None,
            cost: 1,
            after: Vec::new(),
            on_failure: OnFailure::Fail,
            flow: None,
            name: None,
            spawned_by: None,
        }
    }

    /// A task of `kind` whose payload is `value` serialized as JSON.
    pub fn json<T: serde::Serialize>(kind: impl Into<String>, value: &T) -> Result<TaskSpec> {
        let payload = serde_json::to_vec(value)
            .map_err(|e| Error::Invalid(format!("payload cannot be serialized as JSON: {e}")))?;
        Ok(TaskSpec::new(kind, payload))
    }

    /// Use this id instead of a generated one (a retried enqueue with the same id is a no-op).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// Higher runs first (-1000..=1000, default 0); FIFO within a priority.
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = p;
        self
    }
    /// Run no sooner than this delay from now (measured by Redis' clock).
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    /// Run no sooner than this time (converted to a delay with this machine's clock).
    pub fn run_at(mut self, t: std::time::SystemTime) -> Self {
        self.delay = t
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO);
        self
    }
    /// Attempts before the task goes to the dead-letter set.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Retry delays.
    pub fn backoff(mut self, b: Backoff) -> Self {
        self.backoff = Some(b);
        self
    }
    /// Execution timeout of one attempt (zero = none).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
    /// How long the result is kept after completion (zero = not kept).
    pub fn result_ttl(mut self, d: Duration) -> Self {
        self.result_ttl = Some(d);
        self
    }
    /// A repeated enqueue with the same key (within the window) returns the first task's id.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
    /// How long the idempotency key is remembered (default: the queue's `idempotency_ttl`).
    pub fn idempotency_ttl(mut self, d: Duration) -> Self {
        self.idempotency_ttl = Some(d);
        self
    }
    /// Throttle: at most one task per `key` per `window`; an enqueue with the same key within the
    /// window returns the first task's id. The same mechanism as an idempotency key
    /// (`throttle:<key>`, remembered for `window`), so it replaces any idempotency key set.
    pub fn throttle(self, key: impl AsRef<str>, window: Duration) -> Self {
        self.idempotency_key(format!("throttle:{}", key.as_ref()))
            .idempotency_ttl(window)
    }
    /// The task's group (tenant, customer, API key: 1-128 characters of `A-Z a-z 0-9 - _ . :`).
    /// On a queue with `fairness = "fair"`, claim and dispatch share the work between the
    /// groups that have some, by their weights (docs/flow-control.md). Unset: the group
    /// `default`.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }
    /// What the task counts for under the rate limits of its queue and group (default 1): a
    /// task of cost c takes the room of c tasks (an API call that spends 5 units of a quota:
    /// cost 5). A task costing more than a limit's burst goes when that limit is idle and is
    /// charged its whole cost. 1..=1,000,000.
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }
    /// Dependencies: the task waits (state `waiting`) until every one of these tasks has
    /// finished, then becomes pending, atomically in the call that finishes the last one (for a
    /// task of another queue, written `"<queue>/<id>"`, in the call that receives the hand-off
    /// from that queue's outbox). They must still be known (not past their retention), or come
    /// earlier in the same batch; a task with dependencies takes no delay. See
    /// docs/workflows.md.
    pub fn after<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.after = ids.into_iter().map(Into::into).collect();
        self
    }
    /// What a dependency that ended dead or cancelled does to this task (default `Fail`).
    pub fn on_failure(mut self, policy: OnFailure) -> Self {
        self.on_failure = policy;
        self
    }
    /// Expiry: no run of the task starts later than this after the enqueue (Redis' clock); a
    /// task still waiting then goes to the dead-letter set unrun, with the reason.
    pub fn expires_in(mut self, d: Duration) -> Self {
        self.expires_in = Some(d);
        self
    }
    /// Expiry at a wall-clock time (converted to `expires_in` with this machine's clock; a time
    /// already past expires the task at once).
    pub fn expires_at(mut self, t: std::time::SystemTime) -> Self {
        let d = t
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO);
        self.expires_in = Some(d.max(Duration::from_millis(1)));
        self
    }
    /// Debounce: the task runs `window` after the last enqueue with `key`; each enqueue with the
    /// key while the task is still waiting replaces its payload (its kind and policy stay the
    /// first's) and pushes its run time back, but never past `max_wait` after the first. Sets
    /// the delay (a delay given as well is refused).
    pub fn debounce(mut self, key: impl Into<String>, window: Duration, max_wait: Duration) -> Self {
        self.debounce = Some((key.into(), window, max_wait));
        self
    }
    /// Unique while active: while a task with this key is pending, delayed or running, an
    /// enqueue with the same key returns that task's id and adds nothing. Once it has finished
    /// (done, dead, cancelled, purged) the key is free again. Held at most the queue's
    /// `unique_ttl`.
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }
}

/// The state set a task is in. A task is in exactly one at any moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Pending,
    Delayed,
    /// Waiting for its dependencies (`TaskSpec::after`) to finish.
    Waiting,
    Leased,
    Done,
    Dead,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Delayed => "delayed",
            State::Waiting => "waiting",
            State::Leased => "leased",
            State::Done => "done",
            State::Dead => "dead",
            State::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<State> {
        Some(match s {
            "pending" => State::Pending,
            "delayed" => State::Delayed,
            "waiting" => State::Waiting,
            "leased" => State::Leased,
            "done" => State::Done,
            "dead" => State::Dead,
            "cancelled" => State::Cancelled,
            _ => return None,
        })
    }

    /// Done, dead or cancelled: the task will not run again unless requeued.
    pub fn is_final(self) -> bool {
        matches!(self, State::Done | State::Dead | State::Cancelled)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Strays a task may have in its life before an expired lease whose run never started is charged
/// like any other (`MAX_STRAYS` in `lua/include/record.lua`; a test checks they agree).
pub const MAX_STRAYS: u32 = 3;

/// The stored header and payload of a task.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Runs that ended without success (failed, lease expired, or leased and never started) over
    /// the task's whole life: never reset, so the next run is number `runs_ended + 1` and no two
    /// runs share a number.
    pub runs_ended: u32,
    /// Attempts of the current budget that ended without success: `runs_ended` less the runs
    /// not charged (those before the task was last requeued from the dead-letter set, and
    /// strays). The next attempt is `attempts_used + 1` of `max_attempts`.
    pub attempts_used: u32,
    /// Leases that expired before their run started (the worker died between claim and
    /// handler start): not charged as attempts, at most [`MAX_STRAYS`] in a task's life (past
    /// that they are charged).
    pub strays: u32,
    /// No run starts after this time (ms since the Unix epoch, Redis' clock): a task still
    /// waiting then goes to the dead-letter set unrun. None = never expires.
    pub expires_ms: Option<u64>,
    pub kind: String,
    pub priority: i32,
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Execution timeout (None = no timeout).
    pub timeout: Option<Duration>,
    pub result_ttl: Duration,
    /// Enqueue time, ms since the Unix epoch by Redis' clock.
    pub created_ms: u64,
    pub payload: Vec<u8>,
}

impl Record {
    /// Parse `used|base|strays|expires_ms|kind|prio|max_attempts|backoff|base_ms|cap_ms|jitter_pct|timeout_ms|result_ttl_ms|created_ms|payload`.
    pub fn parse(raw: &[u8]) -> Result<Record> {
        let bad = || {
            Error::Protocol(format!(
                "malformed task record {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(80)])
            ))
        };
        let mut parts = raw.splitn(15, |&b| b == b'|');
        let mut next = || parts.next().ok_or_else(bad);
        let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_string).map_err(|_| bad());
        let num = |b: &[u8]| -> Result<i64> { text(b)?.parse::<i64>().map_err(|_| bad()) };
        let runs_ended = num(next()?)? as u32;
        let base = num(next()?)? as u32;
        let attempts_used = runs_ended.checked_sub(base).ok_or_else(bad)?;
        let strays = num(next()?)? as u32;
        let expires_ms = num(next()?)? as u64;
        let kind = text(next()?)?;
        let priority = num(next()?)? as i32;
        let max_attempts = num(next()?)? as u32;
        let bkind = match next()? {
            b"f" => BackoffKind::Fixed,
            b"e" => BackoffKind::Exponential,
            _ => return Err(bad()),
        };
        let base = Duration::from_millis(num(next()?)? as u64);
        let cap = Duration::from_millis(num(next()?)? as u64);
        let jitter = num(next()?)? as f64 / 100.0;
        let timeout_ms = num(next()?)? as u64;
        let result_ttl = Duration::from_millis(num(next()?)? as u64);
        let created_ms = num(next()?)? as u64;
        let payload = next()?.to_vec();
        Ok(Record {
            runs_ended,
            attempts_used,
            strays,
            expires_ms: (expires_ms > 0).then_some(expires_ms),
            kind,
            priority,
            max_attempts,
            backoff: Backoff {
                kind: bkind,
                base,
                cap,
                jitter,
            },
            timeout: (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms)),
            result_ttl,
            created_ms,
            payload,
        })
    }
}

/// The last failure of a task.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The run that failed (see [`Record::runs_ended`]).
    pub run: u32,
    pub at_ms: u64,
    pub message: String,
}

/// A lease held on a task.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaseInfo {
    pub token: String,
    pub worker: String,
    pub attempt: u32,
    pub deadline_ms: u64,
}

/// Everything known about a task (from the `get` script).
#[derive(Clone, Debug)]
pub struct Task {
    pub id: String,
    pub queue: String,
    pub state: State,
    pub record: Record,
    /// Attempts started so far (since the last requeue from the dead-letter set).
    pub attempts: u32,
    pub lease: Option<LeaseInfo>,
    /// Delayed: when it becomes due (ms). Done/dead/cancelled: when it is dropped (ms).
    pub due_or_expiry_ms: Option<u64>,
    pub last_error: Option<Failure>,
    /// Present when done (and result_ttl > 0).
    pub result: Option<Vec<u8>>,
    /// When it finished (done), ms by Redis' clock.
    pub finished_ms: Option<u64>,
    /// The last progress a handler reported for it, if any.
    pub progress: Option<Progress>,
}

/// The last progress report of a task (kept until the task is dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// 0..=100.
    pub percent: u8,
    /// Empty when the report had none.
    pub message: String,
    /// When it was reported, ms by Redis' clock.
    pub at_ms: u64,
    /// Whether the run holding the lease now sent it (false: an earlier run did, or the task is
    /// not leased).
    pub current_run: bool,
}

impl Progress {
    /// Parse the stored "token|percent|at_ms|event_ms|message"; `lease_token` is the token of
    /// the lease held now, if any. None when nothing was reported (or the entry is malformed).
    pub fn parse(stored: &[u8], lease_token: Option<&str>) -> Option<Progress> {
        let s = String::from_utf8_lossy(stored);
        let mut p = s.splitn(5, '|');
        let (token, percent, at, _event, message) = (p.next()?, p.next()?, p.next()?, p.next()?, p.next()?);
        Some(Progress {
            percent: percent.parse().ok()?,
            message: message.to_string(),
            at_ms: at.parse().ok()?,
            current_run: lease_token == Some(token),
        })
    }
}

impl Task {
    /// Runs started over the task's whole life (attempts before requeues included).
    pub fn runs(&self) -> u32 {
        self.record.runs_ended + matches!(self.state, State::Leased | State::Done) as u32
    }

    /// The task as JSON (CLI `--json`, dashboard API). Payload and result are text when they
    /// are UTF-8 and base64 otherwise, as `payload_encoding` / `result_encoding` say: bytes are
    /// never altered on the way out.
    pub fn to_json(&self) -> serde_json::Value {
        let t = self;
        let (payload, payload_encoding) = bytes_json(&t.record.payload);
        let (result, result_encoding) = match &t.result {
            Some(r) => {
                let (v, e) = bytes_json(r);
                (Some(v), Some(e))
            }
            None => (None, None),
        };
        serde_json::json!({
            "id": t.id,
            "queue": t.queue,
            "state": t.state.as_str(),
            "kind": t.record.kind,
            "priority": t.record.priority,
            "attempts": t.attempts,
            "runs": t.runs(),
            "strays": t.record.strays,
            "max_attempts": t.record.max_attempts,
            "created_ms": t.record.created_ms,
            "expires_ms": t.record.expires_ms,
            "payload": payload,
            "payload_encoding": payload_encoding,
            "lease": t.lease.as_ref().map(|l| serde_json::json!({"worker": l.worker, "token": l.token, "deadline_ms": l.deadline_ms})),
            "due_or_expiry_ms": t.due_or_expiry_ms,
            "last_error": t.last_error.as_ref().map(|e| serde_json::json!({"run": e.run, "at_ms": e.at_ms, "message": e.message})),
            "result": result,
            "result_encoding": result_encoding,
            "finished_ms": t.finished_ms,
            "progress": t.progress.as_ref().map(|p| serde_json::json!({"percent": p.percent, "message": p.message, "at_ms": p.at_ms, "current_run": p.current_run})),
        })
    }
}

/// Bytes for JSON: the text when UTF-8, else base64; and which one it is.
fn bytes_json(b: &[u8]) -> (String, &'static str) {
    use base64::Engine;
    match std::str::from_utf8(b) {
        Ok(s) => (s.to_string(), "utf-8"),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(b), "base64"),
    }
}

/// Task counts of a queue by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub pending: u64,
    pub delayed: u64,
    pub leased: u64,
    pub done: u64,
    pub dead: u64,
    pub cancelled: u64,
    pub paused: bool,
    /// Workers in the registry.
    pub workers: u64,
    /// Tasks completed since the queue was created.
    pub completed_total: u64,
    /// Failed attempts since the queue was created.
    pub failed_total: u64,
    /// Tasks that went to the dead-letter set since the queue was created.
    pub dead_total: u64,
    /// Leases that expired and were reclaimed since the queue was created.
    pub expired_total: u64,
    /// Tasks enqueued (created, not idempotent repeats) since the queue was created.
    pub enqueued_total: u64,
    /// Failed attempts scheduled to run again since the queue was created.
    pub retried_total: u64,
    /// The queue's priority aging as stored in Redis, ms per priority step (0 = strict priority).
    pub aging_ms: u64,
    /// Tasks that expired (`expires_at`) before a run could start and went to the dead-letter
    /// set unrun (also counted in `dead_total`).
    pub lapsed_total: u64,
    /// The queue's rate limit as stored in Redis: µs between two tasks (0 = none).
    pub rate_interval_us: u64,
    /// The rate limit's burst.
    pub burst: u64,
    /// The queue's concurrency cap (0 = none).
    pub concurrency: u64,
    /// Leases whose deadline has not passed: what the concurrency cap counts.
    pub running: u64,
    /// The limit holding the queue back now (`"rate"` or `"concurrency"`), if any.
    pub held_by: Option<&'static str>,
    /// Claim and dispatch calls the rate limit cut short while tasks were pending.
    pub held_rate_total: u64,
    /// Claim and dispatch calls the concurrency cap cut short while tasks were pending.
    pub held_concurrency_total: u64,
    /// Times a group of a fair queue was parked by its own rate limit.
    pub held_group_rate_total: u64,
    /// Times a group of a fair queue was parked by its own concurrency cap.
    pub held_group_concurrency_total: u64,
    /// The queue's cap for each of its groups (0 = none; a group's own cap overrides it).
    pub group_concurrency: u64,
    /// The queue's rate limit for each of its groups: µs between two tasks (0 = none).
    pub group_rate_interval_us: u64,
    /// The burst of that rate limit.
    pub group_burst: u64,
    /// Tasks waiting for their dependencies.
    pub waiting: u64,
}

/// Split `a|b|rest` values ("run|at_ms|message"): the first two fields are numbers.
pub(crate) fn split3(raw: &[u8]) -> Option<(u64, u64, &[u8])> {
    let mut parts = raw.splitn(3, |&b| b == b'|');
    let a = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let b = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    Some((a, b, parts.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keeps_pipes_in_the_payload() {
        let r = Record::parse(b"5|3|1|1800000000000|echo|5|3|e|1000|60000|20|0|3600000|17|a|b|c").unwrap();
        assert_eq!(r.runs_ended, 5);
        assert_eq!(r.attempts_used, 2);
        assert_eq!(r.strays, 1);
        assert_eq!(r.expires_ms, Some(1800000000000));
        assert_eq!(r.kind, "echo");
        assert_eq!(r.priority, 5);
        assert_eq!(r.max_attempts, 3);
        assert_eq!(r.backoff.kind, BackoffKind::Exponential);
        assert_eq!(r.backoff.jitter, 0.2);
        assert_eq!(r.timeout, None);
        assert_eq!(r.payload, b"a|b|c");
    }

    #[test]
    fn json_keeps_bytes_that_are_not_utf8_as_base64() {
        let record = Record::parse(b"0|0|0|0|k|0|1|f|0|0|0|0|0|1|text").unwrap();
        let mut t = Task {
            id: "i".into(),
            queue: "q".into(),
            state: State::Done,
            record,
            attempts: 1,
            lease: None,
            due_or_expiry_ms: None,
            last_error: None,
            result: Some(vec![0xff, 0x00, b'a']),
            finished_ms: None,
            progress: None,
        };
        let j = t.to_json();
        assert_eq!(
            (j["payload"].as_str(), j["payload_encoding"].as_str()),
            (Some("text"), Some("utf-8"))
        );
        assert_eq!(
            (j["result"].as_str(), j["result_encoding"].as_str()),
            (Some("/wBh"), Some("base64"))
        );
        t.result = None;
        assert!(t.to_json()["result_encoding"].is_null());
    }

    #[test]
    fn malformed_records_are_errors() {
        assert!(Record::parse(b"echo|x").is_err());
        assert!(Record::parse(b"").is_err());
    }
}
