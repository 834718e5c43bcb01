//! `lua/claim.lua`: a pull worker claims up to n pending tasks under a lease.

use super::reply::{bytes, flat_refs, groups, int, items, string};
use super::{ms, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;
use crate::task::Record;
use redis::{FromRedisValue, ParsingError, Value};
use std::time::Duration;

/// One claim call.
#[derive(Clone, Debug)]
pub struct Request {
    pub worker: String,
    /// At most this many tasks (1..=1000).
    pub n: usize,
    /// The lease's duration; the deadline is Redis TIME + lease.
    pub lease: Duration,
    /// How long a task found expired (never handed out) is kept in the dead-letter set.
    pub dead_ttl: Duration,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Claim;
    type Reply = Claims;

    fn push_args(&self, call: &mut Call) {
        call.named("worker", &self.worker)
            .named("n", self.n)
            .named("lease_ms", ms(self.lease))
            .named("dead_ttl_ms", ms(self.dead_ttl).max(1));
    }
}

/// A task claimed by a worker, with its lease (also the reply of `take`).
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: String,
    pub token: String,
    /// 1 for the first attempt (of the budget since the last requeue).
    pub attempt: u32,
    /// The run's number over the task's whole life: never reset, unique per run.
    pub run: u32,
    pub deadline_ms: u64,
    pub record: Record,
}

/// The reply of claim (and take): the tasks handed out, and whether the queue's limits held
/// the call back while tasks were pending.
#[derive(Clone, Debug, Default)]
pub struct Claims {
    pub tasks: Vec<Claimed>,
    pub held: Option<Held>,
}

/// Why a claim handed out fewer tasks than asked while tasks were pending
/// (docs/flow-control.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// More may be handed out after this long: the queue's rate limit admits the next task then,
    /// or (fair queues) the first group parked by its cap is looked at again then — the end of
    /// one of its leases wakes the workers sooner.
    Wait(Duration),
    /// The queue's concurrency cap is full: the end of a lease wakes the workers (a `p` on the
    /// wake channel).
    Concurrency,
}

impl Held {
    /// The wait value of a claim or dispatch reply: ms to wait, or -1 under the cap.
    pub(crate) fn from_wait(v: i64) -> Held {
        if v < 0 {
            Held::Concurrency
        } else {
            Held::Wait(Duration::from_millis(v as u64))
        }
    }
}

impl FromRedisValue for Claims {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let mut items = items(v)?;
        let held = if items.len() % 4 == 1 {
            let last = items.pop().expect("one value");
            Some(Held::from_wait(int(&last)?))
        } else {
            None
        };
        Ok(Claims {
            tasks: Claimed::from_redis_values(items)?,
            held,
        })
    }
}

impl FromRedisValue for Claimed {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Err(format!("claim replies a flat array of (id, token, deadline, record), not {v:?}").into())
    }

    fn from_redis_values(items: Vec<Value>) -> Result<Vec<Self>, ParsingError> {
        groups::<4>(items, "claim")?
            .into_iter()
            .map(|[id, token, deadline, rec]| {
                let record = Record::parse(&bytes(rec)?).map_err(|e| ParsingError::from(e.to_string()))?;
                Ok(Claimed {
                    id: string(id)?,
                    token: string(token)?,
                    attempt: record.attempts_used + 1,
                    run: record.runs_ended + 1,
                    deadline_ms: int(&deadline)?.max(0) as u64,
                    record,
                })
            })
            .collect()
    }

    flat_refs!();
}
