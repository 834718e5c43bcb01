//! `lua/complete.lua`: acknowledge up to 1000 successful attempts, each proven by its lease.

use super::reply::int;
use super::{ms, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};
use std::time::Duration;

/// One complete call. Borrows the results: acknowledgements are the hot path.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub worker: &'a str,
    /// Time the handlers of these attempts ran, in total (worker statistics).
    pub busy: Duration,
    pub items: Vec<Completion<'a>>,
}

/// One successful attempt.
#[derive(Clone, Copy, Debug)]
pub struct Completion<'a> {
    pub id: &'a str,
    pub token: &'a str,
    /// How long the result (and the finished task) is kept; the worker got it at claim.
    pub result_ttl: Duration,
    pub result: &'a [u8],
}

impl Op for Request<'_> {
    const SCRIPT: ScriptName = ScriptName::Complete;
    type Reply = Vec<Completed>;

    fn push_args(&self, call: &mut Call) {
        call.named("worker", self.worker).named("busy_ms", ms(self.busy));
        for c in &self.items {
            call.named("id", c.id)
                .named("token", c.token)
                .named("result_ttl_ms", ms(c.result_ttl))
                .named("result", c.result);
        }
    }
}

/// The fate of one acknowledged success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completed {
    Done,
    /// The lease was not held any more (expired and reclaimed, or cancelled): nothing changed.
    Stale,
}

impl FromRedisValue for Completed {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Self::from_redis_value_ref(&v)
    }

    fn from_redis_value_ref(v: &Value) -> Result<Self, ParsingError> {
        Ok(match int(v)? {
            1 => Completed::Done,
            _ => Completed::Stale,
        })
    }
}
