//! `lua/group_set.lua`: change a group's weight, concurrency cap, rate limit or burst under fair
//! queueing at run time, or reset them all.

use super::reply::{exactly, int};
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};

/// What one group_set call changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Shares of the workers among the groups with pending tasks (1..=[`crate::flow::GROUP_WEIGHT_MAX`]).
    Weight(u32),
    /// The group's own cap on live leases (0: none, even under the queue's group_concurrency).
    Concurrency(u32),
    /// The group's own rate limit as µs between two of its tasks (0: none, even under the
    /// queue's group_rate).
    RateIntervalUs(u64),
    /// The burst of the group's own rate limit (1..).
    Burst(u32),
    /// Back to weight 1 and the queue's group_concurrency, group_rate and group_burst.
    Reset,
}

/// One group_set call.
#[derive(Clone, Debug)]
pub struct Request {
    pub group: String,
    pub change: Change,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::GroupSet;
    type Reply = Before;

    fn push_args(&self, call: &mut Call) {
        let (field, value) = match self.change {
            Change::Weight(w) => ("weight", w.into()),
            Change::Concurrency(c) => ("concurrency", c.into()),
            Change::RateIntervalUs(us) => ("rate", us),
            Change::Burst(b) => ("burst", b.into()),
            Change::Reset => ("reset", 0u64),
        };
        call.named("group", &self.group)
            .named("field", field)
            .named("value", value);
    }
}

/// The group's settings before the change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Before {
    pub weight: u64,
    /// Its own cap; `None` when it had none (the queue's group_concurrency applied).
    pub concurrency: Option<u64>,
    /// Its own rate as µs between two tasks; `None` when it had none (the queue's group_rate
    /// applied).
    pub rate_interval_us: Option<u64>,
    /// Its own burst; `None` when it had none.
    pub burst: Option<u64>,
}

impl FromRedisValue for Before {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let [w, c, r, b] = exactly(v, "group_set")?;
        let own = |v: &Value| int(v).map(|n| (n >= 0).then_some(n as u64));
        Ok(Before {
            weight: int(&w)?.max(0) as u64,
            concurrency: own(&c)?,
            rate_interval_us: own(&r)?,
            burst: own(&b)?,
        })
    }
}
