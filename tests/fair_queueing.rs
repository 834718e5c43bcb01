//! Fair queueing across groups (tenants): on a queue with `fairness = "fair"`, claim serves the
//! groups that have pending tasks by weighted fair queueing, so one group's flood cannot delay
//! the others; priorities still order tasks within a group; every path that puts a task back in
//! pending puts it back in its group. Measured from the events' Redis timestamps.
mod common;
use baton::flow::Fairness;
use baton::{Outcome, Queue, TaskSpec, Worker};
use std::collections::HashMap;
use std::time::Duration;

fn fair(c: &mut baton::Config) {
    c.queues.get_mut("q").unwrap().fairness = Fairness::Fair;
}

/// Enqueue `n` tasks of group `g` (payload = index) in batches of 1000; their ids.
async fn enqueue_group(q: &Queue, g: &str, n: usize) -> Vec<String> {
    let specs = (0..n)
        .map(|i| TaskSpec::new("nap", i.to_string()).group(g))
        .collect();
    common::enqueue_all(q, specs).await
}

/// A worker of `conc` slots whose handler sleeps `nap`.
fn napper(env: &common::Env, conc: usize, nap: Duration) -> Worker {
    Worker::builder(&env.client, "q")
        .unwrap()
        .concurrency(conc)
        .handler("nap", move |_t: baton::TaskContext| async move {
            tokio::time::sleep(nap).await;
            Ok(Vec::new())
        })
        .build()
        .unwrap()
}

fn jain(x: &[f64]) -> f64 {
    let s: f64 = x.iter().sum();
    let s2: f64 = x.iter().map(|v| v * v).sum();
    if s2 == 0.0 {
        1.0
    } else {
        s * s / (x.len() as f64 * s2)
    }
}

