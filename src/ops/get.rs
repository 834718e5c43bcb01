//! `lua/get.lua`: everything known about one task, read in one call.

use super::reply::{bytes, int, items, string};
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use crate::task::{split3, Failure, LeaseInfo, Progress, Record, State, Task};
use redis::{FromRedisValue, ParsingError, Value};

/// One get call.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: String,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Get;
    type Reply = Lookup;

    fn push_args(&self, call: &mut Call) {
        call.named("id", &self.id);
    }
}

/// The task's stored parts, or `None` when it is unknown or past its retention.
#[derive(Clone, Debug)]
pub struct Lookup(pub Option<Snapshot>);

/// A task as stored: its state, record, lease and outcome.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub state: State,
    pub record: Record,
    pub attempts: u32,
    /// "token|worker", empty when not leased.
    lease: String,
    /// The score in its state set: lease deadline, due time or expiry (ms).
    score: Option<f64>,
    /// "run|at_ms|message" of the last failure, empty if none.
    error: Vec<u8>,
    result: Vec<u8>,
    /// "token|percent|at_ms|event_ms|message" of the last progress report, empty if none.
    progress: Vec<u8>,
}

impl FromRedisValue for Lookup {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let items = items(v)?;
        if items.is_empty() {
            return Ok(Lookup(None));
        }
        let n = items.len();
        let [state, record, attempts, lease, score, error, result, progress]: [Value; 8] =
            items
                .try_into()
                .map_err(|_| ParsingError::from(format!("get: expected 8 elements, got {n}")))?;
        let state = string(state)?;
        Ok(Lookup(Some(Snapshot {
            state: State::parse(&state)
                .ok_or_else(|| ParsingError::from(format!("get: unknown state {state:?}")))?,
            record: Record::parse(&bytes(record)?).map_err(|e| ParsingError::from(e.to_string()))?,
            attempts: int(&attempts)?.max(0) as u32,
            lease: string(lease).unwrap_or_default(),
            score: string(score).ok().and_then(|s| s.parse().ok()),
            error: bytes(error).unwrap_or_default(),
            result: bytes(result).unwrap_or_default(),
            progress: bytes(progress).unwrap_or_default(),
        })))
    }
}

impl Snapshot {
    /// The public view of the task `id` of `queue`.
    pub fn into_task(self, id: &str, queue: &str) -> Result<Task, ParsingError> {
        let lease = match self.lease.split_once('|') {
            _ if self.lease.is_empty() => None,
            Some((token, worker)) => Some(LeaseInfo {
                token: token.into(),
                worker: worker.into(),
                attempt: self.attempts,
                deadline_ms: self.score.unwrap_or(0.0) as u64,
            }),
            None => return Err(format!("get: malformed lease {:?}", self.lease).into()),
        };
        let last_error = split3(&self.error).map(|(run, at, m)| Failure {
            run: run as u32,
            at_ms: at,
            message: String::from_utf8_lossy(m).into_owned(),
        });
        let progress = Progress::parse(&self.progress, lease.as_ref().map(|l| l.token.as_str()));
        let (result, finished_ms) = if self.state == State::Done {
            let expiry = self.score.unwrap_or(0.0) as u64;
            (
                Some(self.result),
                Some(expiry.saturating_sub(self.record.result_ttl.as_millis() as u64)),
            )
        } else {
            (None, None)
        };
        let due_or_expiry_ms = match self.state {
            State::Delayed | State::Done | State::Dead | State::Cancelled => self.score.map(|s| s as u64),
            _ => None,
        };
        Ok(Task {
            id: id.into(),
            queue: queue.into(),
            state: self.state,
            record: self.record,
            attempts: self.attempts,
            lease,
            due_or_expiry_ms,
            last_error,
            result,
            finished_ms,
            progress,
        })
    }
}
