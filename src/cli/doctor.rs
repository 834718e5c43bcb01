//! `baton doctor`: check a deployment and print each finding with its fix.
//!
//! Read-only: it connects like every command (which loads the scripts), then only reads — INFO,
//! CONFIG GET, ACL DRYRUN, SCRIPT EXISTS, TIME, the queues' meta and worker registry. When ACL
//! DRYRUN is denied it probes the worker rights with a heartbeat of an unregistered worker and
//! no leases, which writes nothing. Exit code: 1 when any finding is a failure, else 0
//! (warnings alone exit 0).

use super::exit;
use crate::advice::{self, Finding, Status};
use crate::client::{Client, Queue};
use crate::config::Config;
use crate::conn::Conn;
use crate::error::Error;
use crate::scripts::{ScriptName, SCHEMA_VERSION};
use redis::Value;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Run every check, print the findings; the exit code.
pub(super) async fn run(config: Option<PathBuf>, json: bool) -> i32 {
    let findings = check(config).await;
    print(&findings, json);
    if findings.iter().any(|f| f.status == Status::Fail) {
        exit::ERROR
    } else {
        exit::OK
    }
}

fn print(findings: &[Finding], json: bool) {
    if json {
        println!("{}", serde_json::to_string(findings).unwrap_or_default());
        return;
    }
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0).max(11);
    for f in findings {
        let mark = match f.status {
            Status::Ok => '✓',
            Status::Warn => '!',
            Status::Fail => '✗',
        };
        match &f.fix {
            Some(fix) => println!("{mark} {:<width$}  {} — fix: {fix}", f.check, f.message),
            None => println!("{mark} {:<width$}  {}", f.check, f.message),
        }
    }
    let count = |s| findings.iter().filter(|f| f.status == s).count();
    println!(
        "{} ok, {} warning(s), {} failure(s)",
        count(Status::Ok),
        count(Status::Warn),
        count(Status::Fail)
    );
}

/// An error's text split into what happened and the fix (Baton's errors end in "— fix").
fn from_error(check: &str, e: &Error) -> Finding {
    let text = e.to_string();
    match text.split_once(" — ") {
        Some((msg, fix)) => Finding::fail(check, msg, fix),
        None => Finding::fail(check, text, "see the error above"),
    }
}

/// An error's text without its fix, for mentioning it inside another finding.
fn brief(e: &Error) -> String {
    let text = e.to_string();
    match text.split_once(" — ") {
        Some((msg, _)) => msg.to_string(),
        None => text,
    }
}

/// Where the config came from (the lookup of `process::load_config`).
fn config_source(flag: &Option<PathBuf>) -> String {
    if let Some(p) = flag {
        return p.display().to_string();
    }
    if let Some(p) = std::env::var_os("BATON_CONFIG") {
        return format!("{} (BATON_CONFIG)", PathBuf::from(p).display());
    }
    if std::path::Path::new("config/baton.toml").exists() {
        return "config/baton.toml".into();
    }
    "built-in defaults and BATON__* environment".into()
}

async fn check(flag: Option<PathBuf>) -> Vec<Finding> {
    let mut out = Vec::new();
    let source = config_source(&flag);
    let config = match crate::process::load_config(flag) {
        Ok(c) => c,
        Err(e) => {
            out.push(from_error("config", &e));
            return out;
        }
    };
    let queues = config.scheduler_queues();
    if queues.is_empty() {
        out.push(Finding::warn(
            "config",
            format!(
                "{source} names no queue: per-queue checks skipped, and baton-scheduler maintains nothing"
            ),
            "name the queues in [queues.NAME] tables or worker.queues",
        ));
    } else {
        out.push(Finding::ok(
            "config",
            format!("{source}; queues: {}", queues.join(", ")),
        ));
    }
    let client = match Client::connect(config.clone()).await {
        Ok(c) => c,
        Err(e @ Error::Config(_)) => {
            out.push(from_error("config", &e));
            return out;
        }
        Err(e) => {
            out.push(from_error("redis", &e));
            return out;
        }
    };
    let conn = client.conn();
    let addr = conn.addr();

    server(conn, &config, &addr, &mut out).await;
    settings(conn, &addr, &mut out).await;
    acl(&client, &config, &queues, &mut out).await;
    scripts(conn, &mut out).await;
    let now_ms = clock(conn, &mut out).await;
    for name in &queues {
        match client.queue(name) {
            Ok(q) => queue(&q, now_ms, &mut out).await,
            Err(e) => out.push(from_error("config", &e)),
        }
    }
    out
}

