//! Security: ACL users with the least-privilege rules of docs/operations.md (applied here with
//! ACL SETUSER), passwords, and TLS with a custom CA — each on a private redis-server.
mod common;
use baton::local_redis::LocalRedis;
use baton::{Client, Config, Error, TaskSpec};
use common::TempDir;
use std::process::Command;

/// The rules of docs/operations.md, "ACL users" (kept identical: a test reads them from there).
fn rules(role: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).unwrap();
    let marker = format!("ACL SETUSER baton-{role} ");
    let line = doc
        .lines()
        .find(|l| l.trim_start().starts_with(&marker))
        .unwrap_or_else(|| panic!("docs/operations.md has no `{marker}` line"));
    let rest = line.trim_start().trim_start_matches(&marker);
    rest.split_whitespace().map(str::to_string).collect()
}

fn setuser(redis: &LocalRedis, role: &str, password: &str) {
    let mut args: Vec<String> = vec!["ACL".into(), "SETUSER".into(), format!("baton-{role}")];
    for r in rules(role) {
        args.push(r.replace("<password>", password));
    }
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(redis.port().to_string())
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "OK",
        "ACL SETUSER {args:?}"
    );
}

fn config_as(url: &str, user: &str, password: &str) -> Config {
    let mut c = common::test_config(url);
    c.redis.username = Some(user.into());
    c.redis.password = Some(password.into());
    c
}

#[tokio::test]
async fn worker_and_producer_acl_users_can_do_their_part_and_nothing_more() {
    let redis = LocalRedis::start().unwrap();
    setuser(&redis, "worker", "w-secret");
    setuser(&redis, "producer", "p-secret");

    // The worker user runs the whole life of a task, including maintenance and events.
    let worker = Client::connect(config_as(&redis.url(), "baton-worker", "w-secret"))
        .await
        .expect("worker user connects");
    let wq = worker.queue("q").unwrap();
    wq.configure().await.unwrap();
    let producer = Client::connect(config_as(&redis.url(), "baton-producer", "p-secret"))
        .await
        .expect("producer user connects");
    let pq = producer.queue("q").unwrap();
    let id = pq
        .enqueue(TaskSpec::new("k", "payload"))
        .await
        .expect("producer enqueues")
        .id;
    assert!(pq.get(&id).await.unwrap().is_some(), "producer reads its task");
    // idempotency, unique and throttle keys are within the producer's rules too
    let keyed = TaskSpec::new("k", "keyed").idempotency_key("i1");
    assert!(pq.enqueue(keyed).await.expect("idempotency key").created);
    let uniq = TaskSpec::new("k", "unique").unique("u1");
    assert!(pq.enqueue(uniq).await.expect("unique key").created);
    let again = pq
        .enqueue(TaskSpec::new("k", "unique").unique("u1"))
        .await
        .unwrap();
    assert!(again.unique_held);
    pq.enqueue(TaskSpec::new("k", "t").throttle("t1", std::time::Duration::from_secs(5)))
        .await
        .expect("throttle key");
    assert_eq!(pq.counts().await.unwrap().pending, 4);
    // dependencies and whole flows are a producer's to submit (sealing included)
    let dep = pq
        .enqueue(TaskSpec::new("k", "dep").after([id.clone()]))
        .await
        .expect("after");
    assert!(dep.created);
    let flow = baton::Flow::new()
        .task("a", TaskSpec::new("k", "a"))
        .task("b", TaskSpec::new("k", "b").after(["a"]))
        .on_complete(TaskSpec::new("k", "cb"));
    let sub = pq.flow(flow).await.expect("producer submits a flow");
    let st = pq.flow_status(&sub.id, 0, 10).await.unwrap().unwrap();
    assert_eq!((st.state, st.total), (baton::FlowState::Sealed, 2));
    assert_eq!(
        pq.counts().await.unwrap().pending,
        5,
        "the flow's first task was released by the seal"
    );

    // The producer may not take work: refused before any write, nothing changed.
    let before = common::snapshot(&mut redis_conn(&redis).await).await;
    let err = pq.claim("p", 10).await.unwrap_err();
    assert!(matches!(err, Error::NoPermission { .. }), "{err}");
    assert!(err.to_string().contains("docs/operations.md"), "{err}");
    for refused in [
        pq.set_paused(true).await.err(),
        pq.requeue_oldest_dead(10).await.err(),
        pq.promote(10).await.err(),
    ] {
        assert!(matches!(refused, Some(Error::NoPermission { .. })), "{refused:?}");
    }
    assert_eq!(
        common::snapshot(&mut redis_conn(&redis).await).await,
        before,
        "no partial write"
    );

    // The worker user claims, completes, reclaims, trims, reads events.
    let c = wq.claim("w1", 10).await.unwrap();
    assert_eq!(c.len(), 5);
    for t in &c {
        wq.complete("w1", t, b"ok").await.unwrap();
    }
    wq.reclaim(10).await.unwrap();
    wq.promote(10).await.unwrap();
    wq.trim(10).await.unwrap();
    assert!(wq.recent_events(10).await.unwrap().len() >= 3);
    let waited = pq.wait(&id, std::time::Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        waited,
        baton::Outcome::Done(b"ok".to_vec()),
        "producer waits for results"
    );

    // Across queues: the producer enqueues after a task of another queue and submits a flow
    // over two queues; the worker user carries the outboxes, and the hand-offs go through.
    let pq2 = producer.queue("q2").unwrap();
    let cross = pq2
        .enqueue(TaskSpec::new("k", "cross").after([format!("q/{id}")]))
        .await
        .expect("producer enqueues after a task of another queue")
        .id;
    let flow = baton::Flow::new()
        .id("two-queues")
        .task("a", TaskSpec::new("k", "a"))
        .task_in("q2", "b", TaskSpec::new("k", "b").after(["a"]));
    pq.flow(flow)
        .await
        .expect("producer submits a flow over two queues");
    let wq2 = worker.queue("q2").unwrap();
    for _ in 0..3 {
        wq2.move_outbox(100).await.expect("worker carries q2's outbox");
        wq.move_outbox(100).await.expect("worker carries q's outbox");
    }
    assert_eq!(
        pq2.get(&cross).await.unwrap().unwrap().state,
        baton::State::Pending
    );

    // Neither may touch keys outside the prefix or run other commands.
    let mut raw = user_conn(&redis, "baton-worker", "w-secret").await;
    let denied: redis::RedisResult<()> = redis::cmd("SET")
        .arg("other:key")
        .arg("1")
        .query_async(&mut raw)
        .await;
    let e = denied.unwrap_err();
    assert!(
        e.code() == Some("NOPERM") || e.to_string().contains("permission"),
        "{e}"
    );
    let denied: redis::RedisResult<()> = redis::cmd("FLUSHALL").query_async(&mut raw).await;
    let e = denied.unwrap_err();
    assert!(
        e.code() == Some("NOPERM") || e.to_string().contains("permission"),
        "{e}"
    );
}

