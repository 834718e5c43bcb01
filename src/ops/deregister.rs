//! `lua/deregister.lua`: a worker leaves push dispatch, then the registry.

use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;

/// One deregister call.
#[derive(Clone, Debug)]
pub struct Request {
    pub worker: String,
    pub mode: Leave,
}

/// The two steps of leaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leave {
    /// Shutdown begins: no more push assignments; hand back up to 1000 assigned tasks not taken
    /// yet (not counted as attempts). Replies how many were handed back.
    Assignments,
    /// After the last lease ended: drop the worker from the registry. Replies 1 if it was there.
    Registry,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Deregister;
    type Reply = u64;

    fn push_args(&self, call: &mut Call) {
        call.named("worker", &self.worker).named(
            "mode",
            match self.mode {
                Leave::Assignments => "leave",
                Leave::Registry => "final",
            },
        );
    }
}
