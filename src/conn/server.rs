//! What the server must be, and what Baton advises about it at connect: Redis 7.0 or newer is
//! required; settings that can lose tasks (no persistence, an evicting maxmemory-policy) are
//! logged as warnings, judged by [`crate::advice`].

use crate::error::{Error, Result};

/// Whether connecting logs [`crate::advice`] about the server's settings (no persistence, an
/// evicting maxmemory-policy) as warnings. On by default, so baton-worker, baton-scheduler and
/// library users warn once at start (and again on a new Sentinel primary). The `baton` CLI
/// turns it off: its commands would repeat the warning on every call, and `baton doctor`
/// reports the same findings on demand. Process-wide because it is a choice of the program, not
/// of a connection; the refusal of Redis < 7.0 does not depend on it.
static ADVICE_AT_CONNECT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turn the settings warnings at connect on or off for this process (see [`ADVICE_AT_CONNECT`]).
pub fn set_advice_at_connect(on: bool) {
    ADVICE_AT_CONNECT.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Refuse a Redis older than 7.0 (the scripts use `#!lua` flags and SET NX GET); when asked
/// (see [`set_advice_at_connect`]), warn about settings that can lose tasks. A warning check
/// that fails (e.g. CONFIG denied by ACL) is skipped: it is advice, not a requirement.
pub(super) async fn check_server(con: &mut redis::aio::MultiplexedConnection, addr: &str) -> Result<()> {
    use crate::advice;
    let info: redis::RedisResult<String> = redis::cmd("INFO").arg("server").query_async(con).await;
    if let Ok(info) = info {
        let version = advice::version(addr, advice::info_field(&info, "redis_version").unwrap_or(""));
        if version.status == advice::Status::Fail {
            return Err(Error::Invalid(version.to_string()));
        }
    }
    if !ADVICE_AT_CONNECT.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(());
    }
    let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(&advice::CONFIG_PARAMS[..])
        .query_async(con)
        .await;
    if let Ok(reply) = reply {
        for f in advice::server_config(addr, &reply) {
            if f.status != advice::Status::Ok {
                tracing::warn!("{f}");
            }
        }
    }
    Ok(())
}
