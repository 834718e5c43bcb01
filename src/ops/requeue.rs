//! `lua/requeue.lua`: move dead tasks back to pending with fresh attempts.

use super::reply::{int, items};
use super::{DeadSelection, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};

/// One requeue call.
#[derive(Clone, Debug)]
pub struct Request {
    pub select: DeadSelection,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Requeue;
    type Reply = Requeued;

    fn push_args(&self, call: &mut Call) {
        self.select.push_args(call);
    }
}

/// How many dead tasks went back to pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requeued(pub u64);

impl FromRedisValue for Requeued {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let mut n = 0;
        for i in items(v)? {
            n += (int(&i)? == 1) as u64;
        }
        Ok(Requeued(n))
    }
}
