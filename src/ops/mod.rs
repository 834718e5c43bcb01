//! One module per transition script: where `lua/<name>.lua` is called from Rust.
//!
//! Each module holds the script's `Request` (its fields are the manifest's arguments, in their
//! order), the call it builds, and its typed reply (a `FromRedisValue` impl), so no call site
//! decodes a reply by position. [`crate::Queue`] is a thin facade that fills requests from the
//! queue's settings and runs them. Bounds of the arguments come from `lua/manifest.json` at
//! build time ([`bounds`]).

pub use crate::bounds;
pub mod cancel;
pub mod claim;
pub mod complete;
pub mod configure;
pub mod counts;
pub mod deliver;
pub mod dependencies;
pub mod deregister;
pub mod dispatch;
pub mod enqueue;
pub mod fail;
pub mod flow_join;
pub mod flow_open;
pub mod flow_seal;
pub mod flow_status;
pub mod get;
pub mod group_set;
pub mod groups;
pub mod heartbeat;
pub mod outbox;
pub mod pause;
pub mod progress;
pub mod promote;
pub mod purge;
pub mod reclaim;
pub mod register;
pub mod release;
mod reply;
pub mod requeue;
pub mod start;
pub mod take;
pub mod trim;
pub mod workers;

use crate::conn::Call;
use crate::keys::QueueKeys;
use crate::scripts::ScriptName;
use std::time::Duration;

/// A typed call of one script.
pub trait Op {
    /// The script this request runs.
    const SCRIPT: ScriptName;
    /// What the script answers, decoded.
    type Reply: redis::FromRedisValue;

    /// Keys after the queue keyset (only enqueue's idempotency keys today).
    fn extra_keys(&self, _keys: &QueueKeys) -> Vec<String> {
        Vec::new()
    }

    /// Append the ARGV values, in the manifest's order (checked in debug builds).
    fn push_args(&self, call: &mut Call);

    /// The complete call on `keys`' queue.
    fn call(&self, keys: &QueueKeys) -> Call {
        let mut call = Call::new(Self::SCRIPT, keys.keyset(), &self.extra_keys(keys));
        self.push_args(&mut call);
        call
    }
}

/// A duration as the scripts take it: whole milliseconds.
pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// An id/token pair proving a lease is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRef {
    pub id: String,
    pub token: String,
}

impl LeaseRef {
    pub fn new(id: impl Into<String>, token: impl Into<String>) -> LeaseRef {
        LeaseRef {
            id: id.into(),
            token: token.into(),
        }
    }
}

/// Which dead tasks requeue and purge act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeadSelection {
    /// These ids (1..=1000).
    Ids(Vec<String>),
    /// The oldest `n` (1..=1000).
    Oldest(usize),
}

impl DeadSelection {
    fn push_args(&self, call: &mut Call) {
        match self {
            DeadSelection::Ids(ids) => {
                call.named("mode", "ids");
                for id in ids {
                    call.named("target", id);
                }
            }
            DeadSelection::Oldest(n) => {
                call.named("mode", "oldest").named("target", *n);
            }
        }
    }
}
