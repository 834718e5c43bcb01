//! `lua/flow_status.lua`: a flow's state and counts, and a page of its members with their states.

use super::flow_open::CallbackEvent;
use super::flow_seal::FlowState;
use super::reply::{count, groups, int, items, string};
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use crate::task::State;
use redis::{FromRedisValue, ParsingError, Value};

/// One flow_status call.
#[derive(Clone, Debug)]
pub struct Request {
    pub flow: String,
    /// The first member of the page.
    pub start: u64,
    /// Members in the page (0: the summary only).
    pub count: u64,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::FlowStatus;
    type Reply = Found;

    fn push_args(&self, call: &mut Call) {
        call.named("flow", &self.flow)
            .named("start", self.start)
            .named("count", self.count);
    }
}

/// A flow's state, counts and (a page of) its members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStatus {
    pub state: FlowState,
    /// Submitted whole (its first tasks waited for the seal) rather than a batch.
    pub gated: bool,
    pub total: u64,
    pub done: u64,
    pub dead: u64,
    pub cancelled: u64,
    pub created_ms: u64,
    /// When it ended (0 while it has not).
    pub ended_ms: u64,
    /// The first member that ended dead.
    pub first_death: Option<String>,
    /// The callback tasks enqueued so far, by event.
    pub fired: Vec<(CallbackEvent, String)>,
    pub members: Vec<Member>,
}

/// One member of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    /// Its name in the flow (flows submitted whole name every task).
    pub name: Option<String>,
    /// None: no longer kept (past its retention).
    pub state: Option<State>,
}

/// The reply: None when there is no such flow (never opened, or ended and no longer kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found(pub Option<FlowStatus>);

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl FromRedisValue for Found {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let mut all = items(v)?;
        if all.is_empty() {
            return Ok(Found(None));
        }
        if all.len() < 12 {
            return Err(format!("flow_status: {} values, expected 12 or more", all.len()).into());
        }
        let rest = all.split_off(12);
        let mut it = all.into_iter();
        let mut next = || it.next().expect("12 values");
        let state = FlowState::parse(&string(next())?)?;
        let gated = int(&next())? == 1;
        let total = count(&next())?;
        let done = count(&next())?;
        let dead = count(&next())?;
        let cancelled = count(&next())?;
        let created_ms = string(next())?.parse().unwrap_or(0);
        let ended_ms = string(next())?.parse().unwrap_or(0);
        let first_death = opt(string(next())?);
        let mut fired = Vec::new();
        for e in CallbackEvent::ALL {
            if let Some(id) = opt(string(next())?) {
                fired.push((e, id));
            }
        }
        let members = groups::<3>(rest, "flow_status")?
            .into_iter()
            .map(|[id, name, st]| {
                Ok(Member {
                    id: string(id)?,
                    name: opt(string(name)?),
                    state: State::parse(&string(st)?),
                })
            })
            .collect::<Result<Vec<_>, ParsingError>>()?;
        Ok(Found(Some(FlowStatus {
            state,
            gated,
            total,
            done,
            dead,
            cancelled,
            created_ms,
            ended_ms,
            first_death,
            fired,
            members,
        })))
    }
}
