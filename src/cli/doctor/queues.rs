//! Checks of the scripts loaded, the clock against Redis TIME, and each configured queue
//! (schema version, pause, live workers).

use super::*;

/// The scripts of this binary are in the server's script cache (every primary of a cluster).
pub(super) async fn scripts(conn: &Conn, out: &mut Vec<Finding>) {
    let mut cmd = redis::cmd("SCRIPT");
    cmd.arg("EXISTS");
    for s in ScriptName::ALL {
        cmd.arg(&s.script().sha);
    }
    let n = ScriptName::ALL.len();
    match conn.query::<Vec<bool>>(&cmd).await {
        Ok(present) => {
            let missing: Vec<&str> = ScriptName::ALL
                .iter()
                .zip(&present)
                .filter(|(_, p)| !**p)
                .map(|(s, _)| s.file_stem())
                .collect();
            if missing.is_empty() && present.len() == n {
                out.push(Finding::ok(
                    "scripts",
                    format!("the {n} scripts of this baton (schema v{SCHEMA_VERSION}) are loaded"),
                ));
            } else {
                out.push(Finding::fail(
                    "scripts",
                    format!("scripts missing from the script cache right after loading them: {}", missing.join(", ")),
                    "check that every primary accepts SCRIPT LOAD, and that nothing between Baton and Redis (a proxy) drops the script cache",
                ));
            }
        }
        Err(e) => out.push(Finding::ok(
            "scripts",
            format!("the {n} scripts of this baton (schema v{SCHEMA_VERSION}) were loaded at connect with the expected SHA1s (SCRIPT EXISTS not permitted: {})", brief(&e)),
        )),
    }
}

pub(super) fn local_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// This host's clock against Redis `TIME`; returns Redis' time in ms (for heartbeat ages).
pub(super) async fn clock(conn: &Conn, out: &mut Vec<Finding>) -> Option<u64> {
    let t0 = local_ms();
    let time: Result<(u64, u64), Error> = conn.query(&redis::cmd("TIME")).await;
    let t1 = local_ms();
    match time {
        Ok((s, us)) => {
            let redis_ms = s as f64 * 1000.0 + us as f64 / 1000.0;
            let offset = (redis_ms - (t0 + t1) / 2.0).round() as i64;
            out.push(advice::clock(offset, (t1 - t0).max(0.0).round() as u64));
            Some(redis_ms as u64)
        }
        Err(e) => {
            out.push(Finding::warn(
                "clock",
                format!(
                    "TIME failed ({}): clock offset and worker heartbeats not checked",
                    brief(&e)
                ),
                "allow the user TIME (both ACL roles of docs/operations.md have it)",
            ));
            None
        }
    }
}

/// One queue: its schema version, pause, and live workers.
pub(super) async fn queue(q: &Queue, now_ms: Option<u64>, out: &mut Vec<Finding>) {
    let name = q.name();
    let meta: Result<(Option<String>, Option<String>), Error> = q
        .conn()
        .query(
            redis::cmd("HMGET")
                .arg(q.keys().key(crate::keys::Role::Meta))
                .arg("v")
                .arg("paused"),
        )
        .await;
    match meta {
        Ok((v, paused)) => {
            out.push(advice::schema(name, v.as_deref(), SCHEMA_VERSION));
            if paused.as_deref() == Some("1") {
                out.push(advice::paused(name));
            }
        }
        Err(e) => out.push(Finding::warn(
            "schema",
            format!("queue {name}: cannot read its meta ({})", brief(&e)),
            "allow the user HMGET on Baton's keys",
        )),
    }
    let Some(now) = now_ms else { return };
    let beats: Result<Vec<(String, f64)>, Error> = q
        .conn()
        .query(
            redis::cmd("ZRANGE")
                .arg(q.keys().key(crate::keys::Role::Wbeat))
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES"),
        )
        .await;
    match beats {
        Ok(beats) => {
            let window = q.settings().dispatch_liveness();
            let since = now.saturating_sub(window.as_millis() as u64) as f64;
            let live = beats.iter().filter(|(_, at)| *at >= since).count();
            let last = beats.iter().map(|(_, at)| *at as u64).max();
            let ago = last.map(|at| Duration::from_millis(now.saturating_sub(at)));
            out.push(advice::workers(name, live, ago, window));
        }
        Err(e) => out.push(Finding::warn(
            "workers",
            format!("queue {name}: cannot read the worker registry ({})", brief(&e)),
            "allow the user ZRANGE on Baton's keys",
        )),
    }
}
