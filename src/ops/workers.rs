//! `lua/workers.lua`: the worker registry, most recently seen first (read-only).

use super::reply::{bytes, count, flat_refs, groups, string};
use super::Op;
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};
use std::time::Duration;

/// One workers call.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    /// At most this many workers (1..=1000).
    pub limit: usize,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Workers;
    type Reply = Vec<WorkerInfo>;

    fn push_args(&self, call: &mut Call) {
        call.named("limit", self.limit);
    }
}

/// A registered worker.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WorkerInfo {
    pub id: String,
    /// The JSON description the worker registered with.
    pub info: serde_json::Value,
    /// Time since its last heartbeat, ms.
    #[serde(rename = "last_seen_ms", serialize_with = "ser_ms")]
    pub last_seen: Duration,
    /// Leases it holds now.
    pub inflight: u64,
    /// Tasks assigned to it (push) or claimed by it (pull), in total.
    pub assigned: u64,
    /// Tasks it completed.
    pub completed: u64,
    /// Attempts that failed on it.
    pub failed: u64,
    /// Time its handlers ran, in total (ms).
    pub busy_ms: u64,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl FromRedisValue for WorkerInfo {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Err(format!("workers replies a flat array of 8 values per worker, not {v:?}").into())
    }

    fn from_redis_values(items: Vec<Value>) -> Result<Vec<Self>, ParsingError> {
        groups::<8>(items, "workers")?
            .into_iter()
            .map(|[id, info, age, inflight, assigned, completed, failed, busy]| {
                Ok(WorkerInfo {
                    id: string(id)?,
                    info: serde_json::from_slice(&bytes(info)?).unwrap_or(serde_json::Value::Null),
                    last_seen: Duration::from_millis(count(&age)?),
                    inflight: count(&inflight)?,
                    assigned: count(&assigned)?,
                    completed: count(&completed)?,
                    failed: count(&failed)?,
                    busy_ms: count(&busy)?,
                })
            })
            .collect()
    }

    flat_refs!();
}
