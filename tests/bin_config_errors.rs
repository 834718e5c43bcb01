//! The binaries refuse bad configuration at start with a message naming the key and the fix,
//! and report an unreachable Redis or wrong password clearly.
mod common;
use common::{Proc, TempDir, SCHEDULER, WORKER};
use std::time::Duration;

fn start_fails(bin: &str, config: &str, needles: &[&str]) {
    let dir = TempDir::new();
    let path = dir.write("bad.toml", config);
    let out = std::process::Command::new(bin)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{bin} must exit 1: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{bin}: {stderr:?} should mention {n:?}");
    }
}

#[test]
fn typos_bad_durations_and_impossible_values_are_refused() {
    start_fails(WORKER, "[worker]\nconcurency = 4\n", &["concurency"]);
    start_fails(WORKER, "[queues.q]\nlease = \"4 parsecs\"\n", &["lease"]);
    start_fails(
        WORKER,
        "[queues.q]\nlease = \"2s\"\nheartbeat = \"2s\"\n",
        &["queues.q.heartbeat", "shorter than the lease"],
    );
    start_fails(
        WORKER,
        "[worker]\nconcurrency = 0\n",
        &["worker.concurrency", "at least 1"],
    );
    start_fails(
        WORKER,
        "[worker.handlers.x]\nexec = [\"cat\"]\nhttp = \"http://x\"\n",
        &["worker.handlers.x", "exactly one"],
    );
    start_fails(
        SCHEDULER,
        "[scheduler.cron.nightly]\nschedule = \"every night\"\nkind = \"k\"\n",
        &["scheduler.cron.nightly.schedule", "5 fields"],
    );
    // past the scripts' limits: refused at start, not by every claim or reclaim at run time
    start_fails(
        WORKER,
        "[queues.emails]\nlease = \"48h\"\n",
        &["queues.emails.lease", "1day", "claim.lease_ms"],
    );
    start_fails(
        SCHEDULER,
        "[queues.emails]\ndead_ttl = \"4000d\"\n",
        &["queues.emails.dead_ttl", "reclaim.dead_ttl_ms"],
    );
    start_fails(SCHEDULER, "[redis]\nurl = \"http://localhost\"\n", &["redis.url"]);
    start_fails(SCHEDULER, "[redis\nurl = 1\n", &["TOML"]);
    let out = std::process::Command::new(WORKER)
        .args(["--config", "/nonexistent/baton.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn unreachable_redis_and_wrong_password_name_the_fix() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    start_fails(
        WORKER,
        &format!("[redis]\nurl = \"redis://127.0.0.1:{port}/0\"\nconnect_timeout = \"1s\"\n"),
        &["cannot reach Redis", "redis.url"],
    );
    let redis = baton::local_redis::LocalRedis::start_with(&["--requirepass", "sesame"]).unwrap();
    start_fails(
        SCHEDULER,
        &format!("[redis]\nurl = \"{}\"\npassword = \"wrong\"\n", redis.url()),
        &["refused the credentials", "redis.password"],
    );
    // the right password works: the scheduler runs until SIGTERM and exits 0
    let dir = TempDir::new();
    let ok = dir.write(
        "ok.toml",
        &format!("[redis]\nurl = \"{}\"\npassword = \"sesame\"\n", redis.url()),
    );
    let mut p = Proc::start(SCHEDULER, &ok);
    std::thread::sleep(Duration::from_millis(500));
    assert!(p.child.try_wait().unwrap().is_none(), "scheduler still running");
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn environment_overrides_the_file() {
    let dir = TempDir::new();
    let path = dir.write("c.toml", "[worker]\nconcurrency = 4\n");
    let out = std::process::Command::new(WORKER)
        .arg("--config")
        .arg(&path)
        .env("BATON__WORKER__CONCURRENCY", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("worker.concurrency"));
}
