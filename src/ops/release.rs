//! `lua/release.lua`: give leases back without counting the attempt (shutdown).

use super::reply::int;
use super::{LeaseRef, Op};
use crate::conn::Call;
use crate::scripts::ScriptName;
use redis::{FromRedisValue, ParsingError, Value};

/// One release call (1..=1000 leases).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub worker: &'a str,
    pub leases: &'a [LeaseRef],
}

impl Op for Request<'_> {
    const SCRIPT: ScriptName = ScriptName::Release;
    type Reply = Vec<Released>;

    fn push_args(&self, call: &mut Call) {
        call.named("worker", self.worker);
        for l in self.leases {
            call.named("id", &l.id).named("token", &l.token);
        }
    }
}

/// The fate of one released lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// Back in pending, at the front of its priority.
    Released,
    /// Not held any more: nothing changed.
    Stale,
}

impl FromRedisValue for Released {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Self::from_redis_value_ref(&v)
    }

    fn from_redis_value_ref(v: &Value) -> Result<Self, ParsingError> {
        Ok(if int(v)? == 1 {
            Released::Released
        } else {
            Released::Stale
        })
    }
}
