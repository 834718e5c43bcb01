//! The other languages' clients as the cross-language tests drive them: the Python package
//! (`clients/python`, run from the tree) and the Node package (`clients/node`, built here once per
//! test binary), each through its driver script, and the test bodies both languages share.
use super::Env;
use baton::{Outcome, TaskSpec};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lang {
    Python,
    Node,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run `cmd` to success, or panic with its output and `hint`.
pub fn run_ok(cmd: &mut Command, what: &str, hint: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run it ({e}); {hint}"));
    assert!(
        out.status.success(),
        "{what} failed ({hint}):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const NODE_HINT: &str = "scripts/test installs Node.js and npm from Debian's packages";

/// `clients/node`, with its dependencies installed (`npm ci`, once, from the lockfile) and built:
/// the scripts vendored by this tree's `baton scripts dump`, the TypeScript compiled.
pub fn node_client() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = root().join("clients/node");
            if !dir.join("node_modules").exists() {
                run_ok(
                    Command::new("npm")
                        .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
                        .current_dir(&dir),
                    "npm ci in clients/node",
                    NODE_HINT,
                );
            }
            run_ok(
                Command::new("npm")
                    .args(["run", "--silent", "prepare"])
                    .env("BATON_BIN", env!("CARGO_BIN_EXE_baton"))
                    .current_dir(&dir),
                "npm run prepare (vendor the scripts, compile) in clients/node",
                NODE_HINT,
            );
            dir
        })
        .clone()
}

impl Lang {
    /// The prefix the driver's handlers put in their progress notes.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Python => "py",
            Lang::Node => "node",
        }
    }

    /// The driver script of this language with `args`.
    pub fn command(self, args: &[&str]) -> Command {
        match self {
            Lang::Python => {
                let py = std::env::var("BATON_PYTHON").unwrap_or_else(|_| "python3".into());
                let mut c = Command::new(py);
                c.arg(root().join("clients/python/tests/contract_driver.py"))
                    .args(args)
                    .env("PYTHONPATH", root().join("clients/python"));
                c
            }
            Lang::Node => {
                let mut c = Command::new("node");
                c.arg(node_client().join("test/driver.mjs")).args(args);
                c
            }
        }
    }

    /// Run the driver to success; its stdout.
    pub fn driver(self, args: &[&str]) -> String {
        let hint = match self {
            Lang::Python => "scripts/test installs python3 and redis-py",
            Lang::Node => NODE_HINT,
        };
        run_ok(
            &mut self.command(args),
            &format!("{self:?} driver {args:?}"),
            hint,
        )
    }

    /// The driver, off the runtime's thread (in-process Rust workers keep running meanwhile).
    pub async fn driver_async(self, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || self.driver(&args.iter().map(String::as_str).collect::<Vec<_>>()))
            .await
            .unwrap()
    }
}

/// This language enqueues, a Rust worker runs, this language reads the results.
pub async fn enqueues_rust_works_reads_back(lang: Lang, env: &Env) {
    let worker = baton::Worker::builder(&env.client, "q")
        .unwrap()
        .handler("reverse", |t: baton::TaskContext| async move {
            let mut p = t.payload.clone();
            p.reverse();
            Ok(p)
        })
        .build()
        .unwrap();
    let (stop, h) = super::spawn_worker(worker);
    let url = env.redis.url();
    let ids: Vec<String> = lang
        .driver_async(&["enqueue", &url, "q", "20"])
        .await
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 20);
    let mut args = vec!["results", url.as_str(), "q"];
    args.extend(ids.iter().map(String::as_str));
    let out = lang.driver_async(&args).await;
    let results: Vec<String> = out.lines().map(str::to_string).collect();
    let want: Vec<String> = (0..20)
        .map(|i| format!("done:{}", format!("item-{i}").chars().rev().collect::<String>()))
        .collect();
    assert_eq!(results, want);
    // and Rust reads the same tasks
    let t = env.queue().get(&ids[0]).await.unwrap().unwrap();
    assert_eq!(t.result.unwrap(), b"0-meti");
    stop.cancel();
    h.await.unwrap().unwrap();
}

/// Rust enqueues tasks longer than the lease; this language's worker runs them, kept alive by
/// its heartbeats alone (reclaim runs every 100 ms), reports progress, and deregisters.
pub async fn rust_enqueues_worker_heartbeats(lang: Lang, env: &Env) {
    let q = env.queue();
    let (stop, maint) = super::maintain(env, &q);
    let ids = super::enqueue_ids(&q, "slow-upper", 2, |i| format!("job {i}")).await;
    let out = lang.driver_async(&["work", &env.redis.url(), "q", "2"]).await;
    assert_eq!(out.trim(), "processed 2");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            q.wait(id, Duration::from_secs(5)).await.unwrap(),
            Outcome::Done(format!("JOB {i}").into_bytes())
        );
        let t = q.get(id).await.unwrap().unwrap();
        assert_eq!(t.attempts, 1, "never reclaimed: heartbeats worked");
        let p = t.progress.expect("the handler's progress report");
        assert_eq!((p.percent, p.message), (50, format!("{} half", lang.tag())));
    }
    assert!(q.workers(10).await.unwrap().is_empty(), "the worker deregistered");
    stop.cancel();
    maint.await.unwrap().unwrap();
}

