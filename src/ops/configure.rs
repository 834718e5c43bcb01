//! `lua/configure.lua`: store the queue settings the scripts read from Redis.

use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;

/// One configure call.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// Approximate cap of the events stream; 0 turns events off.
    pub events_max_len: u64,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Configure;
    type Reply = ();

    fn push_args(&self, call: &mut Call) {
        call.named("events_max_len", self.events_max_len);
    }
}
