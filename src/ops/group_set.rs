//! `lua/group_set.lua`: change a group's weight under fair queueing at run time.

use super::reply::count;
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};

/// One group_set call.
#[derive(Clone, Debug)]
pub struct Request {
    pub group: String,
    /// 1..=10000; 0 puts the group back to the default weight, 1.
    pub weight: u32,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::GroupSet;
    type Reply = Previous;

    fn push_args(&self, call: &mut Call) {
        call.named("group", &self.group).named("weight", self.weight);
    }
}

/// The weight the group had before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Previous(pub u64);

impl FromRedisValue for Previous {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Ok(Previous(count(&v)?))
    }
}
