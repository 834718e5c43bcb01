//! `lua/fail.lua`: report up to 1000 failed attempts, each proven by its lease; each is retried
//! after its backoff or moved to the dead-letter set.

use super::reply::int;
use super::{ms, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};
use std::time::Duration;

/// One fail call.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub worker: &'a str,
    /// How long a task that dies is kept in the dead-letter set.
    pub dead_ttl: Duration,
    /// Time the handlers of these attempts ran, in total (worker statistics).
    pub busy: Duration,
    pub items: Vec<Failure<'a>>,
}

/// One failed attempt.
#[derive(Clone, Copy, Debug)]
pub struct Failure<'a> {
    pub id: &'a str,
    pub token: &'a str,
    pub error: &'a str,
    pub mode: FailMode,
}

/// Retry the task if attempts are left, or end it now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FailMode {
    /// Retry after the task's backoff; the jitter share drawn is this random number in
    /// [0, 1) (made here: `math.random` inside Redis is not random).
    Retry { jitter_draw: f64 },
    /// Dead now, whatever attempts are left.
    Final,
}

impl FailMode {
    /// A retry with a fresh random jitter draw.
    pub fn retry() -> FailMode {
        FailMode::Retry {
            jitter_draw: fastrand::f64(),
        }
    }
}

impl Op for Request<'_> {
    const SCRIPT: ScriptName = ScriptName::Fail;
    type Reply = Vec<FailStatus>;

    fn push_args(&self, call: &mut Call) {
        call.named("worker", self.worker)
            .named("dead_ttl_ms", ms(self.dead_ttl).max(1))
            .named("busy_ms", ms(self.busy));
        for f in &self.items {
            let mode = match f.mode {
                FailMode::Retry { jitter_draw } => format!("r:{:.6}", jitter_draw.clamp(0.0, 0.999999)),
                FailMode::Final => "final".into(),
            };
            call.named("id", f.id)
                .named("token", f.token)
                .named("error", f.error)
                .named("mode", mode);
        }
    }
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

impl FromRedisValue for FailStatus {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Self::from_redis_value_ref(&v)
    }

    fn from_redis_value_ref(v: &Value) -> Result<Self, ParsingError> {
        Ok(match int(v)? {
            1 => FailStatus::Retrying,
            2 => FailStatus::Dead,
            _ => FailStatus::Stale,
        })
    }
}
