//! `lua/outbox.lua`: read a queue's outbox (messages for other queues: dependencies across
//! queues), acknowledging the messages delivered.

use super::reply::{flat_refs, groups, int, string};
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};

/// One outbox call: acknowledge `delivered`, then read up to `limit` messages.
#[derive(Clone, Debug)]
pub struct Request {
    pub limit: usize,
    pub delivered: Vec<Message>,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Outbox;
    type Reply = Vec<Message>;

    fn push_args(&self, call: &mut Call) {
        call.named("limit", self.limit);
        for m in &self.delivered {
            call.named("message", &m.raw).named("seq", m.seq);
        }
    }
}

/// One message of an outbox, addressed to another queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// As the outbox holds it: "<target queue>|<kind>|<a>|<b>".
    pub raw: String,
    /// Its sequence: an acknowledgement removes it only while this is still its sequence.
    pub seq: i64,
}

impl Message {
    /// The queue the message is for, and the three fields `deliver` takes.
    pub fn parts(&self) -> Option<(&str, [&str; 3])> {
        let mut it = self.raw.splitn(4, '|');
        let target = it.next()?;
        Some((target, [it.next()?, it.next()?, it.next()?]))
    }
}

impl FromRedisValue for Message {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Err(format!("outbox replies a flat array of 2 values per message, not {v:?}").into())
    }

    fn from_redis_values(values: Vec<Value>) -> Result<Vec<Self>, ParsingError> {
        groups::<2>(values, "outbox")?
            .into_iter()
            .map(|[raw, seq]| {
                let seq = match &seq {
                    Value::Int(_) => int(&seq)?,
                    Value::Double(d) => *d as i64,
                    _ => string(seq)?
                        .parse()
                        .map_err(|e| format!("outbox: a sequence that is not a number: {e}"))?,
                };
                Ok(Message {
                    raw: string(raw)?,
                    seq,
                })
            })
            .collect()
    }

    flat_refs!();
}
