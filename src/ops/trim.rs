//! `lua/trim.lua`: the janitor drops finished tasks past their retention.

use super::reply::{count, exactly, int};
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};

/// One trim call.
#[derive(Clone, Debug)]
pub struct Request {
    /// At most this many tasks per terminal set (1..=1000).
    pub limit: usize,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Trim;
    type Reply = Trimmed;

    fn push_args(&self, call: &mut Call) {
        call.named("limit", self.limit);
    }
}

/// What one trim call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trimmed {
    pub dropped: u64,
    /// More are past their retention: call again.
    pub more: bool,
}

impl FromRedisValue for Trimmed {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let [dropped, more] = exactly(v, "trim")?;
        Ok(Trimmed {
            dropped: count(&dropped)?,
            more: int(&more)? == 1,
        })
    }
}
