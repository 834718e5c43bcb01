//! A worker process killed with SIGKILL mid-task loses nothing: its leases expire, reclaim puts
//! the tasks back, and another worker completes every one of them.
mod common;
use baton::{Client, TaskSpec, Worker};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "BATON_TEST_CHILD_REDIS_URL";

/// The worker process the parent kills. Not a test of its own: run only as the child.
#[tokio::test]
#[ignore = "helper process for sigkill_worker_loses_no_task"]
async fn child_worker() {
    let url = std::env::var(CHILD_ENV).expect("run by sigkill_worker_loses_no_task");
    let mut cfg = common::test_config(&url);
    cfg.worker.maintenance = false;
    let client = Client::connect(cfg).await.unwrap();
    let worker = Worker::builder(&client, "q")
        .unwrap()
        .concurrency(4)
        .handler("work", |_t| async {
            tokio::time::sleep(Duration::from_secs(60)).await; // killed long before this ends
            Ok(b"child".to_vec())
        })
        .build()
        .unwrap();
    worker.run(std::future::pending()).await.unwrap();
}

#[tokio::test]
async fn sigkill_worker_loses_no_task() {
    let env = common::env().await; // lease 1s, heartbeat 300ms
    let q = env.queue();
    let ids: Vec<String> = q
        .enqueue_batch((0..20).map(|i| TaskSpec::new("work", format!("{i}"))).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_worker", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, env.redis.url())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    common::eventually(Duration::from_secs(20), "child worker holds 4 leases", || {
        let q = q.clone();
        async move { q.counts().await.unwrap().leased == 4 }
    })
    .await;
    // let it heartbeat a few times so the leases are live ones, then kill it mid-task
    tokio::time::sleep(Duration::from_millis(700)).await;
    let held: Vec<String> = q
        .conn()
        .query(
            redis::cmd("ZRANGE")
                .arg(q.keys().key(baton::keys::Role::Leased))
                .arg(0)
                .arg(-1),
        )
        .await
        .unwrap();
    assert_eq!(held.len(), 4);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = Instant::now();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .concurrency(8)
        .handler("work", move |t: baton::TaskContext| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((t.id.clone(), Instant::now()));
                Ok(b"survivor".to_vec())
            }
        })
        .build()
        .unwrap();
    let stats = worker.stats();
    let (stop, h) = common::spawn_worker(worker);

    common::eventually(Duration::from_secs(15), "all 20 tasks done", || {
        let q = q.clone();
        async move { q.counts().await.unwrap().done == 20 }
    })
    .await;
    let mut rerun_after = None;
    while let Ok((id, at)) = rx.try_recv() {
        if held.contains(&id) {
            let d = at - killed_at;
            rerun_after = Some(rerun_after.map_or(d, |r: Duration| r.max(d)));
        }
    }
    let rerun_after = rerun_after.expect("the killed worker's tasks ran again here");
    eprintln!("SIGKILL -> last held task re-running elsewhere: {rerun_after:?} (lease 1s)");
    assert!(rerun_after < Duration::from_secs(3), "{rerun_after:?}");
    for id in &ids {
        common::assert_state(&q, id, "done").await;
        let t = q.get(id).await.unwrap().unwrap();
        assert_eq!(t.result.as_deref(), Some(&b"survivor"[..]));
        assert_eq!(t.attempts, if held.contains(id) { 2 } else { 1 }, "task {id}");
    }
    assert_eq!(stats.completed.load(Ordering::SeqCst), 20);
    stop.cancel();
    h.await.unwrap().unwrap();
}
