//! Worst case of single script calls: how long one call holds Redis (which serves nothing else
//! meanwhile) at the largest arguments the scripts accept — 1000 tasks per call, and for push
//! dispatch 1000 live workers. Server-side time from INFO commandstats (`cmdstat_evalsha` usec,
//! reset before each call); three calls per row, the slowest printed.
//!
//! Run: `cargo bench --bench worst_case` (starts its own redis-server on a free port). Figures are
//! printed; nothing is asserted.

use baton::local_redis::LocalRedis;
use baton::{Client, Config, DispatchMode, FailReport, QueueConfig, Strategy, TaskSpec};
use std::time::Duration;

const N: usize = 1000;

struct Probe(redis::aio::MultiplexedConnection);

impl Probe {
    async fn reset(&mut self) {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut self.0)
            .await
            .unwrap();
    }
    /// Server time spent in EVALSHA since the last reset, µs.
    async fn evalsha_usec(&mut self) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.0)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_evalsha:"))
            .and_then(|v| v.split(',').find_map(|f| f.strip_prefix("usec=")))
            .and_then(|u| u.parse().ok())
            .unwrap_or(0)
    }
    async fn flush(&mut self) {
        let _: () = redis::cmd("FLUSHALL").query_async(&mut self.0).await.unwrap();
    }
}

fn specs(n: usize) -> Vec<TaskSpec> {
    (0..n)
        .map(|i| TaskSpec::new("noop", vec![b'x'.wrapping_add(i as u8); 100]))
        .collect()
}

fn row(name: &str, usec: &[u64]) {
    let worst = usec.iter().max().copied().unwrap_or(0);
    println!(
        "{name:<62} {:>8.2} ms worst of {}",
        worst as f64 / 1000.0,
        usec.len()
    );
}

#[tokio::main]
async fn main() {
    let server = LocalRedis::start().expect("start redis-server");
    let url = server.url();
    let mut cfg = Config::from_toml(&format!("[redis]\nurl = \"{url}\"\n")).unwrap();
    cfg.queues.insert(
        "push".into(),
        QueueConfig {
            dispatch: DispatchMode::Push,
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(20),
            ..Default::default()
        },
    );
    let client = Client::connect(cfg).await.unwrap();
    let mut probe = Probe(
        redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap(),
    );
    println!("baton worst-case script calls — 1000 items per call, events on\n");
    let q = client.queue("pull").unwrap();

    let mut t = Vec::new();
    for _ in 0..3 {
        probe.flush().await;
        probe.reset().await;
        q.enqueue_batch(specs(N)).await.unwrap();
        t.push(probe.evalsha_usec().await);
    }
    row("enqueue 1000 tasks (100 B)", &t);

    let (mut claim, mut hb, mut done, mut fail, mut reclaim) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut start, mut reclaim_started) = (vec![], vec![]);
    for _ in 0..3 {
        probe.flush().await;
        q.enqueue_batch(specs(N)).await.unwrap();
        probe.reset().await;
        let c = q.claim("w", N).await.unwrap();
        claim.push(probe.evalsha_usec().await);
        probe.reset().await;
        q.heartbeat("w", &c.iter().map(|c| c.lease()).collect::<Vec<_>>())
            .await
            .unwrap();
        hb.push(probe.evalsha_usec().await);
        probe.reset().await;
        let req = baton::ops::complete::Request {
            worker: "w",
            busy: Duration::ZERO,
            items: c.iter().map(|c| c.completion(b"ok")).collect(),
        };
        q.run(&req).await.unwrap();
        done.push(probe.evalsha_usec().await);

        q.enqueue_batch(specs(N)).await.unwrap();
        let c = q.claim("w", N).await.unwrap();
        let reports: Vec<FailReport> = c
            .iter()
            .map(|c| FailReport {
                id: c.id.clone(),
                token: c.token.clone(),
                error: "e".into(),
                retry: true,
            })
            .collect();
        probe.reset().await;
        q.run(&q.fail_request("w", Duration::ZERO, &reports))
            .await
            .unwrap();
        fail.push(probe.evalsha_usec().await);

        // expired leases: a lease of 1ms, then reclaim them all in one call
        let short = q.with_settings(QueueConfig {
            lease: Duration::from_millis(1),
            ..q.settings().clone()
        });
        q.enqueue_batch(specs(N)).await.unwrap();
        short.claim("w", N).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        probe.reset().await;
        q.reclaim(N).await.unwrap();
        reclaim.push(probe.evalsha_usec().await);

        // the same, for runs that started: a start mark that carries the most gaps, each
        // checked against every lease (the charged path)
        q.enqueue_batch(specs(N)).await.unwrap();
        let c = short.claim("w", N).await.unwrap();
        let top: u64 = c.iter().map(|c| c.token.parse::<u64>().unwrap()).max().unwrap();
        let gaps: Vec<(u64, u64)> = (0..baton::ops::start::MAX_GAPS as u64)
            .map(|i| (i * 2, i * 2 + 2))
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        probe.reset().await;
        q.start_with_gaps("w", top, &gaps).await.unwrap();
        start.push(probe.evalsha_usec().await);
        probe.reset().await;
        q.reclaim(N).await.unwrap();
        reclaim_started.push(probe.evalsha_usec().await);
    }
    row("claim 1000", &claim);
    row("heartbeat 1000 leases", &hb);
    row("complete 1000", &done);
    row("fail 1000 (retry)", &fail);
    row("reclaim 1000 expired leases (never started)", &reclaim);
    row("start mark with 16 gaps", &start);
    row("reclaim 1000 expired leases (started, 16 gaps)", &reclaim_started);

    // take: 1000 tasks dispatched to one worker, taken in one call
    let p1 = client.queue("push").unwrap();
    let mut take = Vec::new();
    for _ in 0..3 {
        probe.flush().await;
        p1.configure().await.unwrap();
        p1.register("big", &serde_json::json!({ "capacity": N, "weight": 1 }))
            .await
            .unwrap();
        p1.heartbeat("big", &[]).await.unwrap();
        p1.enqueue_batch(specs(N)).await.unwrap();
        let d = p1.dispatch(Strategy::RoundRobin, N, 1).await.unwrap();
        assert_eq!(d.assigned, N as u64, "{d:?}");
        probe.reset().await;
        assert_eq!(p1.take("big", N).await.unwrap().len(), N);
        take.push(probe.evalsha_usec().await);
    }
    row("take 1000 (push)", &take);

    let p = client.queue("push").unwrap();
    for strategy in [
        Strategy::Random,
        Strategy::RoundRobin,
        Strategy::Weighted,
        Strategy::LeastConcurrency,
    ] {
        let (mut t, mut per_call) = (Vec::new(), 0);
        for round in 0..3 {
            probe.flush().await;
            p.configure().await.unwrap();
            for w in 0..N {
                let id = format!("w{w:04}");
                p.register(&id, &serde_json::json!({ "capacity": N, "weight": 1 + w % 3 }))
                    .await
                    .unwrap();
                p.heartbeat(&id, &[]).await.unwrap();
            }
            p.enqueue_batch(specs(N)).await.unwrap();
            probe.reset().await;
            let d = p.dispatch(strategy, N, 7 + round).await.unwrap();
            t.push(probe.evalsha_usec().await);
            per_call = d.assigned;
            assert!(d.assigned == N as u64 || d.more, "{d:?}");
        }
        row(
            &format!(
                "dispatch over 1000 live workers, {} ({per_call} tasks/call)",
                strategy.as_str()
            ),
            &t,
        );
    }
}
