//! Scripts are run by SHA: after the script cache is emptied (restart, failover, SCRIPT FLUSH)
//! calls reload them and go through, single and pipelined. A queue whose data schema differs
//! from the scripts' is refused with a clear error and left untouched.
mod common;
use baton::{Error, TaskSpec, Worker};
use std::time::Duration;

#[tokio::test]
async fn calls_survive_an_emptied_script_cache() {
    let env = common::env().await;
    let q = env.queue();
    let mut raw = env.raw().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let id = q.enqueue(TaskSpec::new("k", "p")).await.unwrap().id;
    let c = q.claim("w", 1).await.unwrap().remove(0);

    // pipelined: flush again, then a complete + fail pipeline (the worker's acknowledgement path)
    let id2 = q.enqueue(TaskSpec::new("k", "p2")).await.unwrap().id;
    let c2 = q.claim("w", 1).await.unwrap().remove(0);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let mut complete = baton::conn::Call::new(baton::scripts::ScriptName::Complete, q.keys().keyset(), &[]);
    complete
        .named("worker", "w")
        .named("busy_ms", 0)
        .named("id", &id)
        .named("token", &c.token)
        .named("result_ttl_ms", 60_000)
        .named("result", "r1");
    let mut fail = baton::conn::Call::new(baton::scripts::ScriptName::Fail, q.keys().keyset(), &[]);
    fail.arg("w")
        .arg(1000)
        .arg(0)
        .arg(&id2)
        .arg(&c2.token)
        .arg("e")
        .arg("final");
    let results = q.conn().eval_pipeline(&[complete, fail], "q").await.unwrap();
    assert_eq!(results.len(), 2);
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    common::assert_state(&q, &id, "done").await;
    common::assert_state(&q, &id2, "dead").await;

    // a whole worker run with the cache flushed under it
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .handler("k", |_t| async { Ok(b"w".to_vec()) })
        .build()
        .unwrap();
    let (stop, h) = common::spawn_worker(worker);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let id3 = q.enqueue(TaskSpec::new("k", "p3")).await.unwrap().id;
    assert_eq!(
        q.wait(&id3, Duration::from_secs(5)).await.unwrap(),
        baton::Outcome::Done(b"w".to_vec())
    );
    stop.cancel();
    h.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_queue_with_another_schema_version_is_refused() {
    let env = common::env().await;
    let q = env.queue();
    q.enqueue(TaskSpec::new("k", "p")).await.unwrap();
    common::set_schema_version(&env, &q, "99").await;
    let mut raw = env.raw().await;
    let before = common::snapshot(&mut raw).await;
    let e = q.enqueue(TaskSpec::new("k", "p")).await.unwrap_err();
    assert!(matches!(e, Error::VersionMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("v99") && msg.contains(&format!("v{}", baton::scripts::SCHEMA_VERSION)),
        "{msg}"
    );
    assert!(matches!(
        q.claim("w", 1).await,
        Err(Error::VersionMismatch { .. })
    ));
    assert!(matches!(q.counts().await, Err(Error::VersionMismatch { .. })));
    assert!(matches!(q.reclaim(10).await, Err(Error::VersionMismatch { .. })));
    assert_eq!(common::snapshot(&mut raw).await, before);
}
