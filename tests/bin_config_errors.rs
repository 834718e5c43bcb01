//! The binaries refuse bad configuration at start with a message naming the key and the fix,
//! report a wrong password clearly, and wait for a Redis that is not up yet (saying so, with the
//! fix) instead of exiting.
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
fn services_wait_for_redis_then_run_and_a_wrong_password_names_the_fix() {
    // a port with no Redis behind it yet
    let mut gone = baton::local_redis::LocalRedis::start().unwrap();
    let port = gone.port();
    gone.stop();
    let dir = TempDir::new();
    let cfg = dir.write(
        "later.toml",
        &format!("[redis]\nurl = \"redis://127.0.0.1:{port}/0\"\nconnect_timeout = \"1s\"\n[queues.q]\n[worker]\nqueues = [\"q\"]\nmaintenance = false\n"),
    );
    let start = |bin: &str, log: &str| {
        std::process::Command::new(bin)
            .arg("--config")
            .arg(&cfg)
            .env("BATON_LOG", "warn")
            .stderr(std::fs::File::create(dir.path(log)).unwrap())
            .spawn()
            .unwrap()
    };
    let mut procs = [
        Proc {
            child: start(WORKER, "worker.log"),
        },
        Proc {
            child: start(SCHEDULER, "scheduler.log"),
        },
    ];
    std::thread::sleep(Duration::from_millis(1500));
    for (p, log) in procs.iter_mut().zip(["worker.log", "scheduler.log"]) {
        assert!(
            p.child.try_wait().unwrap().is_none(),
            "{log}: must wait for Redis, not exit"
        );
        let text = std::fs::read_to_string(dir.path(log)).unwrap();
        assert!(
            text.contains("waiting for Redis")
                && text.contains("cannot reach Redis")
                && text.contains("redis.url"),
            "{log}: {text}"
        );
    }
    // Redis comes up on that port: both connect and go to work (the worker registers, the
    // scheduler promotes a delayed task: the worker's own maintenance is off)
    let redis = common::topo::Node::data(port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (registered, promoted) = rt.block_on(async {
        let url = format!("redis://127.0.0.1:{port}/0");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let q = loop {
            match baton::Client::connect(common::test_config(&url)).await {
                Ok(c) => break c.queue("q").unwrap(),
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("{e}"),
            }
        };
        let id = q
            .enqueue(baton::TaskSpec::new("k", "").delay(Duration::from_millis(200)))
            .await
            .unwrap()
            .id;
        let (mut registered, mut promoted) = (false, false);
        while std::time::Instant::now() < deadline && !(registered && promoted) {
            registered = !q.workers(10).await.unwrap().is_empty();
            promoted = q.get(&id).await.unwrap().unwrap().state != baton::State::Delayed;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (registered, promoted)
    });
    for p in &mut procs {
        p.signal("TERM");
    }
    let exits: Vec<_> = procs
        .iter_mut()
        .map(|p| p.wait_exit(Duration::from_secs(10)))
        .collect();
    drop(redis);
    assert!(registered, "the worker registered once Redis was up");
    assert!(
        promoted,
        "the scheduler promoted the delayed task once Redis was up"
    );
    assert_eq!(
        exits,
        vec![Some(0), Some(0)],
        "both ran, then stopped cleanly on SIGTERM"
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
