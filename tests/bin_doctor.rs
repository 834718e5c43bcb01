//! `baton doctor` driven as a process against private redis-servers: a healthy deployment, an
//! evicting Redis, a queue without workers, a queue of another schema version, ACL users of
//! both roles, an unreachable Redis — and the CLI's other commands no longer printing the
//! settings warnings.
mod common;
use baton::local_redis::LocalRedis;
use common::{baton, product_config, Proc, TempDir, WORKER};
use std::process::Command;
use std::time::{Duration, Instant};

const HANDLER: &str = "[worker.handlers.echo]\nexec = [\"cat\"]\n";

fn cli(redis: &LocalRedis, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(redis.port().to_string())
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The human line of `check` (the first one, or the one mentioning `about`).
fn line<'a>(out: &'a str, check: &str, about: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(check) && l.contains(about))
        .unwrap_or_else(|| panic!("no `{check}` line about {about:?} in:\n{out}"))
}

#[test]
fn healthy_deployment_with_a_live_worker_exits_0_with_ok_findings() {
    let redis = LocalRedis::start_with(&["--appendonly", "yes"]).unwrap();
    let dir = TempDir::new();
    let cfg = product_config(&dir, &redis.url(), HANDLER);
    let _worker = Proc::start(WORKER, &cfg);
    // The worker registers within moments; until then the workers check warns.
    let start = Instant::now();
    let (code, out, err) = loop {
        let r = baton(&cfg, &["doctor"]);
        if r.1.contains("✓ workers") || start.elapsed() > Duration::from_secs(15) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains('✗'), "{out}");
    assert!(
        line(&out, "redis", "").contains(&format!("127.0.0.1:{} reachable, Redis 7", redis.port())),
        "{out}"
    );
    for check in [
        "role",
        "replication",
        "persistence",
        "eviction",
        "memory",
        "acl",
        "scripts",
        "clock",
        "schema",
    ] {
        assert!(line(&out, check, "").starts_with('✓'), "{check}: {out}");
    }
    assert!(line(&out, "acl", "").contains("worker rights"), "{out}");
    let n = format!("{} scripts", baton::scripts::ScriptName::ALL.len());
    assert!(line(&out, "scripts", "").contains(&n), "{out}");
    assert!(
        line(&out, "workers", "queue q").contains("1 live worker"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("0 failure(s)"), "{out}");
}

#[test]
fn an_evicting_redis_fails_naming_the_fix_in_text_and_json() {
    let redis = LocalRedis::start_with(&["--maxmemory-policy", "allkeys-lru"]).unwrap();
    let dir = TempDir::new();
    let cfg = product_config(&dir, &redis.url(), "");
    let (code, out, err) = baton(&cfg, &["doctor"]);
    assert_eq!(code, 1, "{out}{err}");
    let l = line(&out, "eviction", "");
    assert!(l.starts_with('✗'), "{out}");
    assert!(
        l.contains("maxmemory-policy allkeys-lru") && l.ends_with("— fix: set maxmemory-policy noeviction"),
        "{l}"
    );
    // LocalRedis runs without persistence: a warning, with its fix.
    assert!(line(&out, "persistence", "").starts_with('!'), "{out}");
    assert!(
        line(&out, "persistence", "").contains("fix: enable appendonly yes"),
        "{out}"
    );

    let (code, out, err) = baton(&cfg, &["doctor", "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let findings = v.as_array().expect("an array of findings");
    assert!(findings.len() >= 8, "{out}");
    for f in findings {
        let o = f.as_object().unwrap();
        let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["check", "fix", "message", "status"], "{f}");
        let status = f["status"].as_str().unwrap();
        assert!(["ok", "warn", "fail"].contains(&status), "{f}");
        assert_eq!(
            f["fix"].is_null(),
            status == "ok",
            "a fix exactly when not ok: {f}"
        );
    }
    let eviction = findings
        .iter()
        .find(|f| f["check"] == "eviction")
        .expect("eviction finding");
    assert_eq!(eviction["status"], "fail");
    assert_eq!(eviction["fix"], "set maxmemory-policy noeviction");
    assert!(
        findings
            .iter()
            .any(|f| f["check"] == "redis" && f["status"] == "ok"),
        "{out}"
    );
}

#[test]
fn a_configured_queue_without_workers_is_a_warning_naming_it() {
    let redis = LocalRedis::start_with(&["--appendonly", "yes"]).unwrap();
    let dir = TempDir::new();
    let cfg = product_config(
        &dir,
        &redis.url(),
        &format!("{HANDLER}\n[queues.lonely]\nheartbeat = \"1s\"\n"),
    );
    let _worker = Proc::start(WORKER, &cfg); // serves q only
    let start = Instant::now();
    let (code, out, err) = loop {
        let r = baton(&cfg, &["doctor"]);
        if r.1.contains("✓ workers") || start.elapsed() > Duration::from_secs(15) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 0, "warnings alone exit 0: {out}{err}");
    assert!(line(&out, "workers", "queue q").starts_with('✓'), "{out}");
    let l = line(&out, "workers", "lonely");
    assert!(l.starts_with('!'), "{out}");
    assert!(
        l.contains("no worker has heartbeated on queue lonely in 1s 500ms")
            && l.contains("fix: start baton-worker with worker.queues including lonely"),
        "{l}"
    );
}

#[test]
fn a_queue_of_another_schema_version_fails() {
    let redis = LocalRedis::start_with(&["--appendonly", "yes"]).unwrap();
    let dir = TempDir::new();
    let cfg = product_config(&dir, &redis.url(), "[queues.old]\n");
    assert_eq!(cli(&redis, &["HSET", "baton:{old}:meta", "v", "99"]), "1");
    let (code, out, err) = baton(&cfg, &["doctor"]);
    assert_eq!(code, 1, "{out}{err}");
    let l = line(&out, "schema", "queue old");
    assert!(l.starts_with('✗'), "{out}");
    assert!(
        l.contains("schema v99") && l.contains("fix: run the baton release"),
        "{l}"
    );
    // The other queue is new: fine.
    assert!(line(&out, "schema", "queue q").starts_with('✓'), "{out}");
}

#[test]
fn other_cli_commands_do_not_print_the_persistence_warning() {
    let redis = LocalRedis::start().unwrap(); // save "" and appendonly no
    let dir = TempDir::new();
    let cfg = product_config(&dir, &redis.url(), "");
    for args in [
        &["stats", "--queue", "q", "--sample", "0s"][..],
        &["enqueue", "-q", "q", "-k", "echo", "--payload", "{}"],
        &["workers", "-q", "q"],
    ] {
        let (code, _out, err) = baton(&cfg, args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(
            !err.contains("no persistence") && !err.contains("appendonly"),
            "{args:?} printed the warning: {err}"
        );
    }
    // doctor is where it is reported.
    let (code, out, _) = baton(&cfg, &["doctor"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        line(&out, "persistence", "").starts_with("! persistence"),
        "{out}"
    );
    assert!(line(&out, "persistence", "").contains("no persistence"), "{out}");
}

/// The rules of docs/operations.md, "ACL users", for `role`.
fn rules(role: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).unwrap();
    let marker = format!("ACL SETUSER baton-{role} ");
    let l = doc
        .lines()
        .find(|l| l.trim_start().starts_with(&marker))
        .unwrap_or_else(|| panic!("docs/operations.md has no `{marker}` line"));
    l.trim_start()
        .trim_start_matches(&marker)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn setuser(redis: &LocalRedis, user: &str, role: &str, password: &str, extra: &[&str]) {
    let mut args: Vec<String> = vec!["ACL".into(), "SETUSER".into(), user.into()];
    args.extend(rules(role).into_iter().map(|r| r.replace("<password>", password)));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(cli(redis, &args), "OK", "{args:?}");
}

#[tokio::test]
async fn acl_roles_are_told_apart_and_doctor_writes_nothing() {
    let redis = LocalRedis::start_with(&["--appendonly", "yes"]).unwrap();
    setuser(&redis, "baton-worker", "worker", "w", &[]);
    setuser(&redis, "baton-producer", "producer", "p", &[]);
    // A producer allowed ACL DRYRUN: the commands it lacks are listed one by one.
    setuser(
        &redis,
        "producer-dry",
        "producer",
        "d",
        &["+acl|dryrun", "+acl|whoami"],
    );
    let dir = TempDir::new();
    let mut raw = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let before = common::snapshot(&mut raw).await;

    let doctor_as = |user: &str, pass: &str| {
        let cfg = product_config(&dir, &redis.url(), "");
        let text = std::fs::read_to_string(&cfg).unwrap().replacen(
            "[redis]\n",
            &format!("[redis]\nusername = \"{user}\"\npassword = \"{pass}\"\n"),
            1,
        );
        std::fs::write(&cfg, text).unwrap();
        baton(&cfg, &["doctor"])
    };

    let (code, out, err) = doctor_as("baton-worker", "w");
    assert_eq!(code, 0, "{out}{err}");
    let l = line(&out, "acl", "");
    assert!(
        l.starts_with('✓') && l.contains("baton-worker has worker rights"),
        "{out}"
    );
    assert!(
        l.contains("probed with a no-op heartbeat"),
        "no ACL DRYRUN for this user: {l}"
    );
    // Without CONFIG GET the settings are not checked: a warning, not a failure.
    assert!(line(&out, "persistence", "").contains("not checked"), "{out}");

    let (code, out, err) = doctor_as("baton-producer", "p");
    assert_eq!(code, 0, "{out}{err}");
    let l = line(&out, "acl", "");
    assert!(l.starts_with('!'), "{out}");
    assert!(
        l.contains("baton-producer has producer rights only (denied: ZPOPMIN)") && l.contains("fix:"),
        "{l}"
    );

    let (code, out, err) = doctor_as("producer-dry", "d");
    assert_eq!(code, 0, "{out}{err}");
    let l = line(&out, "acl", "");
    assert!(l.starts_with('!'), "{out}");
    assert!(
        l.contains("producer-dry has producer rights only (denied: ZPOPMIN, HDEL, ZRANGEBYLEX"),
        "{l}"
    );
    assert!(!l.contains("probed"), "DRYRUN was allowed: {l}");

    assert_eq!(common::snapshot(&mut raw).await, before, "doctor wrote to Redis");
}

#[test]
fn an_unreachable_redis_fails_with_the_fix() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new();
    let cfg = product_config(&dir, &format!("redis://127.0.0.1:{port}/0"), "");
    let (code, out, err) = baton(&cfg, &["doctor"]);
    assert_eq!(code, 1, "{out}{err}");
    let l = line(&out, "redis", "");
    assert!(
        l.starts_with('✗') && l.contains("cannot reach Redis") && l.contains("fix:"),
        "{out}"
    );
}
