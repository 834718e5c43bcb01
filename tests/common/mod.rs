//! Test harness: a private redis-server per test, a client on it, polling helpers.
#![allow(dead_code)]

pub mod clients;
pub mod flow;
pub mod topo;
pub mod web;

use baton::keys::Role;
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

pub const STATE_SETS: [Role; 6] = [
    Role::Pending,
    Role::Delayed,
    Role::Leased,
    Role::Done,
    Role::Dead,
    Role::Cancelled,
];

/// The state sets holding `id` (the invariant: exactly one while the task exists), the set of
/// tasks waiting for their dependencies included.
pub async fn sets_holding(q: &Queue, id: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    let meta = q.keys().key(Role::Meta);
    let waiting = format!("{}waiting", meta.strip_suffix("meta").unwrap());
    let score: Option<f64> = q
        .conn()
        .query(redis::cmd("ZSCORE").arg(waiting).arg(id))
        .await
        .unwrap();
    if score.is_some() {
        out.push("waiting");
    }
    for s in STATE_SETS {
        let score: Option<f64> = q
            .conn()
            .query(redis::cmd("ZSCORE").arg(q.keys().key(s)).arg(id))
            .await
            .unwrap();
        if score.is_some() {
            out.push(s.as_str());
        }
    }
    out
}

/// Assert the one-state-set invariant for `id` (exactly one state set, and a lease entry
/// exactly when leased); returns the set.
pub async fn assert_one_state(q: &Queue, id: &str) -> &'static str {
    let sets = sets_holding(q, id).await;
    assert_eq!(
        sets.len(),
        1,
        "task {id} must be in exactly one state set, is in {sets:?}"
    );
    let lease: Option<String> = q
        .conn()
        .query(
            redis::cmd("HGET")
                .arg(q.keys().key(baton::keys::Role::Lease))
                .arg(id),
        )
        .await
        .unwrap();
    assert_eq!(
        lease.is_some(),
        sets[0] == "leased",
        "lease entry of {id} vs state {}",
        sets[0]
    );
    sets[0]
}

