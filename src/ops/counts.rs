//! `lua/counts.lua`: task counts by state and the queue's lifetime totals (read-only).

use super::reply::{count, exactly};
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use crate::task::Counts;
use redis::{FromRedisValue, ParsingError, Value};

/// One counts call (no arguments).
#[derive(Clone, Copy, Debug, Default)]
pub struct Request;

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Counts;
    type Reply = Counts;

    fn push_args(&self, _call: &mut Call) {}
}

impl FromRedisValue for Counts {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        let [pending, delayed, leased, done, dead, cancelled, paused, workers, completed, failed, died, expired, enqueued, retried, aging, lapsed, rate, burst, cap, running, held, held_rate, held_cap, held_group_rate, held_group_cap, group_cap, group_rate, group_burst, waiting] =
            exactly(v, "counts")?;
        Ok(Counts {
            pending: count(&pending)?,
            delayed: count(&delayed)?,
            leased: count(&leased)?,
            done: count(&done)?,
            dead: count(&dead)?,
            cancelled: count(&cancelled)?,
            paused: count(&paused)? == 1,
            workers: count(&workers)?,
            completed_total: count(&completed)?,
            failed_total: count(&failed)?,
            dead_total: count(&died)?,
            expired_total: count(&expired)?,
            enqueued_total: count(&enqueued)?,
            retried_total: count(&retried)?,
            aging_ms: count(&aging)?,
            lapsed_total: count(&lapsed)?,
            rate_interval_us: count(&rate)?,
            burst: count(&burst)?,
            concurrency: count(&cap)?,
            running: count(&running)?,
            held_by: match count(&held)? {
                1 => Some("rate"),
                2 => Some("concurrency"),
                _ => None,
            },
            held_rate_total: count(&held_rate)?,
            held_concurrency_total: count(&held_cap)?,
            held_group_rate_total: count(&held_group_rate)?,
            held_group_concurrency_total: count(&held_group_cap)?,
            group_concurrency: count(&group_cap)?,
            group_rate_interval_us: count(&group_rate)?,
            group_burst: count(&group_burst)?,
            waiting: count(&waiting)?,
        })
    }
}