/// Reachability, version, topology, role and replicas.
async fn server(conn: &Conn, config: &Config, addr: &str, out: &mut Vec<Finding>) {
    let info: String = match conn.query(redis::cmd("INFO").arg("server")).await {
        Ok(i) => i,
        Err(e) => {
            out.push(Finding::warn(
                "redis",
                format!("{addr} reachable, but INFO server failed: {}", brief(&e)),
                "allow the user INFO (both ACL roles of docs/operations.md have it)",
            ));
            return;
        }
    };
    let version = advice::info_field(&info, "redis_version").unwrap_or("");
    out.push(Finding::ok("redis", format!("{addr} reachable, Redis {version}")));
    let v = advice::version(addr, version);
    if v.status != Status::Ok {
        out.push(v);
    }
    if config.redis.cluster.is_some() {
        cluster(conn, config.redis.wait_replicas, out).await;
        return;
    }
    match &config.redis.sentinel {
        Some(s) => out.push(Finding::ok(
            "topology",
            format!(
                "Sentinel: primary of {:?} named by {} sentinel(s) is {addr}",
                s.master,
                s.nodes.len()
            ),
        )),
        None => out.push(Finding::ok(
            "topology",
            "one server (redis.url): no automatic failover (see [redis] sentinel and cluster in docs/operations.md)",
        )),
    }
    match conn.query::<String>(redis::cmd("INFO").arg("replication")).await {
        Ok(repl) => {
            let role = advice::info_field(&repl, "role").unwrap_or("unknown");
            out.push(advice::role(addr, role));
            if role == "master" {
                let n = advice::info_field(&repl, "connected_slaves")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                out.push(advice::replicas(n, config.redis.wait_replicas));
            }
        }
        Err(e) => out.push(Finding::warn(
            "role",
            format!(
                "INFO replication failed ({}): role and replicas not checked",
                brief(&e)
            ),
            "allow the user INFO",
        )),
    }
}

/// Redis Cluster: the state, and the replicas of the least-replicated primary against
/// `wait_replicas`.
async fn cluster(conn: &Conn, wait_replicas: u32, out: &mut Vec<Finding>) {
    let info: String = match conn.query(redis::cmd("CLUSTER").arg("INFO")).await {
        Ok(i) => i,
        Err(e) => {
            out.push(Finding::warn(
                "topology",
                format!(
                    "Redis Cluster: CLUSTER INFO failed ({}); state not checked",
                    brief(&e)
                ),
                "allow the user CLUSTER INFO and CLUSTER NODES, or check them by hand",
            ));
            return;
        }
    };
    let state = advice::info_field(&info, "cluster_state").unwrap_or("unknown");
    let nodes: String = conn
        .query(redis::cmd("CLUSTER").arg("NODES"))
        .await
        .unwrap_or_default();
    let shards = cluster_shards(&nodes);
    let replicas: usize = shards.iter().map(|s| s.1).sum();
    let msg = format!(
        "Redis Cluster: cluster_state {state}, {} primaries, {replicas} connected replica(s)",
        shards.len()
    );
    if state == "ok" {
        out.push(Finding::ok("topology", msg));
    } else {
        out.push(Finding::fail(
            "topology",
            format!("{msg}: slots without a live primary refuse their queues' calls"),
            "check CLUSTER NODES: every slot needs a reachable primary",
        ));
    }
    if let Some(least) = shards.iter().map(|s| s.1).min() {
        let mut f = advice::replicas(least as u32, wait_replicas);
        f.message = format!("least-replicated primary: {}", f.message);
        out.push(f);
    }
}

