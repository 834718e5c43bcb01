//! A 10,000-wide fan-out joined by one task, worked by worker processes SIGKILLed every 1.5
//! seconds (their leases expire and reclaim redelivers the tasks): the join is released once,
//! after the last child finished, and reads all 10,000 results in one call.
mod common;
use baton::{Client, Outcome, TaskSpec, Worker};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "BATON_TEST_FANIN_REDIS_URL";
const WIDTH: usize = 10_000;

/// A worker process the parent kills. Not a test of its own: run only as the child.
#[tokio::test]
#[ignore = "helper process for a_fan_in_joins_once_under_sigkills"]
async fn fan_in_child_worker() {
    let url = std::env::var(CHILD_ENV).expect("run by a_fan_in_joins_once_under_sigkills");
    let mut cfg = common::test_config(&url);
    cfg.worker.maintenance = false;
    let qc = cfg.queues.get_mut("q").unwrap();
    qc.max_attempts = 50;
    qc.events_max_len = 1_000_000; // the parent reads every event back
    let client = Client::connect(cfg).await.unwrap();
    let worker = Worker::builder(&client, "q")
        .unwrap()
        .concurrency(32)
        .handler("child", |t: baton::TaskContext| async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            Ok(t.payload.clone())
        })
        .handler("join", |t: baton::TaskContext| async move {
            let deps = t
                .dependencies()
                .await
                .map_err(|e| baton::HandlerError::retry(e.to_string()))?;
            let done = deps
                .iter()
                .filter(|d| {
                    d.state == baton::State::Done && d.result == format!("c{}", &d.id[2..]).into_bytes()
                })
                .count();
            Ok(format!("{done}/{}", deps.len()).into_bytes())
        })
        .build()
        .unwrap();
    worker.run(std::future::pending()).await.unwrap();
}

fn spawn_child(url: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["fan_in_child_worker", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_fan_in_joins_once_under_sigkills() {
    let env = common::env_with(|c| {
        let q = c.queues.get_mut("q").unwrap();
        q.max_attempts = 50;
        q.events_max_len = 1_000_000;
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    let specs: Vec<TaskSpec> = (0..WIDTH)
        .map(|i| TaskSpec::new("child", format!("c{i}")).id(format!("c-{i}")))
        .collect();
    let ids = common::enqueue_all(&q, specs).await;
    let join = q
        .enqueue(TaskSpec::new("join", "").id("join").after(ids.clone()))
        .await
        .unwrap()
        .id;
    assert_eq!(q.get(&join).await.unwrap().unwrap().state, baton::State::Waiting);
    let (mstop, mh) = common::maintain(&env, &q); // reclaims the killed workers' leases
    let url = env.redis.url();
    let mut kids: Vec<Child> = (0..3).map(|_| spawn_child(&url)).collect();
    let started = Instant::now();
    let mut kills = 0;
    let mut next_kill = Instant::now() + Duration::from_millis(1500);
    loop {
        let t = q.get(&join).await.unwrap().unwrap();
        if t.state == baton::State::Done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "not joined in 150 s: {t:?}"
        );
        if Instant::now() >= next_kill {
            let mut victim = kids.remove(0);
            victim.kill().unwrap(); // SIGKILL
            victim.wait().unwrap();
            kills += 1;
            kids.push(spawn_child(&url));
            next_kill = Instant::now() + Duration::from_millis(1500);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    for mut k in kids {
        let _ = k.kill();
        let _ = k.wait();
    }
    mstop.cancel();
    mh.await.unwrap().unwrap();
    assert_eq!(
        q.wait(&join, Duration::from_secs(1)).await.unwrap(),
        Outcome::Done(format!("{WIDTH}/{WIDTH}").into_bytes()),
        "the join saw every child's result"
    );
    // from the events: every child completed, the join was released (claimed) only after the
    // last child's completion, and completed once
    let mut last_child_done = 0u64;
    let (mut join_claims, mut join_done, mut reclaimed) = (Vec::new(), 0, 0);
    let mut after = "0-0".to_string();
    let mut done = std::collections::HashSet::new();
    loop {
        let evs = q.events_after(&after, 1000).await.unwrap();
        let Some(last) = evs.last() else { break };
        after = last.id.clone();
        for e in evs {
            for t in &e.tasks {
                match (e.kind.as_str(), t.id == join) {
                    ("completed", false) => {
                        done.insert(t.id.clone());
                        last_child_done = last_child_done.max(e.at_ms);
                    }
                    ("completed", true) => join_done += 1,
                    ("claimed", true) => join_claims.push(e.at_ms),
                    ("reclaimed", false) => reclaimed += 1,
                    _ => {}
                }
            }
        }
    }
    assert_eq!(done.len(), WIDTH, "every child completed");
    assert!(
        kills >= 2 && reclaimed > 0,
        "the run saw {kills} kills, {reclaimed} reclaims"
    );
    assert_eq!(join_done, 1, "the join completed once");
    assert!(!join_claims.is_empty());
    assert!(
        join_claims[0] >= last_child_done,
        "the join was claimed at {} before the last child completed at {last_child_done}",
        join_claims[0]
    );
    assert_eq!(q.counts().await.unwrap().waiting, 0);
    eprintln!(
        "fan-in {WIDTH}: joined in {:.1} s with {kills} worker SIGKILLs ({reclaimed} leases reclaimed); \
         join claimed {} ms after the last child completed, claimed {} time(s)",
        took.as_secs_f64(),
        join_claims[0] - last_child_done,
        join_claims.len()
    );
}
