//! baton-worker's exec and http handlers: success, failure, timeout kill (the whole process
//! group), and an unknown task kind failing with a clear error.
mod common;
use baton::{Outcome, TaskSpec};
use common::{product_config, Proc, TempDir, SCHEDULER, WORKER};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Wait for a task's outcome; on a timeout, panic showing the task.
async fn outcome(q: baton::Queue, id: String) -> Outcome {
    match q.wait(&id, Duration::from_secs(10)).await {
        Ok(o) => o,
        Err(e) => panic!("{e}; task: {:?}", q.get(&id).await),
    }
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn exec_handler_success_failure_timeout_and_unknown_kind() {
    let env = common::env().await;
    let dir = TempDir::new();
    let pidfile = dir.path("sleeper.pid");
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        &format!(
            r#"
[worker.handlers.wc]
exec = ["wc", "-c"]
[worker.handlers.env]
shell = "printf '%s/%s' \"$BATON_TASK_KIND\" \"$GREETING\""
env = {{ GREETING = "hello" }}
[worker.handlers.broken]
exec = ["sh", "-c", "echo partial; echo 'disk full' >&2; exit 2"]
[worker.handlers.hang]
shell = "sleep 60 & echo $! > {pid}; wait"
timeout = "400ms"
[worker.handlers.missing]
exec = ["/nonexistent/program"]
"#,
            pid = pidfile.display()
        ),
    );
    let _worker = Proc::start(WORKER, &cfg);
    let _scheduler = Proc::start(SCHEDULER, &cfg); // promotes retries
    let q = env.queue();
    let wait = |id: String| outcome(q.clone(), id);

    let id = q.enqueue(TaskSpec::new("wc", "12345")).await.unwrap().id;
    assert_eq!(
        wait(id).await,
        Outcome::Done(b"5\n".to_vec()),
        "payload on stdin, stdout is the result"
    );
    let id = q.enqueue(TaskSpec::new("env", "")).await.unwrap().id;
    assert_eq!(wait(id).await, Outcome::Done(b"env/hello".to_vec()));

    let id = q
        .enqueue(TaskSpec::new("broken", "").max_attempts(2))
        .await
        .unwrap()
        .id;
    match wait(id.clone()).await {
        Outcome::Dead(e) => assert_eq!(e, "exit code 2: disk full"),
        o => panic!("{o:?}"),
    }
    assert_eq!(
        q.get(&id).await.unwrap().unwrap().attempts,
        2,
        "retried up to max_attempts"
    );

    let id = q
        .enqueue(TaskSpec::new("hang", "").max_attempts(1))
        .await
        .unwrap()
        .id;
    match wait(id).await {
        Outcome::Dead(e) => assert!(e.contains("killed after 400ms"), "{e}"),
        o => panic!("{o:?}"),
    }
    let sleeper: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    common::eventually(
        Duration::from_secs(3),
        "the grandchild sleep was killed too",
        || async move { !alive(sleeper) },
    )
    .await;

    let id = q
        .enqueue(TaskSpec::new("missing", "").max_attempts(1))
        .await
        .unwrap()
        .id;
    match wait(id).await {
        Outcome::Dead(e) => assert!(
            e.contains("cannot start") && e.contains("worker.handlers.missing"),
            "{e}"
        ),
        o => panic!("{o:?}"),
    }
    let id = q
        .enqueue(TaskSpec::new("no-such-kind", "").max_attempts(1))
        .await
        .unwrap()
        .id;
    match wait(id).await {
        Outcome::Dead(e) => assert!(e.contains("no handler for task kind \"no-such-kind\""), "{e}"),
        o => panic!("{o:?}"),
    }
}

/// A one-connection-at-a-time HTTP/1.1 server: answers by the request path.
async fn http_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                // read headers, then the body by content-length
                let (head_end, len) = loop {
                    let n = s.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = s.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let body = buf[head_end..].to_vec();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, reply): (&str, Vec<u8>) = match path.as_str() {
                    "/ok" => {
                        let kind = head
                            .lines()
                            .find(|l| l.to_lowercase().starts_with("x-baton-kind:"))
                            .unwrap_or("")
                            .to_string();
                        (
                            "200 OK",
                            [b"got ".to_vec(), body, format!(" ({})", kind.trim()).into_bytes()].concat(),
                        )
                    }
                    "/boom" => ("500 Internal Server Error", b"database down".to_vec()),
                    "/bad" => ("400 Bad Request", b"missing field".to_vec()),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        ("200 OK", b"late".to_vec())
                    }
                    _ => ("404 Not Found", Vec::new()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    reply.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.write_all(&reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, h)
}

#[tokio::test]
async fn http_handler_success_retryable_final_and_timeout() {
    let env = common::env().await;
    let (port, _server) = http_server().await;
    let dir = TempDir::new();
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        &format!(
            r#"
[worker.handlers.ok]
http = "http://127.0.0.1:{port}/ok"
[worker.handlers.boom]
http = "http://127.0.0.1:{port}/boom"
[worker.handlers.bad]
http = "http://127.0.0.1:{port}/bad"
[worker.handlers.slow]
http = "http://127.0.0.1:{port}/slow"
timeout = "300ms"
"#
        ),
    );
    let _worker = Proc::start(WORKER, &cfg);
    let _scheduler = Proc::start(SCHEDULER, &cfg); // promotes retries
    let q = env.queue();
    let wait = |id: String| outcome(q.clone(), id);
    let id = q.enqueue(TaskSpec::new("ok", r#"{"a":1}"#)).await.unwrap().id;
    assert_eq!(
        wait(id).await,
        Outcome::Done(br#"got {"a":1} (x-baton-kind: ok)"#.to_vec())
    );

    let id = q
        .enqueue(TaskSpec::new("boom", "{}").max_attempts(2))
        .await
        .unwrap()
        .id;
    match wait(id.clone()).await {
        Outcome::Dead(e) => assert!(e.contains("500") && e.contains("database down"), "{e}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(q.get(&id).await.unwrap().unwrap().attempts, 2, "5xx is retried");

    let id = q.enqueue(TaskSpec::new("bad", "{}")).await.unwrap().id;
    match wait(id.clone()).await {
        Outcome::Dead(e) => assert!(e.contains("400") && e.contains("missing field"), "{e}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(q.get(&id).await.unwrap().unwrap().attempts, 1, "4xx is final");

    let id = q
        .enqueue(TaskSpec::new("slow", "{}").max_attempts(1))
        .await
        .unwrap()
        .id;
    match wait(id).await {
        Outcome::Dead(e) => assert!(e.contains("timeout"), "{e}"),
        o => panic!("{o:?}"),
    }
}