/// `(primary id, connected replicas)` of each live primary of a `CLUSTER NODES` reply.
fn cluster_shards(nodes: &str) -> Vec<(String, usize)> {
    let rows: Vec<Vec<&str>> = nodes.lines().map(|l| l.split_whitespace().collect()).collect();
    let live = |r: &Vec<&str>| r.len() > 7 && r[7] == "connected" && !r[2].contains("fail");
    let mut shards: Vec<(String, usize)> = rows
        .iter()
        .filter(|r| live(r) && r[2].contains("master"))
        .map(|r| (r[0].to_string(), 0))
        .collect();
    for r in rows.iter().filter(|r| live(r) && r[2].contains("slave")) {
        if let Some(s) = shards.iter_mut().find(|s| s.0 == r[3]) {
            s.1 += 1;
        }
    }
    shards
}

/// Persistence, eviction, memory (CONFIG GET, INFO memory).
async fn settings(conn: &Conn, addr: &str, out: &mut Vec<Finding>) {
    let reply: Result<Vec<String>, Error> = conn
        .query(redis::cmd("CONFIG").arg("GET").arg(&advice::CONFIG_PARAMS[..]))
        .await;
    match reply {
        Ok(r) => out.extend(advice::server_config(addr, &r)),
        Err(e) => out.push(Finding::warn(
            "persistence",
            format!("cannot read the server's settings ({}): persistence and eviction not checked", brief(&e)),
            "run baton doctor as a user allowed CONFIG GET, or check save, appendonly and maxmemory-policy by hand",
        )),
    }
    if let Ok(mem) = conn.query::<String>(redis::cmd("INFO").arg("memory")).await {
        let num = |k| {
            advice::info_field(&mem, k)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        out.push(advice::memory(num("used_memory"), num("maxmemory")));
    }
}

/// The ACL user named in the config (`ACL WHOAMI` when allowed).
async fn acl_user(conn: &Conn, config: &Config) -> String {
    if let Ok(u) = conn.query::<String>(redis::cmd("ACL").arg("WHOAMI")).await {
        return u;
    }
    if let Some(u) = &config.redis.username {
        return u.clone();
    }
    use redis::IntoConnectionInfo;
    config
        .redis
        .url
        .as_str()
        .into_connection_info()
        .ok()
        .and_then(|i| i.redis_settings().username().map(str::to_string))
        .unwrap_or_else(|| "default".into())
}

/// The commands each role needs, on the keys of `q` (docs/operations.md, "ACL users").
fn role_commands(q: &Queue, wait: bool) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let k = q.keys();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let mut evalsha = s(&["EVALSHA", &ScriptName::Enqueue.script().sha, "17"]);
    evalsha.extend(k.keyset().iter().cloned());
    let (meta, pending, events) = (k.key(crate::keys::Role::Meta), k.key(crate::keys::Role::Pending), k.key(crate::keys::Role::Events));
    let idem = k.idem("doctor");
    let mut producer = vec![
        evalsha,
        s(&["SCRIPT", "LOAD", "return 1"]),
        s(&["HSET", meta, "v", "1"]),
        s(&["HGET", meta, "v"]),
        s(&["HMGET", meta, "v"]),
        s(&["HSETNX", k.key(crate::keys::Role::Tasks), "x", "y"]),
        s(&["HINCRBY", meta, "seq", "1"]),
        s(&["ZADD", pending, "0", "x"]),
        s(&["ZRANGE", pending, "0", "-1"]),
        s(&["ZCARD", pending]),
        s(&["ZSCORE", pending, "x"]),
        s(&["SET", &idem, "x"]),
        s(&["GET", &idem]),
        s(&["XADD", events, "*", "f", "v"]),
        s(&["PUBLISH", &k.wake_channel(), "p"]),
        s(&["SUBSCRIBE", &k.fin_channel()]),
        s(&["XREAD", "STREAMS", events, "0"]),
        s(&["TIME"]),
    ];
    if wait {
        producer.push(s(&["WAIT", "0", "0"]));
    }
    let worker = vec![
        s(&["ZPOPMIN", pending, "1"]),
        s(&["ZREM", pending, "x"]),
        s(&["HDEL", k.key(crate::keys::Role::Lease), "x"]),
        s(&["DEL", &idem]),
        s(&["ZRANGEBYLEX", k.key(crate::keys::Role::Assigned), "-", "+"]),
        s(&["ZCOUNT", k.key(crate::keys::Role::Wbeat), "-inf", "+inf"]),
    ];
    (producer, worker)
}