#[tokio::test]
async fn one_groups_flood_does_not_delay_the_others() {
    let env = common::env_with(fair).await;
    let q = env.queue();
    q.configure().await.unwrap();
    let mut group_of: HashMap<String, String> = HashMap::new();
    for id in enqueue_group(&q, "big", 20_000).await {
        group_of.insert(id, "big".into());
    }
    let (stop, h) = common::spawn_worker(napper(&env, 8, Duration::from_millis(10)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // nine small groups a little later, while the flood is being worked
    let mut small = Vec::new();
    for k in 1..=9 {
        let g = format!("small-{k}");
        for id in enqueue_group(&q, &g, 200).await {
            group_of.insert(id.clone(), g.clone());
            small.push(id);
        }
    }
    for id in &small {
        assert_eq!(
            q.wait(id, Duration::from_secs(60)).await.unwrap(),
            Outcome::Done(Vec::new())
        );
    }
    stop.cancel();
    h.await.unwrap().unwrap();

    let all = common::flow::hand_outs(&q, "claimed").await;
    let first_small = all.iter().find(|(_, id)| group_of[id] != "big").unwrap().0;
    let mut last: HashMap<&str, u64> = HashMap::new();
    for (t, id) in &all {
        last.insert(group_of[id].as_str(), *t);
    }
    // every full 1-second window after the small groups arrived: Jain's index of the claims per
    // group, over the groups that still had work at the window's end
    let end = (1..=9)
        .map(|k| last[format!("small-{k}").as_str()])
        .max()
        .unwrap();
    let mut windows = Vec::new();
    let mut s = first_small;
    while s + 1000 <= end {
        let mut per: HashMap<&str, f64> = HashMap::new();
        for (t, id) in all.iter().filter(|(t, _)| *t >= s && *t < s + 1000) {
            let _ = t;
            *per.entry(group_of[id].as_str()).or_default() += 1.0;
        }
        let busy: Vec<f64> = last
            .iter()
            .filter(|(_, l)| **l >= s + 1000)
            .map(|(g, _)| per.get(g).copied().unwrap_or(0.0))
            .collect();
        if busy.len() >= 2 {
            let j = jain(&busy);
            windows.push(j);
            assert!(
                j >= 0.95,
                "window at +{} ms: Jain {j:.3} over {busy:?}",
                s - first_small
            );
        }
        s += 1000;
    }
    assert!(windows.len() >= 2, "too few full windows to judge: {windows:?}");
    // the small groups finish within 2x of their fair-share schedule: each gets a tenth of the
    // claims while all ten have work
    let claimed = all.iter().filter(|(t, _)| *t >= first_small && *t <= end).count() as f64;
    let rate = claimed / ((end - first_small).max(1) as f64 / 1000.0);
    let fair_s = 200.0 / (rate / 10.0);
    for k in 1..=9 {
        let took = (last[format!("small-{k}").as_str()] - first_small) as f64 / 1000.0;
        assert!(
            took <= 2.0 * fair_s,
            "small-{k} took {took:.2} s; fair share {fair_s:.2} s"
        );
    }
    eprintln!(
        "flood 20000 + 9 x 200: Jain per 1 s window {:?}; small groups done in <= {:.2} s (fair share {fair_s:.2} s at {rate:.0} claims/s)",
        windows.iter().map(|j| (j * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        (1..=9).map(|k| (last[format!("small-{k}").as_str()] - first_small) as f64 / 1000.0).fold(0.0, f64::max)
    );
}

#[tokio::test]
async fn weights_share_the_workers() {
    let env = common::env_with(fair).await;
    let q = env.queue();
    q.configure().await.unwrap();
    let mut group_of: HashMap<String, String> = HashMap::new();
    for (g, w) in [("w1", 1), ("w2", 2), ("w4", 4)] {
        assert_eq!(q.set_group_weight(g, w).await.unwrap(), 1);
        for id in enqueue_group(&q, g, 2000).await {
            group_of.insert(id, g.into());
        }
    }
    let ids: Vec<String> = group_of.keys().cloned().collect();
    let (stop, h) = common::spawn_worker(napper(&env, 16, Duration::ZERO));
    common::eventually(Duration::from_secs(60), "1400 tasks claimed", || async {
        q.counts().await.unwrap().done >= 1400
    })
    .await;
    stop.cancel();
    h.await.unwrap().unwrap();
    let all = common::flow::hand_outs(&q, "claimed").await;
    let mut per: HashMap<&str, f64> = HashMap::new();
    for (_, id) in all.iter().take(1400) {
        *per.entry(group_of[id].as_str()).or_default() += 1.0;
    }
    for (g, w) in [("w1", 1.0), ("w2", 2.0), ("w4", 4.0)] {
        let share = per[g] / 1400.0;
        let want = w / 7.0;
        assert!(
            (share - want).abs() <= 0.03 * want,
            "{g}: share {share:.4}, weight share {want:.4} (±3%)"
        );
    }
    eprintln!("weights 1:2:4 over the first 1400 claims: {per:?}");
    drop(ids);
    // the list shows the weights and the backlogs left
    let list = q.groups(10).await.unwrap();
    let w: HashMap<&str, (u64, u64)> = list
        .iter()
        .map(|g| (g.name.as_str(), (g.weight, g.backlog)))
        .collect();
    assert_eq!(w["w4"].0, 4);
    assert_eq!(w["w1"].0, 1);
    let c = q.counts().await.unwrap();
    let backlog: u64 = list.iter().map(|g| g.backlog).sum();
    assert_eq!(
        backlog, c.pending,
        "the group sets hold exactly the pending tasks"
    );
}

#[tokio::test]
async fn priorities_order_a_group_and_every_way_back_to_pending_keeps_the_group() {
    let env = common::env_with(fair).await;
    let q = env.queue();
    q.configure().await.unwrap();
    // within a group, priority first
    q.enqueue(TaskSpec::new("k", "low").group("a").id("a-low"))
        .await
        .unwrap();
    q.enqueue(TaskSpec::new("k", "high").group("a").priority(5).id("a-high"))
        .await
        .unwrap();
    q.enqueue(TaskSpec::new("k", "b1").group("b").id("b-1"))
        .await
        .unwrap();
    q.enqueue(TaskSpec::new("k", "dflt").id("d-1")).await.unwrap();
    let first: Vec<String> = q.claim("w", 3).await.unwrap().into_iter().map(|c| c.id).collect();
    assert!(
        first.contains(&"a-high".to_string()) && !first.contains(&"a-low".to_string()),
        "{first:?}"
    );
    assert!(
        first.contains(&"b-1".to_string()) && first.contains(&"d-1".to_string()),
        "{first:?}"
    );
    // released tasks go back to their group
    let held: Vec<baton::LeaseRef> = q
        .claim("w", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| baton::LeaseRef::new(c.id, c.token))
        .collect();
    assert_eq!(held.len(), 1, "a-low");
    assert_eq!(q.release("w", &held).await.unwrap(), 1);
    common::assert_state(&q, "a-low", "pending").await;
    let groups = q.groups(10).await.unwrap();
    let a = groups.iter().find(|g| g.name == "a").unwrap();
    assert_eq!(a.backlog, 1);
    // a cancelled pending task leaves its group's set
    assert_eq!(
        q.cancel(&["a-low"]).await.unwrap()[0].map(|s| s.as_str()),
        Some("pending")
    );
    assert!(q.groups(10).await.unwrap().iter().all(|g| g.backlog == 0));
    assert!(q.claim("w", 10).await.unwrap().is_empty());
    // a failed attempt retried after its backoff (promote) comes back to its group
    q.enqueue(TaskSpec::new("k", "x").group("c").id("c-1"))
        .await
        .unwrap();
    let c = q.claim("w", 1).await.unwrap().remove(0);
    q.fail(
        "w",
        &baton::FailReport {
            id: c.id.clone(),
            token: c.token.clone(),
            error: "boom".into(),
            retry: true,
        },
    )
    .await
    .unwrap();
    let (stop, h) = common::maintain(&env, &q);
    common::eventually(Duration::from_secs(5), "c-1 promoted", || async {
        common::sets_holding(&q, "c-1").await == vec!["pending"]
    })
    .await;
    stop.cancel();
    h.await.unwrap().unwrap();
    let again = q.claim("w", 5).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, "c-1");
    common::assert_one_state(&q, "c-1").await;
}

#[tokio::test]
async fn bad_groups_and_settings_are_refused_naming_them() {
    let env = common::env_with(fair).await;
    let q = env.queue();
    q.configure().await.unwrap();
    let huge = "g".repeat(10 * 1024);
    let e = q
        .enqueue(TaskSpec::new("k", "x").group(&huge))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("group"), "{e}");
    let e = q
        .enqueue(TaskSpec::new("k", "x").group("a b"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("group"), "{e}");
    assert_eq!(q.counts().await.unwrap().pending, 0, "nothing written");
    // switching fairness with tasks pending
    q.enqueue(TaskSpec::new("k", "x").group("a")).await.unwrap();
    let mut cfg = env.config.clone();
    cfg.queues.get_mut("q").unwrap().fairness = Fairness::Fifo;
    let fifo = baton::Client::connect(cfg).await.unwrap().queue("q").unwrap();
    let e = fifo.configure().await.unwrap_err().to_string();
    assert!(e.contains("fairness") && e.contains("pending"), "{e}");
    // config typos name the key
    let err = baton::Config::from_toml(
        "[redis]\nurl = \"redis://127.0.0.1:1\"\n[queues.q]\nfairness = \"round\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("fairness"), "{err}");
    // the CLI refuses a weight of 0, naming the flag and the fix
    let dir = common::TempDir::new();
    let cfg = common::product_config(&dir, &env.redis.url(), "");
    let (code, _, err) = common::baton(&cfg, &["groups", "set", "-q", "q", "a", "--weight", "0"]);
    assert_ne!(code, 0);
    assert!(err.contains("--weight") && err.contains("reset"), "{err}");
    let (code, out, err) = common::baton(&cfg, &["groups", "set", "-q", "q", "a", "--weight", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("weight 3 (was 1)"), "{out}");
    let (code, out, _) = common::baton(&cfg, &["--json", "groups", "list", "-q", "q"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v[0]["name"], "a");
    assert_eq!(v[0]["weight"], 3);
    assert_eq!(v[0]["backlog"], 1);
    let (code, out, _) = common::baton(&cfg, &["groups", "reset", "-q", "q", "a"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("(was weight 3, concurrency the queue's, rate the queue's, burst the queue's)"),
        "{out}"
    );
    // a weight over the top is refused by the script too, naming it
    let e = q
        .set_group_weight("a", baton::flow::GROUP_WEIGHT_MAX + 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("weight"), "{e}");
    assert_eq!(
        q.set_group_weight("a", baton::flow::GROUP_WEIGHT_MAX)
            .await
            .unwrap(),
        1
    );
    // group caps belong to a fair queue
    let err = baton::Config::from_toml(
        "[redis]\nurl = \"redis://127.0.0.1:1\"\n[worker]\nqueues = [\"q\"]\n[queues.q]\ngroup_concurrency = 2\n",
    )
    .and_then(|c| c.validate().map(|_| c))
    .unwrap_err()
    .to_string();
    assert!(err.contains("group_concurrency") && err.contains("fair"), "{err}");
}

#[tokio::test]
async fn metrics_and_dashboard_show_limits_and_the_largest_groups() {
    use common::web::{free_port, get, parse_prometheus, wait_up};
    let env = common::env_with(|c| {
        let q = c.queues.get_mut("q").unwrap();
        q.fairness = Fairness::Fair;
        q.concurrency = 2;
        q.lease = Duration::from_secs(30);
        q.heartbeat = Duration::from_secs(10);
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    for k in 0..12 {
        enqueue_group(&q, &format!("t{k:02}"), k + 1).await;
    }
    // two leases fill the cap: the next claim is held back by it
    assert_eq!(q.claims("w", 2).await.unwrap().tasks.len(), 2);
    assert_eq!(
        q.claims("w", 5).await.unwrap().held,
        Some(baton::Held::Concurrency)
    );
    let dir = common::TempDir::new();
    let port = free_port();
    let cfg = dir.write(
        "baton.toml",
        &format!(
            "[redis]\nurl = \"{}\"\n[queues.q]\nlease = \"30s\"\nheartbeat = \"10s\"\nfairness = \"fair\"\nconcurrency = 2\n\
             [worker]\nqueues = [\"q\"]\n[scheduler]\nhttp = \"127.0.0.1:{port}\"\n",
            env.redis.url()
        ),
    );
    let _scheduler = common::Proc::start(common::SCHEDULER, &cfg);
    let base = format!("http://127.0.0.1:{port}");
    wait_up(&format!("{base}/healthz")).await;
    let (_, text) = get(&format!("{base}/metrics")).await;
    let m = parse_prometheus(&text);
    assert_eq!(
        m[r#"baton_throttled_total{queue="q",limit="concurrency"}"#], 1.0,
        "{text}"
    );
    assert_eq!(m[r#"baton_throttled_total{queue="q",limit="rate"}"#], 0.0);
    // the ten largest backlogs of twelve groups (t11 has 12, less what the claim took)
    let groups: Vec<&String> = m
        .keys()
        .filter(|k| k.starts_with("baton_group_backlog"))
        .collect();
    assert_eq!(groups.len(), 10, "{groups:?}");
    assert!(!m.contains_key(r#"baton_group_backlog{queue="q",group="t00"}"#));
    let (_, body) = get(&format!("{base}/api/overview")).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let qv = &v["queues"][0];
    assert_eq!(qv["limits"]["concurrency"], 2);
    assert_eq!(qv["limits"]["running"], 2);
    assert_eq!(qv["limits"]["held_by"], "concurrency");
    assert_eq!(qv["groups"].as_array().unwrap().len(), 10);
    assert_eq!(qv["groups"][0]["name"], "t11");
}

#[tokio::test]
async fn push_dispatch_serves_groups_fairly_too() {
    let env = common::env_with(|c| {
        fair(c);
        c.queues.get_mut("q").unwrap().dispatch = baton::DispatchMode::Push;
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    q.set_group_weight("heavy", 3).await.unwrap();
    let mut group_of: HashMap<String, String> = HashMap::new();
    for g in ["light", "heavy"] {
        for id in enqueue_group(&q, g, 400).await {
            group_of.insert(id, g.into());
        }
    }
    let (mstop, mh) = common::maintain(&env, &q);
    let (stop, h) = common::spawn_worker(napper(&env, 8, Duration::from_millis(2)));
    common::eventually(Duration::from_secs(30), "200 done", || async {
        q.counts().await.unwrap().done >= 200
    })
    .await;
    stop.cancel();
    h.await.unwrap().unwrap();
    mstop.cancel();
    mh.await.unwrap().unwrap();
    // in stream order: the order of the dispatch calls
    let mut dispatched = Vec::new();
    for e in q.events_after("0-0", 10_000).await.unwrap() {
        if e.kind == "dispatched" {
            dispatched.extend(e.tasks.into_iter().map(|t| t.id));
        }
    }
    let heavy = dispatched
        .iter()
        .take(200)
        .filter(|id| group_of[*id] == "heavy")
        .count();
    assert!(
        (145..=155).contains(&heavy),
        "heavy got {heavy} of the first 200 (weight 3 of 4: 150)"
    );
}

/// In-process workers (8 slots each) over groups with caps: the most handlers of each group ever
/// running at once, and overall.
async fn peaks_per_group(
    env: &common::Env,
    groups: &[(&str, usize)],
    workers: usize,
    nap: Duration,
) -> (HashMap<String, usize>, usize) {
    let specs = groups
        .iter()
        .flat_map(|(g, n)| (0..*n).map(move |_| TaskSpec::new("nap", g.to_string()).group(*g)))
        .collect();
    common::run_peaks(env, workers, 8, specs, nap).await
}

#[tokio::test]
async fn a_group_cap_of_one_never_runs_two_and_never_holds_back_the_others() {
    let env = common::env_with(|c| {
        fair(c);
        c.queues.get_mut("q").unwrap().group_concurrency = 1;
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    // one group gets its own cap of 3, at run time
    let before = q
        .change_group("wide", baton::ops::group_set::Change::Concurrency(3))
        .await
        .unwrap();
    assert_eq!(before.concurrency, None);
    let (peaks, all) = peaks_per_group(
        &env,
        &[("a", 30), ("b", 30), ("c", 30), ("wide", 30)],
        3,
        Duration::from_millis(10),
    )
    .await;
    for g in ["a", "b", "c"] {
        assert_eq!(peaks[g], 1, "group {g} under a cap of 1: {peaks:?}");
    }
    assert_eq!(peaks["wide"], 3, "{peaks:?}");
    assert!(all >= 4, "the capped groups ran side by side: peak {all}");
}

#[tokio::test]
async fn a_parked_group_says_when_and_the_end_of_its_lease_frees_it() {
    let env = common::env_with(|c| {
        fair(c);
        let q = c.queues.get_mut("q").unwrap();
        q.group_concurrency = 1;
        q.lease = Duration::from_secs(30);
        q.heartbeat = Duration::from_secs(10);
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    enqueue_group(&q, "solo", 3).await;
    let first = q.claims("w", 5).await.unwrap();
    assert_eq!(first.tasks.len(), 1);
    // parked until its lease's deadline at the latest (30 s)
    match first.held {
        Some(baton::Held::Wait(d)) => assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        ),
        other => panic!("{other:?}"),
    }
    let g = q.groups(5).await.unwrap();
    assert_eq!((g[0].running, g[0].concurrency, g[0].backlog), (1, Some(1), 2));
    assert!(g[0].parked_until_ms.is_some());
    assert!(q.claims("w", 5).await.unwrap().tasks.is_empty());
    // the end of its lease readies it at once
    q.complete("w", &first.tasks[0], b"ok").await.unwrap();
    assert_eq!(q.claims("w", 5).await.unwrap().tasks.len(), 1);
}

#[tokio::test]
async fn group_caps_hold_with_a_worker_sigkilled() {
    let env = common::env_with(|c| {
        fair(c);
        c.queues.get_mut("q").unwrap().group_concurrency = 2;
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    let groups = ["g1", "g2", "g3", "g4"];
    let mut ids = Vec::new();
    for g in groups {
        ids.extend(enqueue_group(&q, g, 25).await);
    }
    let (mstop, mh) = common::maintain(&env, &q);
    let dir = common::TempDir::new();
    let cfg = dir.write(
        "baton.toml",
        &format!(
            "[redis]\nurl = \"{}\"\n[queues.q]\nlease = \"1s\"\nheartbeat = \"300ms\"\nmax_attempts = 5\n\
             fairness = \"fair\"\ngroup_concurrency = 2\n[worker]\nqueues = [\"q\"]\nconcurrency = 8\n\
             maintenance = false\n[worker.handlers.nap]\nshell = \"sleep 0.2\"\n",
            env.redis.url()
        ),
    );
    let mut workers: Vec<common::Proc> = (0..3)
        .map(|_| common::Proc::start(common::WORKER, &cfg))
        .collect();
    let started = std::time::Instant::now();
    let mut killed: Option<std::time::Instant> = None;
    let mut full_again = None;
    loop {
        let list = q.groups(10).await.unwrap();
        let mut total = 0;
        for g in &list {
            assert!(
                g.running <= 2,
                "group {} has {} leases alive under a cap of 2",
                g.name,
                g.running
            );
            total += g.running;
        }
        if killed.is_none() && started.elapsed() > Duration::from_millis(1200) {
            workers[0].signal("KILL");
            workers[0].wait_exit(Duration::from_secs(5));
            killed = Some(std::time::Instant::now());
        }
        if let Some(k) = killed {
            if full_again.is_none() && k.elapsed() > Duration::from_millis(1000) && total == 8 {
                full_again = Some(k.elapsed());
            }
        }
        if q.counts().await.unwrap().done == ids.len() as u64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not all done");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let back = full_again.expect("every group at its cap again after the killed worker's leases expired");
    assert!(back < Duration::from_millis(1800), "slots back after {back:?}");
    eprintln!("group caps 2 x 4 groups: never exceeded; all 8 slots in use again {back:?} after the kill (lease 1s)");
    mstop.cancel();
    mh.await.unwrap().unwrap();
}
