//! `lua/flow_open.lua`: open a flow or a batch (a set of tasks kept together, with callbacks).

use super::{ms, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;
use crate::task::BackoffKind;
use std::time::Duration;

/// One flow_open call.
#[derive(Clone, Debug)]
pub struct Request {
    pub flow: String,
    /// True: a flow submitted whole (its first tasks wait for the seal); false: a batch.
    pub gated: bool,
    /// Tasks the caller will add (0: not known).
    pub size: u64,
    /// How long the bookkeeping is kept once the flow has ended.
    pub ttl: Duration,
    pub callbacks: Vec<Callback>,
}

/// What a callback fires on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackEvent {
    /// Every member done.
    OnSuccess,
    /// Every member finished, however.
    OnComplete,
    /// The first member that ended dead.
    OnDeath,
}

impl CallbackEvent {
    /// Every event, in the order flow_status reports them.
    pub const ALL: [CallbackEvent; 3] = [
        CallbackEvent::OnSuccess,
        CallbackEvent::OnComplete,
        CallbackEvent::OnDeath,
    ];

    /// The name the scripts and flow files use.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackEvent::OnSuccess => "on_success",
            CallbackEvent::OnComplete => "on_complete",
            CallbackEvent::OnDeath => "on_death",
        }
    }
}

/// A callback task, every setting resolved.
#[derive(Clone, Debug)]
pub struct Callback {
    pub event: CallbackEvent,
    pub kind: String,
    pub payload: Vec<u8>,
    pub priority: i32,
    pub max_attempts: u32,
    pub backoff: BackoffKind,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub jitter_pct: u8,
    pub timeout: Duration,
    pub result_ttl: Duration,
    pub group: Option<String>,
}

impl Op for Request {
    const SCRIPT: ScriptName = ScriptName::FlowOpen;
    /// True when opened; false when a flow with this id existed (a retried call).
    type Reply = bool;

    fn push_args(&self, call: &mut Call) {
        call.named("flow", &self.flow)
            .named("gated", self.gated as u8)
            .named("size", self.size)
            .named("ttl_ms", ms(self.ttl).max(1));
        for c in &self.callbacks {
            call.named("event", c.event.as_str())
                .named("kind", &c.kind)
                .named("payload", &c.payload[..])
                .named("priority", c.priority)
                .named("max_attempts", c.max_attempts)
                .named("backoff", c.backoff.code())
                .named("backoff_base_ms", ms(c.backoff_base))
                .named("backoff_cap_ms", ms(c.backoff_cap))
                .named("jitter_pct", c.jitter_pct)
                .named("timeout_ms", ms(c.timeout))
                .named("result_ttl_ms", ms(c.result_ttl))
                .named("group", c.group.as_deref().unwrap_or(""));
        }
    }
}