/// Assert the one-state-set invariant for `id`, and that it is in `expected`.
pub async fn assert_state(q: &Queue, id: &str, expected: &str) {
    assert_eq!(assert_one_state(q, id).await, expected, "state of task {id}");
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

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("baton-test-{}-{}", std::process::id(), fastrand::u64(..)));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
    pub fn write(&self, name: &str, body: &str) -> std::path::PathBuf {
        let p = self.path(name);
        std::fs::write(&p, body).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (SIGKILL) on drop unless it already exited.
pub struct Proc {
    pub child: std::process::Child,
}

impl Proc {
    /// Start one of the package's binaries with `--config <config>`.
    pub fn start(bin: &str, config: &std::path::Path) -> Proc {
        let child = std::process::Command::new(bin)
            .arg("--config")
            .arg(config)
            .env(
                "BATON_LOG",
                std::env::var("BATON_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        Proc { child }
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Send a signal by PID (e.g. "TERM", "KILL").
    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} {}", self.pid());
    }
    /// Wait for the exit, at most `within`; returns the exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            if start.elapsed() > within {
                panic!("process {} did not exit within {within:?}", self.pid());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub const WORKER: &str = env!("CARGO_BIN_EXE_baton-worker");
pub const SCHEDULER: &str = env!("CARGO_BIN_EXE_baton-scheduler");
pub const CLI: &str = env!("CARGO_BIN_EXE_baton");

/// Run `baton --config <config> args…`; returns (exit code, stdout, stderr).
pub fn baton(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    baton_stdin(config, args, None)
}

pub fn baton_stdin(config: &std::path::Path, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(CLI)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        input.write_all(data).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config file for the binaries: the test Redis, fast timings, plus `extra` TOML.
pub fn product_config(dir: &TempDir, url: &str, extra: &str) -> std::path::PathBuf {
    dir.write(
        "baton.toml",
        &format!(
            r#"
[redis]
url = "{url}"

[queues.q]
lease = "1s"
heartbeat = "300ms"
max_attempts = 2
backoff = "fixed"
backoff_base = "100ms"
backoff_cap = "100ms"

[worker]
queues = ["q"]
concurrency = 4
shutdown_grace = "5s"
maintenance = false

[scheduler]
promote_interval = "100ms"
reclaim_interval = "100ms"
trim_interval = "1s"
{extra}
"#
        ),
    )
}

/// Run a worker in the background; cancel the token to shut it down, await the handle for its stats.
pub fn spawn_worker(
    worker: baton::Worker,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<baton::Result<std::sync::Arc<baton::WorkerStats>>>,
) {
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    (stop, tokio::spawn(worker.run(async move { s.cancelled().await })))
}

/// Enqueue `n` tasks of `kind` (payload `payload(i)`) in one atomic batch; their ids, in order.
pub async fn enqueue_ids(q: &Queue, kind: &str, n: usize, payload: impl Fn(usize) -> String) -> Vec<String> {
    q.enqueue_batch((0..n).map(|i| baton::TaskSpec::new(kind, payload(i))).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// What baton-scheduler does for `q` (reclaim, promote, push dispatch), running until the token is
/// cancelled; await the handle after cancelling.
pub fn maintain(
    env: &Env,
    q: &Queue,
) -> (
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<baton::Result<()>>,
) {
    let stop = tokio_util::sync::CancellationToken::new();
    let m = baton::Maintenance::new(vec![q.clone()], env.config.scheduler.clone());
    (stop.clone(), tokio::spawn(m.run(stop, None)))
}

/// Stamp another data schema version on the queue, as a release with other scripts would have.
pub async fn set_schema_version(env: &Env, q: &Queue, v: &str) {
    let mut raw = env.raw().await;
    let _: () = redis::cmd("HSET")
        .arg(q.keys().key(Role::Meta))
        .arg("v")
        .arg(v)
        .query_async(&mut raw)
        .await
        .unwrap();
}

/// Each `[queues.q]` snippet is refused by config validation with an error naming `key` and
/// saying `says`: (snippet, key, says).
pub fn refused_queue_settings(cases: &[(&str, &str, &str)]) {
    for (extra, key, says) in cases {
        let text = format!(
            "[redis]\nurl = \"redis://127.0.0.1:1\"\n[worker]\nqueues = [\"q\"]\n[queues.q]\n{extra}\n"
        );
        let err = Config::from_toml(&text)
            .and_then(|c| c.validate().map(|_| c))
            .expect_err(extra)
            .to_string();
        assert!(err.contains(key) && err.contains(says), "{extra}: {err}");
    }
}

/// Enqueue the specs in atomic batches of 1000; their ids, in order.
pub async fn enqueue_all(q: &Queue, specs: Vec<baton::TaskSpec>) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in specs.chunks(1000) {
        ids.extend(
            q.enqueue_batch(chunk.to_vec())
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id),
        );
    }
    ids
}

/// `workers` in-process workers of `concurrency` slots each run `specs` (kind "nap": each sleeps
/// `nap`) to the end. Returns the most handlers ever running at once per payload (the fair
/// queueing tests put a task's group there) and overall.
pub async fn run_peaks(
    env: &Env,
    workers: usize,
    concurrency: usize,
    specs: Vec<baton::TaskSpec>,
    nap: Duration,
) -> (std::collections::HashMap<String, usize>, usize) {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let q = env.queue();
    let running: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let peaks: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (all, all_peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut stops = Vec::new();
    for _ in 0..workers {
        let (r, p, a, ap) = (running.clone(), peaks.clone(), all.clone(), all_peak.clone());
        let w = baton::Worker::builder(&env.client, "q")
            .unwrap()
            .concurrency(concurrency)
            .handler("nap", move |t: baton::TaskContext| {
                let (r, p, a, ap) = (r.clone(), p.clone(), a.clone(), ap.clone());
                async move {
                    let key = String::from_utf8(t.payload.clone()).unwrap();
                    {
                        let mut r = r.lock().unwrap();
                        let n = r.entry(key.clone()).or_default();
                        *n += 1;
                        let mut p = p.lock().unwrap();
                        let pk = p.entry(key.clone()).or_default();
                        *pk = (*pk).max(*n);
                    }
                    ap.fetch_max(a.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    tokio::time::sleep(nap).await;
                    a.fetch_sub(1, Ordering::SeqCst);
                    *r.lock().unwrap().get_mut(&key).unwrap() -= 1;
                    Ok(Vec::new())
                }
            })
            .build()
            .unwrap();
        stops.push(spawn_worker(w));
    }
    let ids = enqueue_all(&q, specs).await;
    for id in &ids {
        assert_eq!(
            q.wait(id, Duration::from_secs(60)).await.unwrap(),
            baton::Outcome::Done(Vec::new())
        );
    }
    for (stop, h) in stops {
        stop.cancel();
        h.await.unwrap().unwrap();
    }
    let p = peaks.lock().unwrap().clone();
    (p, all_peak.load(Ordering::SeqCst))
}

/// What the tests' join tasks answer: "saw N of M", N of its M dependencies done with a result
/// starting with "r" (the tests' other tasks answer their payloads, "r…"), read in one call.
pub async fn saw_dependencies(t: &baton::TaskContext) -> Result<String, baton::HandlerError> {
    let deps = t
        .dependencies()
        .await
        .map_err(|e| baton::HandlerError::retry(e.to_string()))?;
    let ok = deps
        .iter()
        .filter(|d| d.state == baton::State::Done && d.result.starts_with(b"r"))
        .count();
    Ok(format!("saw {ok} of {}", deps.len()))
}
