//! Progress reports: a running handler says how far it got (Rust `TaskContext::progress`, exec
//! programs on fd 3, http services through their callback URL); `get`/`baton status`/the
//! dashboard show the last report; `progress` events announce it, at most one per task per
//! 500 ms; and a report from a run that lost its lease is refused like its acknowledgement.
mod common;
use baton::{Outcome, ProgressAck, State, TaskSpec, Worker};
use common::{product_config, Proc, TempDir, WORKER};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// The `progress` events of task `id` still in the stream: (run, detail).
async fn progress_events(q: &baton::Queue, id: &str) -> Vec<(u32, String)> {
    q.events_after("0", 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "progress")
        .filter_map(|e| {
            let t = e.tasks.iter().find(|t| t.id == id)?;
            Some((
                t.run,
                e.detail.clone().expect("a progress event carries its detail"),
            ))
        })
        .collect()
}

#[tokio::test]
async fn a_rust_handler_reports_and_get_and_events_show_it() {
    let env = common::env().await;
    let q = env.queue();
    let step = Arc::new(Notify::new());
    let go_on = step.clone();
    let worker = Worker::builder(&env.client, "q")
        .unwrap()
        .handler("long", move |ctx: baton::TaskContext| {
            let go_on = go_on.clone();
            async move {
                assert_eq!(ctx.progress(30, "resizing").await.unwrap(), ProgressAck::Stored);
                go_on.notified().await;
                assert_eq!(ctx.progress(200, "").await.unwrap(), ProgressAck::Stored); // clamped
                Ok(b"ok".to_vec())
            }
        })
        .build()
        .unwrap();
    let (stop, handle) = common::spawn_worker(worker);
    let id = q.enqueue(TaskSpec::new("long", "x")).await.unwrap().id;

    common::eventually(Duration::from_secs(5), "the first report", || async {
        q.get(&id).await.unwrap().and_then(|t| t.progress).is_some()
    })
    .await;
    let t = q.get(&id).await.unwrap().unwrap();
    assert_eq!(t.state, State::Leased);
    let p = t.progress.clone().unwrap();
    assert_eq!(
        (p.percent, p.message.as_str(), p.current_run),
        (30, "resizing", true)
    );
    let json = t.to_json();
    assert_eq!(json["progress"]["percent"], 30, "{json}");
    assert_eq!(json["progress"]["message"], "resizing", "{json}");

    step.notify_one();
    assert_eq!(
        q.wait(&id, Duration::from_secs(5)).await.unwrap(),
        Outcome::Done(b"ok".to_vec())
    );
    let t = q.get(&id).await.unwrap().unwrap();
    let p = t.progress.unwrap();
    assert_eq!(
        (p.percent, p.current_run),
        (100, false),
        "the last report is kept with the done task"
    );

    // each report was announced (they were far enough apart), with run 1 and the detail
    let ev = progress_events(&q, &id).await;
    assert_eq!(ev.first(), Some(&(1, "30|resizing".to_string())), "{ev:?}");
    stop.cancel();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_run_that_lost_its_lease_is_refused_and_changes_nothing() {
    let env = common::env().await;
    let q = env.queue();
    let id = q.enqueue(TaskSpec::new("k", "x")).await.unwrap().id;
    let first = q.claim("w1", 1).await.unwrap().remove(0);
    let lease1 = baton::LeaseRef::new(&id, &first.token);
    assert_eq!(
        q.progress("w1", &lease1, 10, "first run").await.unwrap(),
        ProgressAck::Stored
    );

    // the lease expires and the task is claimed again by another worker
    tokio::time::sleep(Duration::from_millis(1100)).await;
    q.reclaim(100).await.unwrap();
    let pending = q.get(&id).await.unwrap().unwrap();
    assert_eq!(pending.state, State::Pending);
    assert!(
        !pending.progress.unwrap().current_run,
        "an earlier run's report, marked as such"
    );
    let second = q.claim("w2", 1).await.unwrap().remove(0);
    let lease2 = baton::LeaseRef::new(&id, &second.token);
    assert_eq!(
        q.progress("w2", &lease2, 20, "second run").await.unwrap(),
        ProgressAck::Stored
    );

    // the stale runner: its old token, or the new token under its own name, are both refused
    assert_eq!(
        q.progress("w1", &lease1, 90, "stale").await.unwrap(),
        ProgressAck::Stale
    );
    let spoof = baton::LeaseRef::new(&id, &second.token);
    assert_eq!(
        q.progress("w1", &spoof, 90, "stale").await.unwrap(),
        ProgressAck::Stale
    );
    let p = q.get(&id).await.unwrap().unwrap().progress.unwrap();
    assert_eq!(
        (p.percent, p.message.as_str(), p.current_run),
        (20, "second run", true)
    );

    // cancelled: the report says so (the handler stops)
    q.cancel(&[id.as_str()]).await.unwrap();
    assert_eq!(
        q.progress("w2", &lease2, 30, "").await.unwrap(),
        ProgressAck::Cancelled
    );

    // events: the refused reports announced nothing; the two stored ones name their runs
    let ev = progress_events(&q, &id).await;
    assert_eq!(
        ev,
        [(1, "10|first run".to_string()), (2, "20|second run".to_string())]
    );
}

#[tokio::test]
async fn events_are_rate_limited_per_task_but_the_last_report_is_stored() {
    let env = common::env().await;
    let q = env.queue();
    let a = q.enqueue(TaskSpec::new("k", "a")).await.unwrap().id;
    let b = q.enqueue(TaskSpec::new("k", "b")).await.unwrap().id;
    let claimed = q.claim("w", 2).await.unwrap();
    let leases: Vec<baton::LeaseRef> = claimed
        .iter()
        .map(|c| baton::LeaseRef::new(&c.id, &c.token))
        .collect();
    let started = std::time::Instant::now();
    let mut sent = 0;
    for i in 0..=60u8 {
        for l in &leases {
            q.progress("w", l, i, &format!("step {i}")).await.unwrap();
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let span = started.elapsed();
    for id in [&a, &b] {
        let ev = progress_events(&q, id).await;
        // one event at the start of each 500 ms window the reports spanned, never more
        let most = (span.as_millis() / 500) as usize + 1;
        assert!(
            !ev.is_empty() && ev.len() <= most,
            "{} events for {} reports over {span:?} (at most {most}): {ev:?}",
            ev.len(),
            sent / 2
        );
        assert_eq!(ev[0].1, "0|step 0", "the first report is announced at once");
        let p = q.get(id).await.unwrap().unwrap().progress.unwrap();
        assert_eq!(
            (p.percent, p.message.as_str()),
            (60, "step 60"),
            "the last report is what get shows"
        );
    }
    // the stream's own timestamps: announcements of one task are at least 500 ms apart
    let events = q.events_after("0", 10_000).await.unwrap();
    let times: Vec<u64> = events
        .iter()
        .filter(|e| e.kind == "progress" && e.tasks.iter().any(|t| t.id == a))
        .map(|e| e.at_ms)
        .collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] >= 500), "{times:?}");
}