#[tokio::test]
async fn wrong_credentials_and_users_without_rights_get_clear_errors() {
    let redis = LocalRedis::start().unwrap();
    setuser(&redis, "worker", "w-secret");
    let err = Client::connect(config_as(&redis.url(), "baton-worker", "wrong"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert!(err.to_string().contains("redis.password"), "{err}");
    // A user that may log in but not load Baton's scripts.
    let out = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port().to_string(),
            "ACL",
            "SETUSER",
            "nobody",
            "on",
            ">pw",
            "-@all",
            "+ping",
            "+info",
            "+hello",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    let err = Client::connect(config_as(&redis.url(), "nobody", "pw"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::NoPermission { .. }), "{err}");
    assert!(err.to_string().contains("ACL"), "{err}");
}

async fn redis_conn(redis: &LocalRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn user_conn(redis: &LocalRedis, user: &str, pw: &str) -> redis::aio::MultiplexedConnection {
    let url = format!("redis://{user}:{pw}@127.0.0.1:{}/0", redis.port());
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
fn make_certs(dir: &TempDir) {
    let sh = |script: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&dir.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=baton-test-ca");
    sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1");
    sh("printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext");
}

#[tokio::test]
async fn tls_with_a_custom_ca() {
    let dir = TempDir::new();
    make_certs(&dir);
    let tls_port = common::web::free_port().to_string();
    let p = |f: &str| dir.path(f).display().to_string();
    let redis = LocalRedis::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &p("server.pem"),
        "--tls-key-file",
        &p("server.key"),
        "--tls-ca-cert-file",
        &p("ca.pem"),
        "--tls-auth-clients",
        "no",
    ])
    .unwrap();
    let _ = redis.port();
    let url = format!("rediss://127.0.0.1:{tls_port}/0");
    let mut cfg = common::test_config(&url);
    cfg.redis.tls_ca = Some(dir.path("ca.pem"));
    let client = Client::connect(cfg.clone())
        .await
        .expect("TLS with the custom CA");
    let q = client.queue("q").unwrap();
    let id = q.enqueue(TaskSpec::new("k", "over tls")).await.unwrap().id;
    let c = q.claim("w", 1).await.unwrap();
    q.complete("w", &c[0], b"done").await.unwrap();
    assert_eq!(
        q.wait(&id, std::time::Duration::from_secs(2)).await.unwrap(),
        baton::Outcome::Done(b"done".to_vec()),
        "pub/sub over TLS too"
    );

    // Without the CA the server's certificate is refused, with an error naming the fix.
    cfg.redis.tls_ca = None;
    let err = Client::connect(cfg).await.err().unwrap().to_string();
    assert!(err.contains("redis.tls_ca"), "{err}");
}
