//! `lua/reclaim.lua`: take back expired leases (retry or dead-letter the tasks), and prune
//! workers silent too long.

use super::reply::{count, due_in, exactly};
use super::{ms, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};
use std::time::Duration;

/// One reclaim call.
#[derive(Clone, Debug)]
pub struct Request {
    /// At most this many leases (1..=1000).
    pub limit: usize,
    /// How long a task that dies is kept in the dead-letter set.
    pub dead_ttl: Duration,
    /// Workers silent this long (and holding no lease) leave the registry.
    pub worker_ttl: Duration,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Reclaim;
    type Reply = Reclaimed;

    fn push_args(&self, call: &mut Call) {
        call.named("limit", self.limit)
            .named("dead_ttl_ms", ms(self.dead_ttl).max(1))
            .named("worker_ttl_ms", ms(self.worker_ttl).max(1));
    }
}

/// What one reclaim call did.
#[derive(Clone, Debug, Default)]
pub struct Reclaimed {
    pub requeued: u64,
    pub dead: u64,
    /// Time until the earliest remaining lease deadline, if any (by Redis' clock).
    pub next_in: Option<Duration>,
    /// The worker of each reclaimed lease.
    pub workers: Vec<String>,
    /// Workers dropped from the registry (silent, holding no lease).
    pub pruned_workers: Vec<String>,
}

impl FromRedisValue for Reclaimed {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let [requeued, dead, next, workers, pruned] = exactly(v, "reclaim")?;
        Ok(Reclaimed {
            requeued: count(&requeued)?,
            dead: count(&dead)?,
            next_in: due_in(&next)?,
            workers: Vec::<String>::from_redis_value(workers)?,
            pruned_workers: Vec::<String>::from_redis_value(pruned)?,
        })
    }
}
