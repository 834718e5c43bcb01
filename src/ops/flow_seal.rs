//! `lua/flow_seal.lua`: seal a flow (release what waits for the seal, let callbacks fire) or
//! cancel it.

use super::reply::{exactly, string};
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};

/// One flow_seal call.
#[derive(Clone, Debug)]
pub struct Request {
    pub flow: String,
    /// False: seal; true: cancel.
    pub cancel: bool,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::FlowSeal;
    type Reply = Sealed;

    fn push_args(&self, call: &mut Call) {
        call.named("flow", &self.flow)
            .named("mode", if self.cancel { "cancel" } else { "seal" });
    }
}

/// The flow's state before and after the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub before: FlowState,
    pub after: FlowState,
}

/// Where a flow is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// Taking members; nothing waiting for the seal runs yet.
    Open,
    /// Closed to new members (but those its running tasks add); running.
    Sealed,
    /// Sealed and every member finished; callbacks fired.
    Complete,
    /// Cancelled: no callback fires.
    Cancelled,
}

impl FlowState {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::Open => "open",
            FlowState::Sealed => "sealed",
            FlowState::Complete => "complete",
            FlowState::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<FlowState, ParsingError> {
        Ok(match s {
            "open" => FlowState::Open,
            "sealed" => FlowState::Sealed,
            "complete" => FlowState::Complete,
            "cancelled" => FlowState::Cancelled,
            _ => return Err(format!("unknown flow state {s:?}").into()),
        })
    }
}

impl FromRedisValue for Sealed {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let [before, after] = exactly::<2>(v, "flow_seal")?;
        Ok(Sealed {
            before: FlowState::parse(&string(before)?)?,
            after: FlowState::parse(&string(after)?)?,
        })
    }
}
