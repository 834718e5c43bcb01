//! `lua/groups.lua`: a queue's groups with their backlog, weight, limits and place in the fair
//! order.

use super::reply::{count, flat_refs, groups, int, string};
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};

/// One groups call.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// Most groups listed (1..=1000).
    pub limit: usize,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Groups;
    type Reply = Vec<GroupInfo>;

    fn push_args(&self, call: &mut Call) {
        call.named("limit", self.limit);
    }
}

/// One group of a queue.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GroupInfo {
    pub name: String,
    /// Pending tasks of the group (kept per group on a fair queue only; 0 on a fifo queue).
    pub backlog: u64,
    pub weight: u64,
    /// The group's virtual time in the fair order (lowest is served next); `None` when it is not
    /// ready (no pending task, or parked).
    pub virtual_time: Option<f64>,
    /// Its concurrency cap (its own, or the queue's group_concurrency); `None`: no cap.
    pub concurrency: Option<u64>,
    /// Its live leases (counted when it has a cap).
    pub running: u64,
    /// Parked by a limit of its own: Redis ms when it is looked at again at the latest (for a
    /// cap, the end of one of its leases readies it sooner).
    pub parked_until_ms: Option<u64>,
    /// Its rate limit (its own, or the queue's group_rate) as µs between two tasks; `None`: none.
    pub rate_interval_us: Option<u64>,
    /// The burst of that rate limit.
    pub burst: u64,
    /// The limit that parked it (`"group_rate"` or `"group_concurrency"`), while parked.
    pub held_by: Option<String>,
}

impl FromRedisValue for GroupInfo {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Err(format!("groups replies a flat array of 10 values per group, not {v:?}").into())
    }

    fn from_redis_values(values: Vec<Value>) -> Result<Vec<Self>, ParsingError> {
        groups::<10>(values, "groups")?
            .into_iter()
            .map(
                |[name, backlog, weight, vt, cap, running, parked, rate, burst, held]| {
                    let vt = string(vt)?;
                    let cap = int(&cap)?;
                    let parked = int(&parked)?;
                    let rate = int(&rate)?;
                    let held = string(held)?;
                    Ok(GroupInfo {
                        name: string(name)?,
                        backlog: count(&backlog)?,
                        weight: count(&weight)?,
                        virtual_time: vt.parse().ok(),
                        concurrency: (cap >= 0).then_some(cap as u64),
                        running: count(&running)?,
                        parked_until_ms: (parked > 0).then_some(parked as u64),
                        rate_interval_us: (rate > 0).then_some(rate as u64),
                        burst: count(&burst)?,
                        held_by: (!held.is_empty()).then_some(held),
                    })
                },
            )
            .collect()
    }

    flat_refs!();
}
