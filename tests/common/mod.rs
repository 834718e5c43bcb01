//! Test harness: a private redis-server per test, a client on it, polling helpers.
#![allow(dead_code)]

use baton::local_redis::LocalRedis;
use baton::{Client, Config, Queue};
use std::future::Future;
use std::time::{Duration, Instant};

pub struct Env {
    pub client: Client,
    pub config: Config,
    // Dropped last: stops the server by PID.
    pub redis: LocalRedis,
}

/// A config for tests: short leases and intervals so behaviours show up in well under a second.
pub fn test_config(url: &str) -> Config {
    let mut c = Config::from_toml(&format!(
        r#"
[redis]
url = "{url}"
response_timeout = "2s"
connect_timeout = "2s"

[queues.q]
lease = "1s"
heartbeat = "300ms"
max_attempts = 3
backoff = "fixed"
backoff_base = "50ms"
backoff_cap = "50ms"
backoff_jitter = 0.0

[worker]
concurrency = 8
shutdown_grace = "2s"
poll_interval = "200ms"

[scheduler]
promote_interval = "100ms"
reclaim_interval = "100ms"
trim_interval = "100ms"
"#
    ))
    .expect("test config");
    c.worker.queues = vec!["q".into()];
    c
}

pub async fn env() -> Env {
    env_with(|_| {}).await
}

pub async fn env_with(tweak: impl FnOnce(&mut Config)) -> Env {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("BATON_TEST_LOG"))
        .with_test_writer()
        .try_init();
    let redis = LocalRedis::start().expect("start redis-server");
    let mut config = test_config(&redis.url());
    tweak(&mut config);
    let client = Client::connect(config.clone()).await.expect("connect");
    Env {
        client,
        config,
        redis,
    }
}

impl Env {
    pub fn queue(&self) -> Queue {
        self.client.queue("q").unwrap()
    }

    /// A plain redis connection for inspecting keys directly.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

/// Poll `f` until it returns true, or panic with `what` after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return;
        }
        if start.elapsed() > within {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub const STATE_SETS: [&str; 6] = ["pending", "delayed", "leased", "done", "dead", "cancelled"];

/// The state sets holding `id` (the invariant: exactly one while the task exists).
pub async fn sets_holding(q: &Queue, id: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for s in STATE_SETS {
        let score: Option<f64> = q
            .conn()
            .query(redis::cmd("ZSCORE").arg(q.keys().role(s)).arg(id))
            .await
            .unwrap();
        if score.is_some() {
            out.push(s);
        }
    }
    out
}

/// Assert the one-state-set invariant for `id`, and that it is in `expected`.
pub async fn assert_state(q: &Queue, id: &str, expected: &str) {
    let sets = sets_holding(q, id).await;
    assert_eq!(sets, vec![expected], "task {id} must be in exactly one state set");
    // a lease entry exists exactly when leased
    let lease: Option<String> = q
        .conn()
        .query(redis::cmd("HGET").arg(q.keys().role("lease")).arg(id))
        .await
        .unwrap();
    assert_eq!(
        lease.is_some(),
        expected == "leased",
        "lease entry of {id} vs state {expected}"
    );
}

/// Every key and its full contents, for "nothing was written" checks.
pub async fn snapshot(raw: &mut redis::aio::MultiplexedConnection) -> Vec<(String, String)> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(raw).await.unwrap();
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        let t: String = redis::cmd("TYPE").arg(&k).query_async(raw).await.unwrap();
        let v: redis::Value = match t.as_str() {
            "hash" => redis::cmd("HGETALL").arg(&k).query_async(raw).await.unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(raw)
                .await
                .unwrap(),
            "string" => redis::cmd("GET").arg(&k).query_async(raw).await.unwrap(),
            _ => redis::Value::Nil,
        };
        let mut v = format!("{v:?}");
        if t == "hash" {
            // field order of a hash is not stable; sort the pairs
            let pairs: Vec<(Vec<u8>, Vec<u8>)> =
                redis::cmd("HGETALL").arg(&k).query_async(raw).await.unwrap();
            let mut pairs = pairs;
            pairs.sort();
            v = format!("{pairs:?}");
        }
        out.push((k, v));
    }
    out
}