/// What `ACL DRYRUN` says of one command: `None` allowed, `Some(reason)` denied.
async fn dryrun(conn: &Conn, user: &str, args: &[String]) -> Result<Option<String>, Error> {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("DRYRUN").arg(user).arg(args);
    match conn.query::<Value>(&cmd).await? {
        Value::Okay => Ok(None),
        Value::SimpleString(s) if s == "OK" => Ok(None),
        Value::BulkString(b) if b == b"OK" => Ok(None),
        Value::BulkString(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        other => Ok(Some(format!("{other:?}"))),
    }
}

/// The rights of the configured user: ACL DRYRUN of the commands each role needs, or, when
/// DRYRUN is denied, a no-op heartbeat (the scripts' own worker check).
async fn acl(client: &Client, config: &Config, queues: &[String], out: &mut Vec<Finding>) {
    let conn = client.conn();
    let name = queues.first().map(String::as_str).unwrap_or("default");
    let Ok(q) = client.queue(name) else { return };
    let user = acl_user(conn, config).await;
    let (producer, worker) = role_commands(&q, config.redis.wait_replicas > 0);
    let mut denied: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let mut first_reason = String::new();
    for (i, list) in [&producer, &worker].into_iter().enumerate() {
        for args in list {
            match dryrun(conn, &user, args).await {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    if first_reason.is_empty() {
                        first_reason = reason;
                    }
                    let name = if args[0] == "SCRIPT" {
                        "SCRIPT LOAD".into()
                    } else {
                        args[0].clone()
                    };
                    denied[i].push(name);
                }
                Err(Error::NoPermission { .. }) => return out.push(probe(&q, &user).await),
                Err(e) => {
                    return out.push(Finding::warn(
                        "acl",
                        format!(
                            "rights of Redis user {user} not checked: ACL DRYRUN failed ({})",
                            brief(&e)
                        ),
                        "compare the user's rules (ACL GETUSER) with docs/operations.md, \"ACL users\"",
                    ))
                }
            }
        }
    }
    out.push(advice::acl(&user, &denied[0], &denied[1], &first_reason));
}

/// Worker rights without ACL DRYRUN: a heartbeat of an unregistered worker with no leases
/// passes the scripts' worker check and then writes nothing.
async fn probe(q: &Queue, user: &str) -> Finding {
    const NOTE: &str = "(ACL DRYRUN not permitted to this user: probed with a no-op heartbeat)";
    match q.heartbeat("baton-doctor-probe", &[]).await {
        Ok(_) | Err(Error::VersionMismatch { .. }) => {
            let mut f = advice::acl(user, &[], &[], "");
            f.message = format!("{} {NOTE}", f.message);
            f
        }
        Err(Error::NoPermission { detail, .. }) if detail.contains("worker-side") => {
            let mut f = advice::acl(user, &[], &["ZPOPMIN".into()], "");
            f.message = format!("{} {NOTE}", f.message);
            f
        }
        Err(Error::NoPermission { detail, .. }) => {
            advice::acl(user, &["EVALSHA of Baton's scripts".into()], &[], &detail)
        }
        Err(e) => Finding::warn(
            "acl",
            format!("rights of Redis user {user} not checked: {}", brief(&e)),
            "compare the user's rules (ACL GETUSER) with docs/operations.md, \"ACL users\"",
        ),
    }
}

/// The scripts of this binary are in the server's script cache (every primary of a cluster).
async fn scripts(conn: &Conn, out: &mut Vec<Finding>) {
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

fn local_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// This host's clock against Redis `TIME`; returns Redis' time in ms (for heartbeat ages).
async fn clock(conn: &Conn, out: &mut Vec<Finding>) -> Option<u64> {
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
async fn queue(q: &Queue, now_ms: Option<u64>, out: &mut Vec<Finding>) {
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
            let window = q.settings().heartbeat * 3;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_are_counted_per_live_primary() {
        let nodes = "\
a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c 127.0.0.1:7002@17002 master - 0 0 3 connected 10923-16383
d 127.0.0.1:7003@17003 slave a 0 0 1 connected
e 127.0.0.1:7004@17004 slave b 0 0 2 connected
f 127.0.0.1:7005@17005 slave,fail c 0 0 3 disconnected
";
        let shards = cluster_shards(nodes);
        assert_eq!(shards, vec![("a".into(), 1), ("b".into(), 1), ("c".into(), 0)]);
    }
}
