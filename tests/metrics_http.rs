//! baton-scheduler's `/metrics` and dashboard API, and baton-worker's own `/metrics`, checked
//! against known activity run by the real binaries.
mod common;
use baton::TaskSpec;
use common::web::{free_port, get, parse_prometheus, post, wait_up};
use common::{product_config, Proc, TempDir, SCHEDULER, WORKER};
use std::time::Duration;

const TOKEN: &str = "test-token-0123456789";

#[tokio::test]
async fn metrics_and_api_match_known_activity() {
    let env = common::env().await;
    let dir = TempDir::new();
    let (sport, wport) = (free_port(), free_port());
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        &format!(
            "http = \"127.0.0.1:{sport}\"\nhttp_token = \"{TOKEN}\"\n\
             [worker.handlers.ok]\nshell = \"sleep 0.05; echo fine\"\n\
             [worker.handlers.bad]\nshell = \"echo broken >&2; exit 3\"\n"
        ),
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "maintenance = false",
        &format!("maintenance = false\nmetrics = \"127.0.0.1:{wport}\""),
    );
    std::fs::write(&cfg, text).unwrap();
    let _scheduler = Proc::start(SCHEDULER, &cfg);
    let _worker = Proc::start(WORKER, &cfg);
    let base = format!("http://127.0.0.1:{sport}");
    wait_up(&format!("{base}/healthz")).await;
    wait_up(&format!("http://127.0.0.1:{wport}/metrics")).await;

    // Known activity: 5 tasks complete; 2 fail three times each (this client's max_attempts 3:
    // two retries, then dead).
    let q = env.queue();
    common::eventually(Duration::from_secs(5), "worker registered", || async {
        q.workers(10).await.unwrap().len() == 1
    })
    .await;
    // The scheduler follows events from its start: give its followers a moment to subscribe.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        q.enqueue(TaskSpec::new("ok", "{}")).await.unwrap();
    }
    let bad: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            v.push(q.enqueue(TaskSpec::new("bad", "{}")).await.unwrap().id);
        }
        v
    };
    common::eventually(Duration::from_secs(10), "all finished", || async {
        let c = q.counts().await.unwrap();
        c.done == 5 && c.dead == 2
    })
    .await;

    let m = parse_prometheus(&get(&format!("{base}/metrics")).await.1);
    let at = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no series {k} in /metrics"));
    assert_eq!(at(r#"baton_queue_tasks{queue="q",state="done"}"#), 5.0);
    assert_eq!(at(r#"baton_queue_tasks{queue="q",state="dead"}"#), 2.0);
    assert_eq!(at(r#"baton_queue_tasks{queue="q",state="pending"}"#), 0.0);
    assert_eq!(at(r#"baton_tasks_enqueued_total{queue="q"}"#), 7.0);
    assert_eq!(at(r#"baton_tasks_completed_total{queue="q"}"#), 5.0);
    assert_eq!(at(r#"baton_tasks_failed_total{queue="q"}"#), 6.0);
    assert_eq!(at(r#"baton_tasks_retried_total{queue="q"}"#), 4.0);
    assert_eq!(at(r#"baton_tasks_dead_total{queue="q"}"#), 2.0);
    assert_eq!(at(r#"baton_tasks_reclaimed_total{queue="q"}"#), 0.0);
    let w = &q.workers(10).await.unwrap()[0].id;
    assert_eq!(
        at(&format!(
            r#"baton_worker_completed_total{{queue="q",worker="{w}"}}"#
        )),
        5.0
    );
    assert_eq!(
        at(&format!(r#"baton_worker_failed_total{{queue="q",worker="{w}"}}"#)),
        6.0
    );
    assert_eq!(
        at(&format!(r#"baton_worker_inflight{{queue="q",worker="{w}"}}"#)),
        0.0
    );
    // Histograms from the events stream: every attempt's run, every claim's wait.
    common::eventually(Duration::from_secs(3), "histograms caught up", || async {
        let m = parse_prometheus(&get(&format!("{base}/metrics")).await.1);
        m.get(r#"baton_task_run_seconds_count{queue="q",outcome="completed"}"#) == Some(&5.0)
            && m.get(r#"baton_task_run_seconds_count{queue="q",outcome="failed"}"#) == Some(&6.0)
            && m.get(r#"baton_task_wait_seconds_count{queue="q"}"#) == Some(&11.0)
    })
    .await;
    let m = parse_prometheus(&get(&format!("{base}/metrics")).await.1);
    let run_sum = m[r#"baton_task_run_seconds_sum{queue="q",outcome="completed"}"#];
    assert!(run_sum >= 5.0 * 0.04, "5 runs of >= 50 ms each, got {run_sum}s");
    assert!(m[r#"baton_task_run_seconds_bucket{queue="q",outcome="completed",le="+Inf"}"#] == 5.0);
    // The scheduler's own script calls are measured too.
    assert!(m[r#"baton_script_duration_seconds_count{script="counts"}"#] >= 1.0);

    // The worker's own page.
    let wm = parse_prometheus(&get(&format!("http://127.0.0.1:{wport}/metrics")).await.1);
    assert_eq!(
        wm[r#"baton_worker_tasks_total{queue="q",outcome="completed"}"#],
        5.0
    );
    assert_eq!(wm[r#"baton_worker_tasks_total{queue="q",outcome="failed"}"#], 6.0);
    assert_eq!(
        wm[r#"baton_worker_task_run_seconds_count{queue="q",outcome="completed"}"#],
        5.0
    );
    assert!(wm[r#"baton_script_duration_seconds_count{script="claim"}"#] >= 1.0);

    // The dashboard API shows the same state.
    let (status, body) = get(&format!("{base}/api/overview")).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let qv = &v["queues"][0];
    assert_eq!(qv["name"], "q");
    assert_eq!(qv["counts"]["done"], 5);
    assert_eq!(qv["counts"]["dead"], 2);
    assert_eq!(qv["workers"][0]["completed"], 5);
    assert_eq!(qv["workers"][0]["share"], 1.0);
    assert_eq!(v["actions"], true);
    let (status, body) = get(&format!("{base}/api/queues/q/dead")).await;
    assert_eq!(status, 200);
    let dead: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(dead["tasks"].as_array().unwrap().len(), 2);
    assert!(
        dead["tasks"][0]["error"].as_str().unwrap().contains("broken"),
        "{dead}"
    );
    let (status, body) = get(&format!("{base}/api/queues/q/tasks/{}", bad[0])).await;
    assert_eq!(status, 200, "{body}");
    let t: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["state"], "dead");
    assert_eq!(t["attempts"], 3);
    assert_eq!(t["payload"], "{}");
    assert_eq!(get(&format!("{base}/api/queues/q/tasks/nope")).await.0, 404);
    assert_eq!(get(&format!("{base}/api/queues/other/dead")).await.0, 404);

    // Actions: refused without or with a wrong token, nothing changed; done with the token.
    let url = format!("{base}/api/queues/q/requeue");
    let ids = serde_json::json!({ "ids": [bad[0]] });
    let (status, body) = post(&url, None, &ids).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("http_token"), "{body}");
    assert_eq!(post(&url, Some("wrong-token-0123456789"), &ids).await.0, 401);
    assert_eq!(
        post(
            &format!("{base}/api/queues/q/pause"),
            None,
            &serde_json::json!({})
        )
        .await
        .0,
        401
    );
    assert_eq!(
        q.counts().await.unwrap().dead,
        2,
        "refused actions change nothing"
    );
    assert!(!q.counts().await.unwrap().paused);
    let (status, body) = post(
        &format!("{base}/api/queues/q/pause"),
        Some(TOKEN),
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(q.counts().await.unwrap().paused);
    let (status, body) = post(&url, Some(TOKEN), &ids).await;
    assert_eq!((status, body.as_str()), (200, r#"{"count":1,"ok":true}"#));
    common::assert_state(&q, &bad[0], "pending").await;
    let (status, _) = post(
        &format!("{base}/api/queues/q/purge"),
        Some(TOKEN),
        &serde_json::json!({ "ids": [bad[1]] }),
    )
    .await;
    assert_eq!(status, 200);
    assert!(q.get(&bad[1]).await.unwrap().is_none(), "purged");
    assert_eq!(
        post(
            &format!("{base}/api/queues/q/explode"),
            Some(TOKEN),
            &serde_json::json!({})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        post(&url, Some(TOKEN), &serde_json::json!({})).await.0,
        400,
        "ids required"
    );
}

#[tokio::test]
async fn without_a_token_the_dashboard_is_read_only() {
    let env = common::env().await;
    let q = env.queue();
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let web = baton::scheduler::web::Web {
        queues: [("q".to_string(), q.clone())].into_iter().collect(),
        token: None,
        history: Default::default(),
        prometheus: baton::metrics::install(),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let server = baton::metrics::spawn_server(listener, baton::scheduler::web::router(web), stop.clone());
    let base = format!("http://127.0.0.1:{port}");
    let (status, body) = get(&format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>Baton"), "the embedded dashboard page");
    assert!(
        !body.contains("://cdn") && !body.contains("<script src"),
        "no external assets"
    );
    let v: serde_json::Value = serde_json::from_str(&get(&format!("{base}/api/overview")).await.1).unwrap();
    assert_eq!(v["actions"], false);
    let (status, body) = post(
        &format!("{base}/api/queues/q/pause"),
        Some("anything-at-all-123"),
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("set [scheduler] http_token"), "{body}");
    assert!(!q.counts().await.unwrap().paused);
    stop.cancel();
    server.await.unwrap();
}
