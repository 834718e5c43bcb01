//! `lua/take.lua`: a push worker takes up to n of the tasks dispatch assigned to it, under a
//! lease.

use super::claim::Claims;
use super::{ms, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;
use std::time::Duration;

/// One take call.
#[derive(Clone, Debug)]
pub struct Request {
    pub worker: String,
    /// At most this many tasks (1..=1000).
    pub n: usize,
    pub lease: Duration,
    /// How long a task found expired (never handed out) is kept in the dead-letter set.
    pub dead_ttl: Duration,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Take;
    type Reply = Claims;

    fn push_args(&self, call: &mut Call) {
        call.named("worker", &self.worker)
            .named("n", self.n)
            .named("lease_ms", ms(self.lease))
            .named("dead_ttl_ms", ms(self.dead_ttl).max(1));
    }
}
