//! The `baton` CLI driven as a process: enqueue → worker → result, JSON output parsed, exit codes
//! scripts rely on, bulk enqueue from a file, dead-letter actions, pause/resume, cancel.
mod common;
use common::{baton, baton_stdin, product_config, Proc, TempDir, WORKER};
use std::time::Duration;

#[tokio::test]
async fn enqueue_wait_result_and_json_round_trip() {
    let env = common::env().await;
    let dir = TempDir::new();
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        r#"
[worker.handlers.echo]
exec = ["cat"]
[worker.handlers.upper]
exec = ["tr", "a-z", "A-Z"]
[worker.handlers.fail]
shell = "echo 'bad input' >&2; exit 7"
"#,
    );
    let _worker = Proc::start(WORKER, &cfg);

    // enqueue prints the id alone; result --wait prints the result bytes
    let (code, id, err) = baton(
        &cfg,
        &[
            "enqueue",
            "--queue",
            "q",
            "--kind",
            "upper",
            "--payload",
            r#"{"msg":"hi"}"#,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let id = id.trim().to_string();
    assert_eq!(id.len(), 26, "a ULID alone on stdout: {id:?}");
    let (code, out, err) = baton(&cfg, &["result", "--queue", "q", &id, "--wait", "10s"]);
    assert_eq!((code, out.as_str()), (0, r#"{"MSG":"HI"}"#), "{err}");

    // payload from stdin and from a file
    let (code, id2, _) = baton_stdin(
        &cfg,
        &["enqueue", "-q", "q", "-k", "echo", "--payload", "-"],
        Some(b"[1,2,3]"),
    );
    assert_eq!(code, 0);
    let f = dir.write("p.json", r#"{"from":"file"}"#);
    let (_, id3, _) = baton(
        &cfg,
        &[
            "enqueue",
            "-q",
            "q",
            "-k",
            "echo",
            "--payload",
            &format!("@{}", f.display()),
        ],
    );
    assert_eq!(
        baton(&cfg, &["result", "-q", "q", id2.trim(), "--wait", "10s"]).1,
        "[1,2,3]"
    );
    assert_eq!(
        baton(&cfg, &["result", "-q", "q", id3.trim(), "--wait", "10s"]).1,
        r#"{"from":"file"}"#
    );

    // enqueue --wait prints the result directly
    let (code, out, _) = baton(
        &cfg,
        &[
            "enqueue",
            "-q",
            "q",
            "-k",
            "echo",
            "--payload",
            "42",
            "--wait",
            "10s",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "42"));

    // status --json and stats --json parse
    let (code, out, _) = baton(&cfg, &["--json", "status", "-q", "q", &id]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "done");
    assert_eq!(v["attempts"], 1);
    let (code, out, _) = baton(&cfg, &["stats", "-q", "q", "--json", "--sample", "0s"]);
    assert_eq!(code, 0);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in ["pending", "delayed", "leased", "done", "dead"] {
        assert!(s[k].is_u64(), "{k} is an integer: {s}");
    }
    assert_eq!(s["done"], 4);
    assert_eq!(s["workers"], 1);

    // a dead task: exit 3 with its error on stderr
    let (_, fid, _) = baton(
        &cfg,
        &[
            "enqueue",
            "-q",
            "q",
            "-k",
            "fail",
            "--payload",
            "{}",
            "--max-attempts",
            "1",
        ],
    );
    let (code, out, err) = baton(&cfg, &["result", "-q", "q", fid.trim(), "--wait", "10s"]);
    assert_eq!(code, 3, "{out} {err}");
    assert!(err.contains("exit code 7") && err.contains("bad input"), "{err}");

    // bad input: malformed JSON refused with the fix, nothing enqueued; unknown id: exit 6
    let (code, _, err) = baton(&cfg, &["enqueue", "-q", "q", "-k", "echo", "--payload", "{oops"]);
    assert_eq!(code, 1);
    assert!(err.contains("not valid JSON") && err.contains("--raw"), "{err}");
    let (code, _, _) = baton(&cfg, &["result", "-q", "q", "01NOPE0000000000000000000"]);
    assert_eq!(code, 6);
    let (code, _, err) = baton(
        &cfg,
        &[
            "enqueue",
            "-q",
            "q",
            "-k",
            "echo",
            "--payload",
            "1",
            "--delay",
            "5 parsecs",
        ],
    );
    assert_eq!(code, 2, "usage error");
    assert!(err.contains("500ms, 30s"), "{err}");
}

#[tokio::test]
async fn bulk_from_file_dead_letter_pause_and_cancel() {
    let env = common::env().await;
    let dir = TempDir::new();
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        "[worker.handlers.echo]\nexec = [\"cat\"]\n",
    );
    let lines: Vec<String> = (0..250).map(|i| format!("{{\"n\":{i}}}")).collect();
    let file = dir.write("tasks.jsonl", &(lines.join("\n") + "\n\n"));

    // a bad line enqueues nothing
    let bad = dir.write("bad.jsonl", "{\"ok\":1}\nnot json\n");
    let (code, _, err) = baton(
        &cfg,
        &[
            "enqueue",
            "-q",
            "q",
            "-k",
            "echo",
            "--from-file",
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(env.queue().counts().await.unwrap().pending, 0);

    // pause first: tasks stay pending while a worker runs
    assert_eq!(baton(&cfg, &["pause", "-q", "q"]).0, 0);
    let worker = Proc::start(WORKER, &cfg);
    let (code, out, err) = baton(
        &cfg,
        &[
            "enqueue",
            "-q",
            "q",
            "-k",
            "echo",
            "--from-file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let ids: Vec<&str> = out.lines().collect();
    assert_eq!(ids.len(), 250, "one id per line");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.queue().counts().await.unwrap().pending,
        250,
        "paused: nothing claimed"
    );
    // ids are in input order: the 7th line's task has the 7th line as payload
    let (_, st, _) = baton(&cfg, &["--json", "status", "-q", "q", ids[6]]);
    let v: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(v["payload"], r#"{"n":6}"#);
    // cancel one while paused
    let (code, out, _) = baton(&cfg, &["cancel", "-q", "q", ids[0]]);
    assert_eq!(code, 0);
    assert!(out.contains("cancelled (was pending)"), "{out}");
    assert_eq!(
        baton(&cfg, &["result", "-q", "q", ids[0]]).0,
        4,
        "cancelled: exit 4"
    );
    assert_eq!(
        baton(&cfg, &["cancel", "-q", "q", ids[0]]).0,
        1,
        "not cancellable twice"
    );
    // resume: everything else completes; waiting on many shows a summary
    assert_eq!(baton(&cfg, &["resume", "-q", "q"]).0, 0);
    common::eventually(Duration::from_secs(20), "249 done", || async {
        env.queue().counts().await.unwrap().done == 249
    })
    .await;
    drop(worker);

    // dead-letter: make two dead tasks with a queue that has no handler for them
    let q = env.queue();
    for _ in 0..2 {
        q.enqueue(baton::TaskSpec::new("nobody", "{}").max_attempts(1))
            .await
            .unwrap();
    }
    for c in q.claim("w", 2).await.unwrap() {
        q.fail(
            "w",
            &baton::FailReport {
                id: c.id,
                token: c.token,
                error: "no handler".into(),
                retry: false,
            },
        )
        .await
        .unwrap();
    }
    let (_, out, _) = baton(&cfg, &["--json", "dead", "list", "-q", "q"]);
    let dead: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(dead.len(), 2);
    let first = dead[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        baton(&cfg, &["dead", "requeue", "-q", "q", &first]).1.trim(),
        "requeued 1"
    );
    assert_eq!(
        baton(&cfg, &["dead", "purge", "-q", "q", "--all"]).1.trim(),
        "purged 1"
    );
    assert_eq!(
        baton(&cfg, &["dead", "purge", "-q", "q"]).0,
        1,
        "ids or --all required"
    );
    let c = q.counts().await.unwrap();
    assert_eq!((c.dead, c.pending), (0, 1));
}
