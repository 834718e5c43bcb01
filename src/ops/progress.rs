//! `lua/progress.lua`: a running handler reports how far it got, under its lease's token.

use super::reply::int;
use super::{bounds, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;

/// Longest progress message the script stores, in bytes.
pub const MAX_MESSAGE: usize = bounds::progress::MESSAGE.max as usize;

/// One progress report. `percent` is 0..=100 and `message` at most [`MAX_MESSAGE`] bytes; the
/// script refuses anything else (the callers clamp and cut first).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub worker: &'a str,
    pub id: &'a str,
    pub token: &'a str,
    pub percent: u8,
    pub message: &'a str,
}

impl Op for Request<'_> {
    const SCRIPT: ScriptName = ScriptName::Progress;
    type Reply = ProgressAck;

    fn push_args(&self, call: &mut Call) {
        call.named("worker", self.worker)
            .named("id", self.id)
            .named("token", self.token)
            .named("percent", self.percent)
            .named("message", self.message);
    }
}

/// What Redis did with a progress report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressAck {
    /// Stored (and announced as a `progress` event unless one went out for the task less than
    /// the manifest's `progress_min_interval_ms` ago).
    Stored,
    /// This run no longer holds the lease (reclaimed, acknowledged, another worker's): refused,
    /// nothing changed. The handler should stop; its result will be refused too.
    Stale,
    /// The task was cancelled: the handler should stop.
    Cancelled,
}

impl redis::FromRedisValue for ProgressAck {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        Ok(match int(&v)? {
            1 => ProgressAck::Stored,
            2 => ProgressAck::Cancelled,
            _ => ProgressAck::Stale,
        })
    }
}

/// Cut `message` to at most [`MAX_MESSAGE`] bytes at a character boundary.
pub fn cut_message(message: &str) -> &str {
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}
