//! `lua/dispatch.lua`: push mode assigns pending tasks to live workers by a strategy, each
//! under a lease, atomically with the choice.

use super::reply::{count, items, string};
use super::{ms, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;
use crate::task::Strategy;
use redis::{FromRedisValue, ParsingError, Value};
use std::time::Duration;

/// One dispatch call.
#[derive(Clone, Debug)]
pub struct Request {
    pub strategy: Strategy,
    /// At most this many tasks (1..=1000).
    pub n: usize,
    pub lease: Duration,
    /// Workers count as live if they heartbeated within this long.
    pub alive: Duration,
    /// Random seed for the `random` strategy (made here: `math.random` in Redis is not random).
    pub seed: u32,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Dispatch;
    type Reply = Dispatched;

    fn push_args(&self, call: &mut Call) {
        let seed = super::bounds::dispatch::SEED;
        call.named("strategy", self.strategy.as_str())
            .named("n", self.n)
            .named("lease_ms", ms(self.lease))
            .named("alive_ms", ms(self.alive).max(1))
            .named("seed", (self.seed as i64).clamp(seed.min, seed.max));
    }
}

/// A seed the script accepts, drawn at random.
pub fn random_seed() -> u32 {
    let b = super::bounds::dispatch::SEED;
    fastrand::i64(b.min..=b.max) as u32
}

/// What one dispatch call assigned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dispatched {
    pub assigned: u64,
    /// The script's work budget cut the call short (many live workers) and tasks are still
    /// pending: call again at once.
    pub more: bool,
    /// The queue's limits held the call back while tasks are pending: the rate admits more
    /// after this long, or the concurrency cap is full (the free channel says when a lease ends).
    pub held: Option<super::claim::Held>,
    /// (worker, tasks assigned to it) for each worker that got some.
    pub per_worker: Vec<(String, u64)>,
}

impl FromRedisValue for Dispatched {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let mut it = items(v)?.into_iter();
        let assigned = count(&it.next().ok_or("dispatch: empty reply")?)?;
        let more = count(&it.next().ok_or("dispatch: no more flag")?)? == 1;
        let held = super::reply::int(&it.next().ok_or("dispatch: no held value")?)?;
        let held = (held != 0).then(|| super::claim::Held::from_wait(held));
        let mut per_worker = Vec::new();
        while let Some(w) = it.next() {
            let n = it.next().ok_or("dispatch: a worker without its count")?;
            per_worker.push((string(w)?, count(&n)?));
        }
        Ok(Dispatched {
            assigned,
            more,
            held,
            per_worker,
        })
    }
}