/// Run this language's `command` worker (concurrency 8, `grace` seconds of shutdown grace) on 24
/// one-second tasks, SIGTERM it once 8 run at once, and sort the tasks by state: (processed,
/// done, pending); every task must be done or pending, none lost or left leased.
pub async fn sigterm_a_worker(lang: Lang, command: &str, grace: &str) -> (usize, usize, usize) {
    let env = super::env().await;
    let q = env.queue();
    let ids = super::enqueue_ids(&q, "sleepy", 24, |i| format!("job {i}")).await;
    let child = lang
        .command(&[command, &env.redis.url(), "q", "8", grace])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    super::eventually(Duration::from_secs(10), "8 tasks leased at once", || async {
        q.counts().await.unwrap().leased == 8
    })
    .await;
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let processed: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("processed ")
        .expect("processed N")
        .parse()
        .unwrap();
    let (mut done, mut pending) = (0, 0);
    for id in &ids {
        let t = q.get(id).await.unwrap().unwrap();
        match t.state {
            baton::State::Done => done += 1,
            baton::State::Pending => {
                assert_eq!(t.attempts, 0, "a released run is not charged");
                pending += 1
            }
            s => panic!("task {id} left {s:?}"),
        }
    }
    assert_eq!(done + pending, 24);
    assert!(q.workers(10).await.unwrap().is_empty(), "deregistered");
    (processed, done, pending)
}

/// With enough grace, the tasks in flight at SIGTERM finish and no more start.
pub async fn drains_on_sigterm(lang: Lang, command: &str) {
    let (processed, done, _) = sigterm_a_worker(lang, command, "30").await;
    assert_eq!(done, processed, "the tasks in flight at SIGTERM finished");
    assert!((8..24).contains(&done), "stopped early: {done} done");
}

/// Past the grace, what still runs is released: back to pending, not charged.
pub async fn releases_past_grace(lang: Lang, command: &str) {
    let (_, done, pending) = sigterm_a_worker(lang, command, "0.2").await;
    assert!(
        done < 8 && pending > 16,
        "in-flight work was released: {done} done"
    );
}

/// This language's zombie (a lease that expired and was claimed again) is refused for every
/// acknowledgement, the same list in every language; its token replayed from Rust is refused too.
pub async fn stale_token_refused(lang: Lang, env: &Env) {
    let q = env.queue();
    let id = q.enqueue(TaskSpec::new("k", "x")).await.unwrap().id;
    let out = lang.driver(&["stale", &env.redis.url(), "q"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(
        v["refused"],
        serde_json::json!(["complete", "fail", "heartbeat", "progress"])
    );
    assert_eq!(v["fresh_attempt"], 2);
    let zombie_name = format!("{}-zombie", lang.tag());
    let zombie = baton::Claimed {
        id: id.clone(),
        token: v["zombie_token"].as_str().unwrap().into(),
        attempt: 1,
        run: 1,
        deadline_ms: 0,
        record: q.get(&id).await.unwrap().unwrap().record,
    };
    assert!(matches!(
        q.complete(&zombie_name, &zombie, b"zombie").await,
        Err(baton::Error::StaleLease { .. })
    ));
    let zombie_lease = baton::LeaseRef::new(&id, &zombie.token);
    assert_eq!(
        q.progress(&zombie_name, &zombie_lease, 99, "zombie")
            .await
            .unwrap(),
        baton::ProgressAck::Stale
    );
    let t = q.get(&id).await.unwrap().unwrap();
    assert!(t.progress.is_none(), "nothing stored");
    assert_eq!(t.lease.unwrap().worker, format!("{}-fresh", lang.tag()));
    super::assert_state(&q, &id, "leased").await;
}

/// A queue of another schema version: this language refuses it when the queue is opened and the
/// scripts refuse it too; the lines it prints are returned (the same in every language).
pub async fn version_mismatch_refused(lang: Lang, env: &Env) -> String {
    let q = env.queue();
    q.enqueue(TaskSpec::new("k", "x")).await.unwrap();
    super::set_schema_version(env, &q, "99").await;
    let out = lang.driver(&["version", &env.redis.url(), "q"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in &lines {
        assert!(
            l.starts_with("VERSION ") && l.contains("has data schema v99 but these scripts are v"),
            "{out}"
        );
    }
    let e = q.enqueue(TaskSpec::new("k", "x")).await.unwrap_err();
    assert!(matches!(e, baton::Error::VersionMismatch { .. }), "{e}");
    out
}

/// This language's worker on a push queue: it takes what the dispatcher assigned it.
pub async fn takes_push_assignments(lang: Lang) {
    let env = super::env_with(|c| {
        c.queues.insert(
            "pp".into(),
            baton::QueueConfig {
                dispatch: baton::DispatchMode::Push,
                strategy: baton::Strategy::RoundRobin,
                lease: Duration::from_secs(1),
                heartbeat: Duration::from_millis(300),
                ..Default::default()
            },
        );
    })
    .await;
    let q = env.client.queue("pp").unwrap();
    let (stop, dispatcher) = super::maintain(&env, &q);
    let ids = super::enqueue_ids(&q, "slow-upper", 3, |i| format!("push {i}")).await;
    let out = lang
        .driver_async(&["work-push", &env.redis.url(), "pp", "3"])
        .await;
    assert_eq!(out.trim(), "processed 3");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            q.wait(id, Duration::from_secs(5)).await.unwrap(),
            Outcome::Done(format!("PUSH {i}").into_bytes())
        );
        assert_eq!(q.get(id).await.unwrap().unwrap().attempts, 1);
    }
    stop.cancel();
    dispatcher.await.unwrap().unwrap();
}
