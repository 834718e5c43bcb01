//! `lua/deliver.lua`: apply, on their target queue, messages other queues' outboxes hold for it.

use super::reply::{count, exactly};
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};

/// One deliver call: 1..=1000 messages, each the three fields after the target queue.
#[derive(Clone, Debug)]
pub struct Request {
    pub messages: Vec<[String; 3]>,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Deliver;
    type Reply = Delivered;

    fn push_args(&self, call: &mut Call) {
        for [kind, a, b] in &self.messages {
            call.named("kind", kind).named("a", a).named("b", b);
        }
    }
}

/// How many watches, settles and member ends the call applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub watches: u64,
    pub settles: u64,
    pub member_ends: u64,
}

impl FromRedisValue for Delivered {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let [w, s, f] = exactly::<3>(v, "deliver")?;
        Ok(Delivered {
            watches: count(&w)?,
            settles: count(&s)?,
            member_ends: count(&f)?,
        })
    }
}
