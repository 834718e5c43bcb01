//! `lua/enqueue.lua`: store up to 1000 tasks atomically, pending or delayed; duplicates by id or
//! idempotency key answer the existing id.

use super::reply::{groups, int, string};
use super::{ms, Op};
use crate::conn::Call;
use crate::keys::QueueKeys;
use crate::scripts::ScriptName;
use crate::task::BackoffKind;
use redis::{FromRedisValue, ParsingError, Value};
use std::time::Duration;

/// One enqueue call.
#[derive(Clone, Debug)]
pub struct Request {
    /// Refuse any payload larger than this (bytes).
    pub max_payload: u64,
    pub tasks: Vec<NewTask>,
}

/// One task of an enqueue call, every setting resolved.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub id: String,
    pub kind: String,
    pub payload: Vec<u8>,
    pub priority: i32,
    pub delay: Duration,
    pub max_attempts: u32,
    pub backoff: BackoffKind,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Percent of each retry delay removed at random.
    pub jitter_pct: u8,
    /// Zero: no timeout.
    pub timeout: Duration,
    pub result_ttl: Duration,
    /// The idempotency key and how long it maps to this task.
    pub idempotency: Option<(String, Duration)>,
    /// The unique-while-active key and how long it is held at most.
    pub unique: Option<(String, Duration)>,
    /// The debounce key, its window and the longest wait from the first enqueue.
    pub debounce: Option<(String, Duration, Duration)>,
    /// No run starts later than this after the enqueue (zero: never expires).
    pub expires_in: Duration,
    /// The task's group; `None`: the group "default".
    pub group: Option<String>,
    /// What the task counts for under the rate limits (1 = a plain task).
    pub cost: u32,
    /// Its dependencies (empty: none), their failure policy, and how long it is kept if it
    /// ends unrun because one failed.
    pub after: Vec<String>,
    pub on_failure: crate::task::OnFailure,
    pub unrun_ttl: Duration,
    /// The flow or batch it joins (`lua/flow_open.lua`), its name there, and the running task
    /// adding it (dynamic fan-out).
    pub flow: Option<String>,
    pub name: Option<String>,
    pub spawned_by: Option<String>,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::Enqueue;
    type Reply = Vec<Enqueued>;

    fn extra_keys(&self, keys: &QueueKeys) -> Vec<String> {
        // per task, in task order: its idempotency key, its unique key, its debounce key
        self.tasks
            .iter()
            .flat_map(|t| {
                let idem = t.idempotency.as_ref().map(|(k, _)| keys.idem(k));
                let uniq = t.unique.as_ref().map(|(k, _)| keys.uniq(k));
                let deb = t.debounce.as_ref().map(|(k, ..)| keys.deb(k));
                idem.into_iter().chain(uniq).chain(deb)
            })
            .collect()
    }

    fn push_args(&self, call: &mut Call) {
        call.named("max_payload", self.max_payload)
            .named("n", self.tasks.len());
        for t in &self.tasks {
            call.named("id", &t.id)
                .named("kind", &t.kind)
                .named("payload", &t.payload[..])
                .named("priority", t.priority)
                .named("delay_ms", ms(t.delay))
                .named("max_attempts", t.max_attempts)
                .named("backoff", t.backoff.code())
                .named("backoff_base_ms", ms(t.backoff_base))
                .named("backoff_cap_ms", ms(t.backoff_cap))
                .named("jitter_pct", t.jitter_pct)
                .named("timeout_ms", ms(t.timeout))
                .named("result_ttl_ms", ms(t.result_ttl))
                .named(
                    "idem_ttl_ms",
                    t.idempotency.as_ref().map_or(0, |(_, ttl)| ms(*ttl).max(1)),
                )
                .named("options", t.options());
        }
    }
}

impl NewTask {
    /// The `options` argument: the rarer settings as "name=value,...", empty when none (so a
    /// plain task costs no extra arguments).
    fn options(&self) -> String {
        let mut o: Vec<String> = Vec::new();
        if let Some((_, ttl)) = &self.unique {
            o.push(format!("unique_ttl_ms={}", ms(*ttl).max(1)));
        }
        if let Some((_, w, m)) = &self.debounce {
            let w = ms(*w).max(1);
            o.push(format!("debounce_ms={w},max_wait_ms={}", ms(*m).max(w)));
        }
        if !self.expires_in.is_zero() {
            o.push(format!("expires_in_ms={}", ms(self.expires_in).max(1)));
        }
        if let Some(g) = &self.group {
            o.push(format!("group={g}"));
        }
        if self.cost != 1 {
            o.push(format!("cost={}", self.cost));
        }
        if !self.after.is_empty() {
            o.push(format!(
                "after={},on_failure={},unrun_ttl_ms={}",
                self.after.join("+"),
                self.on_failure.as_str(),
                ms(self.unrun_ttl).max(1)
            ));
        }
        if let Some(f) = &self.flow {
            o.push(format!("flow={f}"));
        }
        if let Some(n) = &self.name {
            o.push(format!("name={n}"));
        }
        if let Some(p) = &self.spawned_by {
            o.push(format!("spawned_by={p}"));
        }
        o.join(",")
    }
}

/// The answer to an enqueue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The task's id (for a duplicate: the id of the task that already existed).
    pub id: String,
    /// False when the idempotency key (or the id) was already taken: nothing new was enqueued.
    pub created: bool,
    /// The idempotency key maps to a task that finished and is no longer kept (its result TTL
    /// is shorter than the key's): `id` names a task that cannot be read any more.
    pub forgotten: bool,
    /// The unique key is held by an active task (pending, delayed or running): `id` is that task.
    pub unique_held: bool,
    /// Merged into the delayed task holding the debounce key (`id`): it took this payload and
    /// runs later (never past its max wait).
    pub debounced: bool,
}

impl FromRedisValue for Enqueued {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Err(format!("enqueue replies a flat array of (id, created) pairs, not {v:?}").into())
    }

    fn from_redis_values(items: Vec<Value>) -> Result<Vec<Self>, ParsingError> {
        groups::<2>(items, "enqueue")?
            .into_iter()
            .map(|[id, created]| {
                let created = int(&created)?;
                Ok(Enqueued {
                    id: string(id)?,
                    created: created == 1,
                    forgotten: created == 2,
                    unique_held: created == 3,
                    debounced: created == 4,
                })
            })
            .collect()
    }
}
