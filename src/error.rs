//! Errors a person can act on.
//!
//! One variant per thing that can go wrong; every message says what happened and what to do.
//! Redis errors are classified here once (unreachable, auth, timeout, named script errors), so
//! the rest of the crate never inspects raw `RedisError`s.

use std::time::Duration;

/// The result type of the Baton library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Baton.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Redis cannot be reached at all.
    #[error("cannot reach Redis at {addr} ({detail}) — is redis-server running? set redis.url in config/baton.toml (or BATON__REDIS__URL)")]
    Unreachable { addr: String, detail: String },

    /// `[redis] wait_replicas` was not met in time: the write ran on the primary but is not
    /// yet on enough replicas to survive a failover.
    #[error("Redis at {addr}: {detail}")]
    NotDurable { addr: String, detail: String },

    /// Redis refused the credentials.
    #[error("Redis at {addr} refused the credentials ({detail}) — set redis.password (and redis.username for an ACL user) in config/baton.toml, or fix the password in redis.url")]
    Auth { addr: String, detail: String },

    /// The user is authenticated but lacks an ACL permission.
    #[error("Redis at {addr} denied a command to this user ({detail}) — give the user Baton's ACL rules for its role (docs/operations.md, \"ACL users\")")]
    NoPermission { addr: String, detail: String },

    /// Redis did not answer in time. The call may still have run on the server.
    #[error("Redis at {addr} did not answer within {timeout:?} (the call may have run; Baton retries are idempotent) — raise redis.response_timeout or check the server's load")]
    Timeout { addr: String, timeout: Duration },

    /// A script refused its arguments (BADARG); nothing was written.
    #[error("queue {queue}: bad argument: {detail}")]
    BadArgument { queue: String, detail: String },

    /// A payload is over the queue's `max_payload` (TOOLARGE); nothing was written.
    #[error("queue {queue}: payload too large: {detail}; or raise queues.{queue}.max_payload")]
    PayloadTooLarge { queue: String, detail: String },

    /// The queue's data schema differs from these scripts' (VERSION); nothing was written.
    #[error("queue {queue}: script/schema version mismatch: {detail}")]
    VersionMismatch { queue: String, detail: String },

    /// A lease token is no longer valid: the lease expired and was reclaimed, the task was
    /// cancelled, or it was already acknowledged. Nothing changed.
    #[error("queue {queue}: stale lease for task {id}: the lease was reclaimed, cancelled or already acknowledged, so this result is refused (the task runs or ran elsewhere)")]
    StaleLease { queue: String, id: String },

    /// The task does not exist (never enqueued, or dropped after its retention).
    #[error("queue {queue}: no task {id} (never enqueued, or dropped after its retention)")]
    NotFound { queue: String, id: String },

    /// Waiting for a result timed out; the task is still unfinished.
    #[error("queue {queue}: task {id} has not finished after {waited:?} (state: {state})")]
    WaitTimeout {
        queue: String,
        id: String,
        waited: Duration,
        state: String,
    },

    /// Invalid input refused before reaching Redis (queue names, config values...).
    #[error("{0}")]
    Invalid(String),

    /// The configuration is invalid; the message names the key and the fix.
    #[error("config: {0}")]
    Config(String),

    /// Redis answered something the scripts' contract does not allow.
    #[error("unexpected reply from Redis ({0}) — are the server and scripts the versions Baton expects?")]
    Protocol(String),

    /// Redis is full and refuses writes (maxmemory with noeviction).
    #[error("Redis at {addr} is out of memory and refuses writes ({detail}) — raise maxmemory, drain queues, or shorten result_ttl/dead_ttl")]
    OutOfMemory { addr: String, detail: String },

    /// Any other Redis error.
    #[error("Redis at {addr}: {source}")]
    Redis { addr: String, source: redis::RedisError },
}

impl Error {
    /// A short, stable name of the error's kind (metrics label).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::Unreachable { .. } => "unreachable",
            Error::NotDurable { .. } => "not_durable",
            Error::Auth { .. } => "auth",
            Error::NoPermission { .. } => "no_permission",
            Error::Timeout { .. } => "timeout",
            Error::BadArgument { .. } => "bad_argument",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::VersionMismatch { .. } => "version_mismatch",
            Error::StaleLease { .. } => "stale_lease",
            Error::NotFound { .. } => "not_found",
            Error::WaitTimeout { .. } => "wait_timeout",
            Error::Invalid(_) => "invalid",
            Error::Config(_) => "config",
            Error::Protocol(_) => "protocol",
            Error::OutOfMemory { .. } => "oom",
            Error::Redis { .. } => "redis",
        }
    }

    /// True when the call may succeed if simply retried later (Redis down, timeout, OOM).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. }
                | Error::NotDurable { .. }
                | Error::Timeout { .. }
                | Error::OutOfMemory { .. }
                | Error::Redis { .. }
        )
    }

    /// Classify a Redis error for the server at `addr`, answering on behalf of `queue`.
    pub(crate) fn from_redis(e: redis::RedisError, addr: &str, queue: &str, timeout: Duration) -> Error {
        let addr = addr.to_string();
        let queue = queue.to_string();
        if let Some(code) = e.code() {
            let detail = script_detail(e.detail().unwrap_or(""));
            match code {
                "BADARG" => return Error::BadArgument { queue, detail },
                "TOOLARGE" => return Error::PayloadTooLarge { queue, detail },
                "VERSION" => return Error::VersionMismatch { queue, detail },
                "WRONGPASS" => return Error::Auth { addr, detail },
                "NOAUTH" => {
                    return Error::Auth {
                        addr,
                        detail: "this Redis requires a password".into(),
                    }
                }
                "NOPERM" => return Error::NoPermission { addr, detail },
                "OOM" => return Error::OutOfMemory { addr, detail },
                _ => {}
            }
        }
        if e.kind() == redis::ErrorKind::AuthenticationFailed {
            return Error::Auth {
                addr,
                detail: e.to_string(),
            };
        }
        let text = e.to_string();
        if text.contains("certificate")
            || text.contains("UnknownIssuer")
            || text.contains("InvalidCertificate")
        {
            return Error::Unreachable {
                addr,
                detail: format!(
                    "{text}: the server's TLS certificate was not accepted — if a private CA signed it, set redis.tls_ca to that CA's PEM file"
                ),
            };
        }
        if e.is_timeout() {
            return Error::Timeout { addr, timeout };
        }
        if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
            return Error::Unreachable {
                addr,
                detail: e.to_string(),
            };
        }
        Error::Redis { addr, source: e }
    }
}

/// Redis 7 appends " script: <sha>, on @user_script:<line>." to errors raised by scripts; the
/// contract's message is what comes before it.
fn script_detail(d: &str) -> String {
    match d.find(" script: ") {
        Some(i) => d[..i].to_string(),
        None => d.to_string(),
    }
}
