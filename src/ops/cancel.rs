//! `lua/cancel.lua`: cancel unfinished tasks (pending, delayed, leased or waiting for a worker).

use super::reply::string;
use super::{ms, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;
use crate::task::State;
use redis::{FromRedisValue, ParsingError, Value};
use std::time::Duration;

/// One cancel call (1..=1000 ids).
#[derive(Clone, Debug)]
pub struct Request {
    /// How long the cancelled tasks are kept.
    pub ttl: Duration,
    pub ids: Vec<String>,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Cancel;
    type Reply = Vec<CancelledFrom>;

    fn push_args(&self, call: &mut Call) {
        call.named("ttl_ms", ms(self.ttl).max(1));
        for id in &self.ids {
            call.named("id", id);
        }
    }
}

/// The state a task was cancelled from; `None`: not cancellable (unknown or already finished).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancelledFrom(pub Option<State>);

impl FromRedisValue for CancelledFrom {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Ok(CancelledFrom(State::parse(&string(v)?)))
    }
}
