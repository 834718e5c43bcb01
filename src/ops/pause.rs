//! `lua/pause.lua`: pause or resume claiming (and dispatch) on a queue.

use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;

/// One pause call.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// True: pause; false: resume.
    pub paused: bool,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Pause;
    /// Whether the queue was paused before.
    type Reply = bool;

    fn push_args(&self, call: &mut Call) {
        call.named("paused", self.paused as u8);
    }
}
