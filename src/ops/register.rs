//! `lua/register.lua`: add (or refresh) a worker in the registry.

use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;

/// One register call.
#[derive(Clone, Debug)]
pub struct Request {
    pub worker: String,
    /// The worker's JSON description (capacity and weight are read by push dispatch).
    pub info: serde_json::Value,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Register;
    type Reply = ();

    fn push_args(&self, call: &mut Call) {
        call.named("worker", &self.worker)
            .named("info", self.info.to_string());
    }
}