#[tokio::test]
async fn an_exec_program_reports_on_fd_3() {
    let env = common::env().await;
    let dir = TempDir::new();
    let gate = dir.path("gate");
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        &format!(
            r#"
[worker.handlers.steps]
shell = "echo \"25 starting on fd $BATON_PROGRESS_FD\" >&3; echo 'not a progress line' >&3; while [ ! -e {gate} ]; do sleep 0.05; done; sleep 0.6; echo '75.4 almost' >&3; sleep 0.7; echo 100 >&3; echo finished"
"#,
            gate = gate.display()
        ),
    );
    let _worker = Proc::start(WORKER, &cfg);
    let q = env.queue();
    let id = q.enqueue(TaskSpec::new("steps", "")).await.unwrap().id;

    common::eventually(Duration::from_secs(10), "the program's first report", || async {
        q.get(&id).await.unwrap().and_then(|t| t.progress).is_some()
    })
    .await;
    let p = q.get(&id).await.unwrap().unwrap().progress.unwrap();
    assert_eq!(
        (p.percent, p.message.as_str(), p.current_run),
        (25, "starting on fd 3", true)
    );
    let (code, out, err) = common::baton(&cfg, &["status", "-q", "q", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("progress  25%: starting on fd 3"), "{out}");

    std::fs::write(&gate, "").unwrap();
    assert_eq!(
        q.wait(&id, Duration::from_secs(10)).await.unwrap(),
        Outcome::Done(b"finished\n".to_vec()),
        "a bad progress line does not fail the task"
    );
    let p = q.get(&id).await.unwrap().unwrap().progress.unwrap();
    assert_eq!(
        p.percent, 100,
        "the last line before exit is stored before the completion"
    );
    let ev: Vec<String> = progress_events(&q, &id).await.into_iter().map(|e| e.1).collect();
    assert_eq!(ev, ["25|starting on fd 3", "75|almost", "100|"], "decimals round");
}

/// An HTTP service that reports progress through `x-baton-progress-url` while it works, then
/// answers; it sends the callback URL back as its result, and what the callbacks answered.
async fn reporting_service() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let url = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("x-baton-progress-url")
                            .then(|| value.trim().to_string())
                    })
                    .unwrap_or_default();
                let text = |body: &'static str| {
                    let url = url.clone();
                    async move {
                        reqwest::Client::new()
                            .post(&url)
                            .body(body)
                            .send()
                            .await
                            .map(|r| r.status().as_u16())
                            .unwrap_or(0)
                    }
                };
                let a = text("40 half way").await;
                tokio::time::sleep(Duration::from_millis(600)).await;
                let b = text(r#"{"percent": 90, "message": "nearly"}"#).await;
                let c = text("lots").await;
                let reply = format!("{url} {a} {b} {c}");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn an_http_service_reports_through_its_callback_url() {
    baton::install_crypto_provider();
    let env = common::env().await;
    let dir = TempDir::new();
    let port = reporting_service().await;
    let listen = common::web::free_port();
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        &format!(
            r#"
[worker.handlers.remote]
http = "http://127.0.0.1:{port}/work"
"#
        ),
    );
    // the worker's listener is under [worker], which product_config already opened
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[worker]\n",
        &format!("[worker]\nmetrics = \"127.0.0.1:{listen}\"\n"),
    );
    std::fs::write(&cfg, text).unwrap();
    let _worker = Proc::start(WORKER, &cfg);
    let q = env.queue();
    let id = q.enqueue(TaskSpec::new("remote", "{}")).await.unwrap().id;
    let Outcome::Done(result) = q.wait(&id, Duration::from_secs(10)).await.unwrap() else {
        panic!("not done: {:?}", q.get(&id).await)
    };
    let result = String::from_utf8(result).unwrap();
    let (url, codes) = result.split_once(' ').unwrap();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{listen}/progress/q/{id}/")),
        "{url}"
    );
    assert_eq!(
        codes, "202 202 400",
        "taken, taken, and a body in neither form refused"
    );
    let ev: Vec<String> = progress_events(&q, &id).await.into_iter().map(|e| e.1).collect();
    assert_eq!(ev, ["40|half way", "90|nearly"]);
    // the run is over: its URL answers 404
    let (code, body) = common::web::post(url, None, &serde_json::json!({"percent": 1})).await;
    assert_eq!(code, 404, "{body}");
}
