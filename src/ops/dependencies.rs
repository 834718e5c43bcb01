//! `lua/dependencies.lua`: a task's dependencies, how each ended and what it left, in one call.

use super::reply::{bytes, flat_refs, groups, string};
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use crate::task::{split3, State};
use redis::{FromRedisValue, ParsingError, Value};

/// One dependencies call.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: String,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Dependencies;
    type Reply = Vec<Dependency>;

    fn push_args(&self, call: &mut Call) {
        call.named("id", &self.id);
    }
}

/// One dependency of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub id: String,
    /// Done, dead or cancelled; `Waiting` while it has not finished.
    pub state: State,
    /// Its result when done (empty when none, or no longer kept).
    pub result: Vec<u8>,
    /// Its last error message when dead or cancelled (`None` when no longer kept).
    pub error: Option<String>,
}

impl FromRedisValue for Dependency {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Err(format!("dependencies replies a flat array of 3 values per dependency, not {v:?}").into())
    }

    fn from_redis_values(values: Vec<Value>) -> Result<Vec<Self>, ParsingError> {
        groups::<3>(values, "dependencies")?
            .into_iter()
            .map(|[id, state, out]| {
                let state_s = string(state)?;
                let state = State::parse(&state_s)
                    .ok_or_else(|| format!("dependencies: unknown state {state_s:?}"))?;
                let out = bytes(out)?;
                let (result, error) = match state {
                    State::Done => (out, None),
                    State::Dead | State::Cancelled => (
                        Vec::new(),
                        split3(&out).map(|(_, _, m)| String::from_utf8_lossy(m).into_owned()),
                    ),
                    _ => (Vec::new(), None),
                };
                Ok(Dependency {
                    id: string(id)?,
                    state,
                    result,
                    error,
                })
            })
            .collect()
    }

    flat_refs!();
}
