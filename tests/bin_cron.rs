//! Two baton-scheduler replicas fire a cron entry: every occurrence becomes exactly one task.
mod common;
use common::{product_config, Proc, TempDir, SCHEDULER};
use std::time::Duration;

#[tokio::test]
async fn two_schedulers_fire_each_occurrence_once() {
    let env = common::env().await;
    let dir = TempDir::new();
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        "[scheduler.cron.tick]\nschedule = \"* * * * * *\"\nqueue = \"q\"\nkind = \"tick\"\npayload = '{\"from\":\"cron\"}'\n",
    );
    let mut a = Proc::start(SCHEDULER, &cfg);
    let mut b = Proc::start(SCHEDULER, &cfg);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    a.signal("TERM");
    b.signal("TERM");
    assert_eq!(a.wait_exit(Duration::from_secs(5)), Some(0));
    assert_eq!(b.wait_exit(Duration::from_secs(5)), Some(0));

    let q = env.queue();
    let pending: Vec<String> = q
        .conn()
        .query(
            redis::cmd("ZRANGE")
                .arg(q.keys().key(baton::keys::Role::Pending))
                .arg(0)
                .arg(-1),
        )
        .await
        .unwrap();
    let keys: Vec<String> = q
        .conn()
        .query(redis::cmd("KEYS").arg(q.keys().idem("cron:tick:*")))
        .await
        .unwrap();
    assert!(
        (3..=6).contains(&pending.len()),
        "about one task per second: {}",
        pending.len()
    );
    assert_eq!(
        keys.len(),
        pending.len(),
        "one task per occurrence, no duplicates"
    );
    let mut seconds: Vec<i64> = keys
        .iter()
        .map(|k| k.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    seconds.sort();
    assert!(
        seconds.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive seconds: {seconds:?}"
    );
    for id in &pending {
        let t = q.get(id).await.unwrap().unwrap();
        assert_eq!(
            (t.record.kind.as_str(), t.record.payload.as_slice()),
            ("tick", &br#"{"from":"cron"}"#[..])
        );
    }
}
