//! `lua/heartbeat.lua`: a worker says it is alive and renews the leases it holds.

use super::reply::{int, items};
use super::{ms, LeaseRef, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};
use std::time::Duration;

/// One heartbeat call (at most 1000 leases; zero is a plain liveness beat). Borrows the leases:
/// a worker sends every one it holds each interval.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub worker: &'a str,
    pub lease: Duration,
    pub leases: &'a [LeaseRef],
}

impl Op for Request<'_> {
    const SCRIPT: ScriptName = ScriptName::Heartbeat;
    type Reply = Heartbeat;

    fn push_args(&self, call: &mut Call) {
        call.named("worker", self.worker)
            .named("lease_ms", ms(self.lease));
        for l in self.leases {
            call.named("id", &l.id).named("token", &l.token);
        }
    }
}

/// What happened to a heartbeated lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseStatus {
    Renewed,
    /// Expired and reclaimed, or the token is stale: stop the handler.
    Lost,
    /// The task was cancelled: stop the handler.
    Cancelled,
}

/// The reply to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// False when the worker is not in the registry (pruned as dead): register again.
    pub registered: bool,
    /// One status per lease sent.
    pub statuses: Vec<LeaseStatus>,
}

impl FromRedisValue for Heartbeat {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let items = items(v)?;
        let (first, rest) = items.split_first().ok_or("heartbeat: empty reply")?;
        Ok(Heartbeat {
            registered: int(first)? == 1,
            statuses: rest
                .iter()
                .map(|s| {
                    Ok(match int(s)? {
                        1 => LeaseStatus::Renewed,
                        2 => LeaseStatus::Cancelled,
                        _ => LeaseStatus::Lost,
                    })
                })
                .collect::<Result<_, ParsingError>>()?,
        })
    }
}
