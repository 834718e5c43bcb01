//! A worker whose acknowledgement Redis refuses as stale (its lease was taken away while the
//! handler ran) does not report a completion: the refusal is counted as its own outcome, in
//! the worker's stats and in `baton_worker_tasks_total{outcome="stale"}`.
mod common;
use baton::keys::Role;
use baton::TaskSpec;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test]
async fn a_refused_completion_is_counted_as_stale_not_completed() {
    let prometheus = baton::metrics::install();
    // no heartbeat between the lease's removal and the acknowledgement: a heartbeat would find
    // the lease gone first and stop the handler (counted as lost, not as a stale acknowledgement)
    let env = common::env_with(|c| {
        let q = c.queues.get_mut("q").unwrap();
        q.lease = Duration::from_secs(30);
        q.heartbeat = Duration::from_secs(10);
    })
    .await;
    let q = env.queue();
    let id = q.enqueue(TaskSpec::new("k", "x")).await.unwrap().id;
    let lease_key = q.keys().key(Role::Lease).to_string();
    let url = env.redis.url();
    let worker = baton::Worker::builder(&env.client, "q")
        .unwrap()
        .maintenance(None)
        .handler("k", move |t: baton::TaskContext| {
            let (lease_key, url) = (lease_key.clone(), url.clone());
            async move {
                // past the worker's first heartbeat, which it sends as it starts
                tokio::time::sleep(Duration::from_millis(300)).await;
                // the lease is taken away under the running handler (as a reclaim would)
                let mut raw = redis::Client::open(url)
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap();
                let _: i64 = redis::cmd("HDEL")
                    .arg(&lease_key)
                    .arg(&t.id)
                    .query_async(&mut raw)
                    .await
                    .unwrap();
                Ok(b"late".to_vec())
            }
        })
        .build()
        .unwrap();
    let stats = worker.stats();
    let (stop, h) = common::spawn_worker(worker);
    common::eventually(Duration::from_secs(5), "the acknowledgement was answered", || {
        let stats = stats.clone();
        async move { stats.stale.load(Ordering::Relaxed) + stats.completed.load(Ordering::Relaxed) > 0 }
    })
    .await;
    stop.cancel();
    h.await.unwrap().unwrap();
    assert_eq!(stats.stale.load(Ordering::Relaxed), 1);
    assert_eq!(stats.completed.load(Ordering::Relaxed), 0);
    assert_ne!(q.get(&id).await.unwrap().unwrap().state, baton::State::Done);
    let page = prometheus.render();
    let line = |outcome: &str| {
        page.lines()
            .find(|l| {
                l.starts_with("baton_worker_tasks_total") && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .map(str::to_string)
    };
    assert_eq!(
        line("stale").as_deref().map(|l| l.ends_with(" 1")),
        Some(true),
        "{page}"
    );
    assert_eq!(
        line("completed"),
        None,
        "a refused completion was reported as done:\n{page}"
    );
}
