//! baton-worker's handlers never outlive their worker, and never make it buffer more than the
//! result cap: SIGKILL the worker and no process of an exec handler survives; a handler flooding
//! stdout, or an HTTP endpoint answering without end, is cut at the cap with a clear error while
//! the worker's memory stays bounded.
mod common;
use baton::{Outcome, TaskSpec};
use common::{product_config, Proc, TempDir, WORKER};
use std::time::{Duration, Instant};

/// Live processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if cmd.contains(marker) && !stat.contains(") Z ") {
            out.push(format!("{pid}: {cmd}"));
        }
    }
    out
}

#[tokio::test]
async fn a_sigkilled_worker_leaves_no_handler_process_behind() {
    let env = common::env().await;
    let dir = TempDir::new();
    // a shell with a child of its own: the grandchild is what used to survive
    // unique per run, so processes of another run (or test) are never counted
    let marker = format!("31.{}", std::process::id());
    let marker = marker.as_str();
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        &format!("[worker.handlers.slow]\nshell = \"sleep {marker}; echo done\"\n"),
    );
    let worker = Proc::start(WORKER, &cfg);
    let q = env.queue();
    q.enqueue(TaskSpec::new("slow", "")).await.unwrap();
    common::eventually(Duration::from_secs(10), "the handler runs", || async {
        !processes_with(marker).is_empty()
    })
    .await;
    let running = processes_with(marker);
    worker.signal("KILL");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !processes_with(marker).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = processes_with(marker);
    assert!(
        left.is_empty(),
        "handler processes outlived their worker: {left:?} (were {running:?})"
    );
}

/// Peak resident memory of a process (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_handler_flooding_stdout_is_stopped_at_the_cap_in_bounded_memory() {
    let env = common::env().await;
    let dir = TempDir::new();
    // 400 MB of output, far past the 16 MiB result cap
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        "[worker.handlers.flood]\nshell = \"head -c 400000000 /dev/zero\"\n",
    );
    let worker = Proc::start(WORKER, &cfg);
    let q = env.queue();
    let id = q
        .enqueue(TaskSpec::new("flood", "").max_attempts(1))
        .await
        .unwrap()
        .id;
    match q.wait(&id, Duration::from_secs(30)).await.unwrap() {
        Outcome::Dead(e) => assert!(e.contains("byte limit"), "{e}"),
        o => panic!("{o:?}"),
    }
    let peak_mib = peak_rss_kib(worker.pid()) / 1024;
    // the cap is 16 MiB; the worker itself needs a few MiB
    assert!(
        peak_mib < 16 + 48,
        "worker peaked at {peak_mib} MiB while the handler flooded stdout"
    );
    assert!(
        processes_with("400000000").is_empty(),
        "the flooding handler was not stopped"
    );
}

#[tokio::test]
async fn an_endless_http_answer_is_cut_at_the_cap_in_bounded_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = common::env().await;
    // a server that answers 200 with a 400 MB body, written until the client hangs up
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let _ = s.read(&mut buf).await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 400000000\r\n\r\n")
            .await
            .unwrap();
        let zeros = vec![0u8; 65536];
        let mut sent = 0usize;
        while s.write_all(&zeros).await.is_ok() {
            sent += zeros.len();
            if sent >= 400_000_000 {
                break;
            }
        }
        sent
    });
    let dir = TempDir::new();
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        &format!("[worker.handlers.big]\nhttp = \"http://{addr}/\"\n"),
    );
    let worker = Proc::start(WORKER, &cfg);
    let q = env.queue();
    let id = q
        .enqueue(TaskSpec::new("big", "").max_attempts(1))
        .await
        .unwrap()
        .id;
    match q.wait(&id, Duration::from_secs(30)).await.unwrap() {
        Outcome::Dead(e) => assert!(e.contains("byte result limit"), "{e}"),
        o => panic!("{o:?}"),
    }
    let sent = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    assert!(sent < 400_000_000, "the connection was not dropped at the cap");
    let peak_mib = peak_rss_kib(worker.pid()) / 1024;
    assert!(
        peak_mib < 16 + 48,
        "worker peaked at {peak_mib} MiB reading an endless answer"
    );
}
