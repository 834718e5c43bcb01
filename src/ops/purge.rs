//! `lua/purge.lua`: delete dead tasks now.

use super::{DeadSelection, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;

/// One purge call.
#[derive(Clone, Debug)]
pub struct Request {
    pub select: DeadSelection,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Purge;
    /// How many were deleted.
    type Reply = u64;

    fn push_args(&self, call: &mut Call) {
        self.select.push_args(call);
    }
}
