//! `lua/start.lua`: a worker marks the runs it has started (every lease up to a token, less the
//! gaps it never received).

use super::reply::int;
use super::{bounds, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;

/// One start mark: every lease of `worker` with a fencing token up to `token` has started,
/// except tokens strictly inside a gap `(lo, hi)` (a claim or take whose reply was lost).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub worker: &'a str,
    pub token: u64,
    /// At most [`MAX_GAPS`] per call.
    pub gaps: &'a [(u64, u64)],
}

/// Most gaps one call carries (and the queue keeps per worker).
pub const MAX_GAPS: usize = bounds::start::GROUPS.max as usize;

impl Op for Request<'_> {
    const SCRIPT: ScriptName = ScriptName::Start;
    /// The worker's mark after the call (never lower than before).
    type Reply = StartMark;

    fn push_args(&self, call: &mut Call) {
        call.named("worker", self.worker).named("token", self.token);
        for (lo, hi) in self.gaps.iter().take(MAX_GAPS) {
            call.named("lo", lo).named("hi", hi);
        }
    }
}

/// The start mark Redis holds for a worker after the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartMark(pub u64);

impl redis::FromRedisValue for StartMark {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        Ok(StartMark(int(&v)? as u64))
    }
}
