//! Advice about a deployment: typed findings, each with its fix.
//!
//! Nothing here talks to Redis or logs. Callers read the facts (INFO, CONFIG GET, TIME, the
//! worker registry…) and these functions judge them: `conn::check_server` logs the findings
//! about the server's settings at connect (baton-worker and baton-scheduler warn once at start),
//! and `baton doctor` prints them with its other checks.

use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As it should be.
    Ok,
    /// Works, but risky or unchecked: worth a look.
    Warn,
    /// Broken, or can lose tasks: fix it.
    Fail,
}

/// One checked fact about the deployment, with the fix when it is not ok.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Short name of the check (`redis`, `persistence`, `eviction`…).
    pub check: String,
    pub status: Status,
    /// What was found.
    pub message: String,
    /// What to do about it (`None` when ok).
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &str, message: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }

    pub fn warn(check: &str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            status: Status::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(check: &str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            status: Status::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// `message — fix` (the form logged at connect).
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.fix {
            Some(fix) => write!(f, "{} — {fix}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Oldest Redis major version the scripts run on (`#!lua` flags, SET NX GET, ACL DRYRUN).
pub const MIN_REDIS_MAJOR: u32 = 7;

/// A `field:value` line of an `INFO` reply.
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The Redis version: fail below 7.0 (connecting refuses it), warn when unknown.
pub fn version(addr: &str, version: &str) -> Finding {
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major == 0 {
        Finding::warn(
            "version",
            format!("Redis at {addr} did not report its version (INFO server)"),
            "check the server runs Redis 7.0 or newer",
        )
    } else if major < MIN_REDIS_MAJOR {
        Finding::fail(
            "version",
            format!("Redis at {addr} is version {version}; Baton's scripts need Redis 7.0 or newer"),
            "upgrade the server",
        )
    } else {
        Finding::ok("version", format!("Redis {version} (7.0 or newer needed)"))
    }
}

/// The `CONFIG GET` parameters [`server_config`] judges.
pub const CONFIG_PARAMS: [&str; 3] = ["save", "appendonly", "maxmemory-policy"];

/// Persistence and eviction, from the flat reply of `CONFIG GET save appendonly
/// maxmemory-policy`. A parameter missing from the reply is not judged.
pub fn server_config(addr: &str, reply: &[String]) -> Vec<Finding> {
    let get = |k: &str| {
        reply
            .chunks(2)
            .find(|p| p.len() == 2 && p[0] == k)
            .map(|p| p[1].as_str())
    };
    let mut out = Vec::new();
    if let (Some(save), Some(aof)) = (get("save"), get("appendonly")) {
        out.push(persistence(addr, save, aof));
    }
    if let Some(policy) = get("maxmemory-policy") {
        out.push(eviction(addr, policy));
    }
    out
}

/// No RDB snapshots and no AOF: a restart loses everything (warn).
pub fn persistence(addr: &str, save: &str, appendonly: &str) -> Finding {
    let rdb = !save.trim().is_empty();
    let aof = appendonly == "yes";
    match (rdb, aof) {
        (false, false) => Finding::warn(
            "persistence",
            format!("Redis at {addr} has no persistence (save \"\" and appendonly no): a restart of this server loses every task, lease and result"),
            "enable appendonly yes (or RDB snapshots), or rely on replicas with [redis] wait_replicas",
        ),
        (_, true) => Finding::ok("persistence", "appendonly yes (AOF)"),
        (true, false) => Finding::ok(
            "persistence",
            format!("RDB snapshots (save {}); a crash loses the writes since the last snapshot", save.trim()),
        ),
    }
}

/// Any maxmemory-policy but noeviction may evict task keys (fail).
pub fn eviction(addr: &str, policy: &str) -> Finding {
    if policy == "noeviction" {
        Finding::ok("eviction", "maxmemory-policy noeviction")
    } else {
        Finding::fail(
            "eviction",
            format!("Redis at {addr} has maxmemory-policy {policy}: under memory pressure it may evict task keys and lose tasks"),
            "set maxmemory-policy noeviction",
        )
    }
}

/// Share of `maxmemory` in use at which [`memory`] warns.
pub const MEMORY_WARN_SHARE: f64 = 0.9;

/// Memory use against `maxmemory` (0 = no limit): warn at 90 %, since with noeviction a full
/// Redis refuses every write (enqueue, complete…) with OOM.
pub fn memory(used: u64, max: u64) -> Finding {
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1_048_576.0);
    if max == 0 {
        return Finding::ok("memory", format!("{} used, no maxmemory limit", mb(used)));
    }
    let share = used as f64 / max as f64;
    let msg = format!(
        "{} used of maxmemory {} ({:.0}%)",
        mb(used),
        mb(max),
        share * 100.0
    );
    if share >= MEMORY_WARN_SHARE {
        Finding::warn(
            "memory",
            format!("{msg}: when full, Redis refuses enqueues and completions (OOM)"),
            "raise maxmemory, or keep less: drain queues, purge dead tasks, shorten result_ttl / dead_ttl",
        )
    } else {
        Finding::ok("memory", msg)
    }
}

/// The configured server must be a primary (writes to a replica fail with READONLY).
pub fn role(addr: &str, role: &str) -> Finding {
    if role == "master" {
        Finding::ok("role", format!("{addr} is a primary"))
    } else {
        Finding::fail(
            "role",
            format!("{addr} is a {role}, not a primary: every write fails with READONLY"),
            "point redis.url at the primary (or use [redis] sentinel to follow failovers)",
        )
    }
}

/// `[redis] wait_replicas` above the connected replicas makes every enqueue and complete fail
/// `NotDurable` after `wait_timeout` (fail).
pub fn replicas(connected: u32, wait_replicas: u32) -> Finding {
    if wait_replicas > connected {
        Finding::fail(
            "replication",
            format!("redis.wait_replicas = {wait_replicas} but the primary has {connected} connected replica(s): every enqueue and complete fails NotDurable after redis.wait_timeout"),
            format!("attach {} more replica(s), or lower redis.wait_replicas to {connected}", wait_replicas - connected),
        )
    } else if wait_replicas == 0 {
        Finding::ok(
            "replication",
            format!("{connected} connected replica(s); writes are not waited for (redis.wait_replicas = 0)"),
        )
    } else {
        Finding::ok(
            "replication",
            format!("{connected} connected replica(s), redis.wait_replicas = {wait_replicas}"),
        )
    }
}

/// Clock offset over which [`clock`] warns.
pub const CLOCK_WARN: Duration = Duration::from_millis(500);
/// Clock offset over which [`clock`] fails.
pub const CLOCK_FAIL: Duration = Duration::from_secs(5);

/// This host's clock against Redis `TIME`. `offset_ms` = Redis time − local time (at the middle
/// of the round trip); the round trip bounds the error, so the part of the offset it cannot
/// explain is judged: warn over 500 ms, fail over 5 s. Leases, delays and heartbeats use Redis'
/// clock; `TaskSpec::run_at` and cron firing use this host's.
pub fn clock(offset_ms: i64, rtt_ms: u64) -> Finding {
    let sure = offset_ms.unsigned_abs().saturating_sub(rtt_ms / 2 + 1);
    let way = if offset_ms > 0 { "behind" } else { "ahead of" };
    let msg = if offset_ms == 0 {
        format!("this host's clock matches Redis TIME (round trip {rtt_ms} ms)")
    } else {
        format!(
            "this host's clock is {} ms {way} Redis TIME (round trip {rtt_ms} ms)",
            offset_ms.unsigned_abs()
        )
    };
    let fix = "sync this host's clock (NTP: chronyd or systemd-timesyncd): cron entries fire and run_at is measured by this host's clock";
    if sure > CLOCK_FAIL.as_millis() as u64 {
        Finding::fail("clock", msg, fix)
    } else if sure > CLOCK_WARN.as_millis() as u64 {
        Finding::warn("clock", msg, fix)
    } else {
        Finding::ok("clock", msg)
    }
}

/// The queue's stored data schema (`meta` field `v`) against the scripts' (absent: a new
/// queue, ok).
pub fn schema(queue: &str, stored: Option<&str>, ours: &str) -> Finding {
    match stored {
        None => Finding::ok("schema", format!("queue {queue}: new (no data yet; scripts are schema v{ours})")),
        Some(v) if v == ours => Finding::ok("schema", format!("queue {queue}: data schema v{v}, as the scripts")),
        Some(v) => Finding::fail(
            "schema",
            format!("queue {queue} holds data schema v{v} but this baton's scripts are v{ours}: every call on it fails with VERSION"),
            "run the baton release whose scripts match the queue's schema (docs/contract.md)",
        ),
    }
}

/// Workers of a queue: `live` heartbeated within `window` (the queue's dispatch liveness: 1.5 × its heartbeat);
/// `last_ago` is the age of the newest heartbeat, if any worker is registered (warn when none
/// is live).
pub fn workers(queue: &str, live: usize, last_ago: Option<Duration>, window: Duration) -> Finding {
    let fmt =
        |d: Duration| humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string();
    if live > 0 {
        return Finding::ok(
            "workers",
            format!(
                "queue {queue}: {live} live worker(s), last heartbeat {} ago",
                fmt(last_ago.unwrap_or_default())
            ),
        );
    }
    let seen = match last_ago {
        Some(d) => format!("last seen {} ago", fmt(d)),
        None => "none registered".into(),
    };
    Finding::warn(
        "workers",
        format!(
            "no worker has heartbeated on queue {queue} in {} ({seen}): its tasks wait",
            fmt(window)
        ),
        format!("start baton-worker with worker.queues including {queue}"),
    )
}

/// A paused queue hands out no tasks (warn).
pub fn paused(queue: &str) -> Finding {
    Finding::warn(
        "paused",
        format!("queue {queue} is paused: no task is handed out"),
        format!("baton resume --queue {queue} (when the pause is not wanted)"),
    )
}

/// What the configured Redis user may do, from the commands it was found to be denied.
/// `producer_denied` are commands every role needs, `worker_denied` those only worker-side
/// transitions use (docs/operations.md, "ACL users").
pub fn acl(user: &str, producer_denied: &[String], worker_denied: &[String], first_reason: &str) -> Finding {
    if !producer_denied.is_empty() {
        return Finding::fail(
            "acl",
            format!(
                "Redis user {user} may not run {} ({first_reason}): even enqueue fails NOPERM",
                producer_denied.join(", ")
            ),
            "give the user the worker (or producer) rules of docs/operations.md, \"ACL users\"",
        );
    }
    if !worker_denied.is_empty() {
        return Finding::warn(
            "acl",
            format!(
                "Redis user {user} has producer rights only (denied: {}): enough to enqueue and read, but baton-worker, baton-scheduler and operator commands (cancel, pause, dead requeue) get NOPERM",
                worker_denied.join(", ")
            ),
            "run workers, schedulers and operator commands as a user with the worker rules of docs/operations.md",
        );
    }
    Finding::ok(
        "acl",
        format!("Redis user {user} has worker rights (every Baton script on the queue keys)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(version("a", "7.0.15").status, Status::Ok);
        assert_eq!(version("a", "8.2.1").status, Status::Ok);
        let old = version("a", "6.2.7");
        assert_eq!(old.status, Status::Fail);
        assert_eq!(
            old.to_string(),
            "Redis at a is version 6.2.7; Baton's scripts need Redis 7.0 or newer — upgrade the server"
        );
        assert_eq!(version("a", "").status, Status::Warn);
    }

    #[test]
    fn config_reply() {
        let r: Vec<String> = ["save", "", "appendonly", "no", "maxmemory-policy", "allkeys-lru"]
            .map(String::from)
            .to_vec();
        let f = server_config("h:1", &r);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].check.as_str(), f[0].status), ("persistence", Status::Warn));
        assert!(f[0].to_string().contains("appendonly yes"));
        assert_eq!((f[1].check.as_str(), f[1].status), ("eviction", Status::Fail));
        assert!(f[1].to_string().ends_with("— set maxmemory-policy noeviction"));
        let safe: Vec<String> = [
            "save",
            "3600 1",
            "appendonly",
            "no",
            "maxmemory-policy",
            "noeviction",
        ]
        .map(String::from)
        .to_vec();
        assert!(server_config("h:1", &safe).iter().all(|f| f.status == Status::Ok));
        assert!(server_config("h:1", &[]).is_empty());
    }

    #[test]
    fn clock_thresholds_leave_the_round_trip_out() {
        assert_eq!(clock(30, 2).status, Status::Ok);
        assert_eq!(clock(-800, 2).status, Status::Warn);
        assert_eq!(
            clock(800, 1000).status,
            Status::Ok,
            "explained by a 1 s round trip"
        );
        assert_eq!(clock(6000, 2).status, Status::Fail);
        assert!(clock(-800, 2).message.contains("ahead of"));
    }

    #[test]
    fn memory_replicas_schema_workers_acl() {
        assert_eq!(memory(10, 0).status, Status::Ok);
        assert_eq!(memory(95, 100).status, Status::Warn);
        assert_eq!(replicas(0, 1).status, Status::Fail);
        assert_eq!(replicas(2, 1).status, Status::Ok);
        assert_eq!(schema("q", None, "1").status, Status::Ok);
        assert_eq!(schema("q", Some("2"), "1").status, Status::Fail);
        let w = workers("q", 0, None, Duration::from_secs(3));
        assert_eq!(w.status, Status::Warn);
        assert!(w.message.contains("queue q in 3s"), "{}", w.message);
        assert!(w.fix.unwrap().contains("worker.queues including q"));
        let none: Vec<String> = vec![];
        assert_eq!(acl("u", &none, &none, "").status, Status::Ok);
        assert_eq!(acl("u", &none, &["ZPOPMIN".into()], "").status, Status::Warn);
        assert_eq!(acl("u", &["EVALSHA".into()], &none, "").status, Status::Fail);
    }

    #[test]
    fn info_fields() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(info_field(info, "redis_version"), Some("7.0.15"));
        assert_eq!(info_field(info, "redis_mode"), Some("standalone"));
        assert_eq!(info_field(info, "redis"), None);
    }
}
