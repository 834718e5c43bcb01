//! `lua/configure.lua`: store the queue settings the scripts read from Redis.

use super::reply::string;
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use crate::task::DispatchMode;
use redis::{FromRedisValue, ParsingError, Value};

/// One configure call.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// Approximate cap of the events stream; 0 turns events off.
    pub events_max_len: u64,
    /// How tasks reach workers: in pull mode dispatch assigns nothing and take claims.
    pub dispatch: DispatchMode,
    /// Priority aging in ms per priority step; 0 = strict priority.
    pub aging_ms: u64,
    /// Rate limit: µs between two tasks at the sustained rate; 0 = none.
    pub rate_interval_us: u64,
    /// Tasks the rate lets go at once after an idle spell (at least 1).
    pub burst: u32,
    /// Most leases alive at once on the queue; 0 = no cap.
    pub concurrency: u32,
    /// fifo or fair (across groups).
    pub fairness: crate::flow::Fairness,
    /// On a fair queue, most leases alive per group; 0 = none.
    pub group_concurrency: u32,
    /// On a fair queue, every group's rate limit: µs between two of its tasks; 0 = none.
    pub group_rate_interval_us: u64,
    /// The burst of the groups' rate limits (at least 1).
    pub group_burst: u32,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Configure;
    type Reply = Previous;

    fn push_args(&self, call: &mut Call) {
        call.named("events_max_len", self.events_max_len)
            .named("dispatch", self.dispatch.as_str())
            .named("aging_ms", self.aging_ms)
            .named("rate_interval_us", self.rate_interval_us)
            .named("burst", self.burst)
            .named("concurrency", self.concurrency)
            .named("fairness", self.fairness.as_str())
            .named("group_concurrency", self.group_concurrency)
            .named("group_rate_interval_us", self.group_rate_interval_us)
            .named("group_burst", self.group_burst);
    }
}

/// The dispatch mode the queue had before (`None` for a new queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Previous(pub Option<DispatchMode>);

impl FromRedisValue for Previous {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Ok(Previous(DispatchMode::parse(&string(v)?)))
    }
}
