//! `lua/flow_join.lua`: count tasks of other queues as members of a flow of this queue, before
//! they are enqueued there.

use super::reply::count;
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;

/// One flow_join call: 1..=1000 members, each "<queue>/<id>" and its name ("" for none).
#[derive(Clone, Debug)]
pub struct Request {
    pub flow: String,
    pub members: Vec<(String, String)>,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::FlowJoin;
    /// How many joined in this call.
    type Reply = Joined;

    fn push_args(&self, call: &mut Call) {
        call.named("flow", &self.flow);
        for (m, name) in &self.members {
            call.named("member", m).named("name", name);
        }
    }
}

/// How many members the call counted (a retry counts none twice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Joined(pub u64);

impl redis::FromRedisValue for Joined {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        Ok(Joined(count(&v)?))
    }
}
