//! `lua/promote.lua`: move due delayed tasks to pending.

use super::reply::{count, due_in, exactly};
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};
use std::time::Duration;

/// One promote call.
#[derive(Clone, Debug)]
pub struct Request {
    /// At most this many tasks (1..=1000).
    pub limit: usize,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Promote;
    type Reply = Promoted;

    fn push_args(&self, call: &mut Call) {
        call.named("limit", self.limit);
    }
}

/// What one promote call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Promoted {
    pub promoted: u64,
    /// Time until the next delayed task is due, if any (by Redis' clock).
    pub next_in: Option<Duration>,
}

impl FromRedisValue for Promoted {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let [promoted, next] = exactly(v, "promote")?;
        Ok(Promoted {
            promoted: count(&promoted)?,
            next_in: due_in(&next)?,
        })
    }
}
