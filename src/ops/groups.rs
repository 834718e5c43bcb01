//! `lua/groups.lua`: a queue's groups with their backlog, weight and place in the fair order.

use super::reply::{count, flat_refs, groups, string};
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
    /// The group's virtual time in the fair order (lowest is served next); `None` when it has no
    /// pending task.
    pub virtual_time: Option<f64>,
}

impl FromRedisValue for GroupInfo {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Err(format!("groups replies a flat array of (name, backlog, weight, virtual time), not {v:?}").into())
    }

    fn from_redis_values(values: Vec<Value>) -> Result<Vec<Self>, ParsingError> {
        groups::<4>(values, "groups")?
            .into_iter()
            .map(|[name, backlog, weight, vt]| {
                let vt = string(vt)?;
                Ok(GroupInfo {
                    name: string(name)?,
                    backlog: count(&backlog)?,
                    weight: count(&weight)?,
                    virtual_time: vt.parse().ok(),
                })
            })
            .collect()
    }

    flat_refs!();
}
