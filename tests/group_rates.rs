//! Rate limits per group and costs per task: on a fair queue every group may have a GCRA rate
//! limit of its own (the queue's `group_rate`, or `baton groups set --rate`), enforced inside the
//! fair pop; a group over its rate is parked until the rate admits it, never holding back the
//! others. A task's cost counts against the rate limits of its queue and its group. Checked from
//! the events' Redis timestamps, across worker processes.
mod common;
use baton::flow::{Fairness, Rate};
use baton::keys::Role;
use baton::{Outcome, TaskSpec, Worker};
use std::collections::HashMap;
use std::time::Duration;

/// A worker of `conc` slots whose handler returns at once.
fn quick(env: &common::Env, conc: usize) -> Worker {
    Worker::builder(&env.client, "q")
        .unwrap()
        .concurrency(conc)
        .handler("k", |_t: baton::TaskContext| async move { Ok(Vec::new()) })
        .build()
        .unwrap()
}

/// The hand-outs of one set of tasks (ids → cost), at their Redis ms.
fn of(all: &[(u64, String)], cost: &HashMap<String, f64>) -> Vec<(u64, f64)> {
    all.iter()
        .filter_map(|(t, id)| cost.get(id).map(|c| (*t, *c)))
        .collect()
}

#[tokio::test]
async fn a_rate_limit_per_group_holds_for_twenty_groups_across_three_worker_processes() {
    let (rate, burst, groups, per) = (10.0, 3.0, 20, 40);
    let env = common::env_with(|c| {
        let q = c.queues.get_mut("q").unwrap();
        q.fairness = Fairness::Fair;
        q.group_rate = Some(Rate::parse("10/s").unwrap());
        q.group_burst = Some(3);
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    let mut group_of = HashMap::new();
    let mut specs = Vec::new();
    for g in 0..groups {
        for i in 0..per {
            specs.push(TaskSpec::new("cat", format!("{g}-{i}")).group(format!("g{g}")));
        }
    }
    let ids = common::enqueue_all(&q, specs).await;
    for (i, id) in ids.iter().enumerate() {
        group_of.insert(id.clone(), format!("g{}", i / per));
    }
    let dir = common::TempDir::new();
    let cfg = dir.write(
        "baton.toml",
        &format!(
            "[redis]\nurl = \"{}\"\n[queues.q]\nlease = \"2s\"\nheartbeat = \"500ms\"\nfairness = \"fair\"\n\
             group_rate = \"10/s\"\ngroup_burst = 3\n[worker]\nqueues = [\"q\"]\nconcurrency = 16\n\
             poll_interval = \"1s\"\nmaintenance = false\n[worker.handlers.cat]\nexec = [\"cat\"]\n",
            env.redis.url()
        ),
    );
    let workers: Vec<common::Proc> = (0..3)
        .map(|_| common::Proc::start(common::WORKER, &cfg))
        .collect();
    for id in &ids {
        let out = q.wait(id, Duration::from_secs(60)).await.unwrap();
        assert!(matches!(out, Outcome::Done(_)), "{id}: {out:?}");
    }
    drop(workers);
    let all = common::flow::hand_outs(&q, "claimed").await;
    assert_eq!(all.len(), ids.len(), "each task handed out once");
    let mut lowest = f64::MAX;
    for g in 0..groups {
        let name = format!("g{g}");
        let cost: HashMap<String, f64> = group_of
            .iter()
            .filter(|(_, gr)| **gr == name)
            .map(|(id, _)| (id.clone(), 1.0))
            .collect();
        let at = of(&all, &cost);
        assert_eq!(at.len(), per);
        let reached = common::flow::check_rate(&at, rate, burst, &name);
        lowest = lowest.min(reached);
    }
    assert!(
        lowest >= 0.95 * rate,
        "the slowest group sustained {lowest:.2}/s, below 95% of {rate}/s"
    );
    let total_s = (all.last().unwrap().0 - all[0].0) as f64 / 1000.0;
    eprintln!(
        "group rate 10/s burst 3, 20 groups x 40, 3 processes x 16: every group within the bound, \
         slowest sustained {lowest:.2}/s; {} tasks in {total_s:.2} s ({:.0}/s)",
        all.len(),
        all.len() as f64 / total_s
    );
    let c = q.counts().await.unwrap();
    assert!(c.held_group_rate_total > 0, "{c:?}");
    assert_eq!((c.group_rate_interval_us, c.group_burst), (100_000, 3));
    let (code, out, err) = common::baton(&cfg, &["stats", "-q", "q", "--sample", "0s"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("per group rate 10/s burst 3"), "{out}");
}

#[tokio::test]
async fn costs_count_against_the_queue_rate() {
    costs_under_the_queue_rate(Fairness::Fifo).await;
}

#[tokio::test]
async fn costs_count_against_the_queue_rate_on_a_fair_queue() {
    costs_under_the_queue_rate(Fairness::Fair).await;
}

/// 100 tasks costing 1, 4, 2... (in three groups on a fair queue) under 100/s burst 10.
async fn costs_under_the_queue_rate(fairness: Fairness) {
    let (rate, burst) = (100.0, 10.0);
    let env = common::env_with(|c| {
        let q = c.queues.get_mut("q").unwrap();
        q.rate = Some(Rate::parse("100/s").unwrap());
        q.burst = Some(10);
        q.fairness = fairness;
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    // 100 tasks costing 1, 4, 2, 1, 4, 2...: 233 units, 2.3 s at 100/s
    let costs: Vec<u32> = (0..100).map(|i| [1, 4, 2][i % 3]).collect();
    let specs = costs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            TaskSpec::new("k", i.to_string())
                .cost(*c)
                .group(format!("g{}", i % 4))
        })
        .collect();
    let (stop, h) = common::spawn_worker(quick(&env, 8));
    let ids = common::enqueue_all(&q, specs).await;
    for id in &ids {
        assert_eq!(
            q.wait(id, Duration::from_secs(30)).await.unwrap(),
            Outcome::Done(Vec::new())
        );
    }
    stop.cancel();
    h.await.unwrap().unwrap();
    let cost: HashMap<String, f64> = ids
        .iter()
        .zip(&costs)
        .map(|(id, c)| (id.clone(), *c as f64))
        .collect();
    let at = of(&common::flow::hand_outs(&q, "claimed").await, &cost);
    assert_eq!(at.len(), ids.len());
    let reached = common::flow::check_rate(&at, rate, burst, fairness.as_str());
    assert!(
        reached >= 0.9 * rate,
        "sustained {reached:.1} cost/s under {rate}/s"
    );
    // counted by tasks, the same hand-outs would break the bound: the costs were what held them
    let tasks_per_s = at.len() as f64 / ((at[at.len() - 1].0 - at[0].0) as f64 / 1000.0);
    assert!(tasks_per_s < 0.6 * rate, "{tasks_per_s:.1} tasks/s");
    eprintln!(
        "{}: costs 1/4/2 under 100/s burst 10: sustained {reached:.1} cost/s ({tasks_per_s:.1} tasks/s)",
        fairness.as_str()
    );
    // only tasks costing more than 1 keep a cost: 66 of the 100
    let mut raw = env.raw().await;
    let meta = q.keys().key(Role::Meta);
    let kept: u64 = redis::cmd("HLEN")
        .arg(format!("{}tcost", meta.strip_suffix("meta").unwrap()))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(kept, 66);
}

#[tokio::test]
async fn a_group_over_its_rate_is_parked_announced_and_never_holds_back_the_others() {
    let env = common::env_with(|c| c.queues.get_mut("q").unwrap().fairness = Fairness::Fair).await;
    let q = env.queue();
    q.configure().await.unwrap();
    let dir = common::TempDir::new();
    let cfg = common::product_config(&dir, &env.redis.url(), "");
    let (code, out, err) = common::baton(
        &cfg,
        &[
            "groups", "set", "-q", "q", "slow", "--rate", "5/s", "--burst", "1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rate 5/s (was the queue's)"), "{out}");
    // a pricey group: 10/s with a burst of 10, tasks of cost 5: two tasks a second
    q.change_group("pricey", baton::ops::group_set::Change::RateIntervalUs(100_000))
        .await
        .unwrap();
    q.change_group("pricey", baton::ops::group_set::Change::Burst(10))
        .await
        .unwrap();
    let slow = common::enqueue_all(
        &q,
        (0..15)
            .map(|i| TaskSpec::new("k", format!("s{i}")).group("slow"))
            .collect(),
    )
    .await;
    let pricey = common::enqueue_all(
        &q,
        (0..6)
            .map(|i| TaskSpec::new("k", format!("p{i}")).group("pricey").cost(5))
            .collect(),
    )
    .await;
    let fast = common::enqueue_all(
        &q,
        (0..300)
            .map(|i| TaskSpec::new("k", format!("f{i}")).group("fast"))
            .collect(),
    )
    .await;
    let started = std::time::Instant::now();
    let (stop, h) = common::spawn_worker(quick(&env, 8));
    for id in &fast {
        assert_eq!(
            q.wait(id, Duration::from_secs(10)).await.unwrap(),
            Outcome::Done(Vec::new())
        );
    }
    let fast_s = started.elapsed().as_secs_f64();
    // while the slow group is held back: listed as parked by its rate, with its rate
    let list = q.groups(10).await.unwrap();
    let s = list.iter().find(|g| g.name == "slow").expect("slow listed");
    assert_eq!(s.rate_interval_us, Some(200_000), "{s:?}");
    assert!(s.backlog > 0, "{s:?}");
    let (code, out, _) = common::baton(&cfg, &["groups", "list", "-q", "q"]);
    assert_eq!(code, 0);
    assert!(out.contains("slow") && out.contains("5/s b1"), "{out}");
    assert!(
        fast_s < 2.0,
        "the fast group took {fast_s:.2} s beside a slow one"
    );
    for id in slow.iter().chain(&pricey) {
        assert_eq!(
            q.wait(id, Duration::from_secs(10)).await.unwrap(),
            Outcome::Done(Vec::new())
        );
    }
    stop.cancel();
    h.await.unwrap().unwrap();
    let all = common::flow::hand_outs(&q, "claimed").await;
    let ones =
        |ids: &[String], c: f64| -> HashMap<String, f64> { ids.iter().map(|i| (i.clone(), c)).collect() };
    let r_slow = common::flow::check_rate(&of(&all, &ones(&slow, 1.0)), 5.0, 1.0, "slow");
    let r_pricey = common::flow::check_rate(&of(&all, &ones(&pricey, 5.0)), 10.0, 10.0, "pricey");
    assert!(r_slow >= 0.9 * 5.0, "slow sustained {r_slow:.2}/s");
    eprintln!(
        "fast group (300 tasks) done in {fast_s:.2} s beside slow (5/s: sustained {r_slow:.2}/s) and pricey (10/s, cost 5: {r_pricey:.1} cost/s)"
    );
    // parks are announced once per change of what holds a group, naming it
    let held = common::flow::details(&q, "held").await;
    let slow_held: Vec<&String> = held.iter().filter(|d| d.ends_with("|slow")).collect();
    assert!(!slow_held.is_empty(), "{held:?}");
    assert!(
        slow_held.len() <= 3,
        "one event per change, not per park: {held:?}"
    );
    assert!(slow_held.iter().all(|d| d.starts_with("group_rate|")), "{held:?}");
    let c = q.counts().await.unwrap();
    assert!(c.held_group_rate_total > 0, "{c:?}");
    // lifting the rate at run time: the rest of a group goes at once
    let more = common::enqueue_all(
        &q,
        (0..50)
            .map(|i| TaskSpec::new("k", format!("m{i}")).group("slow"))
            .collect(),
    )
    .await;
    let (code, out, err) = common::baton(&cfg, &["groups", "set", "-q", "q", "slow", "--rate", "none"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rate none (was 5/s)"), "{out}");
    let started = std::time::Instant::now();
    let (stop, h) = common::spawn_worker(quick(&env, 8));
    for id in &more {
        assert_eq!(
            q.wait(id, Duration::from_secs(10)).await.unwrap(),
            Outcome::Done(Vec::new())
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "50 tasks took {:?} with no rate",
        started.elapsed()
    );
    stop.cancel();
    h.await.unwrap().unwrap();
    let (code, out, _) = common::baton(&cfg, &["groups", "reset", "-q", "q", "slow"]);
    assert_eq!(code, 0);
    assert!(out.contains("rate none, burst 1"), "{out}");
}

#[tokio::test]
async fn bad_group_rates_and_costs_are_refused_naming_them() {
    let env = common::env_with(|c| c.queues.get_mut("q").unwrap().fairness = Fairness::Fair).await;
    let q = env.queue();
    q.configure().await.unwrap();
    let e = q
        .enqueue(TaskSpec::new("k", "x").cost(0))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cost") && e.contains("between 1"), "{e}");
    let e = q
        .enqueue(TaskSpec::new("k", "x").cost(2_000_000))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cost"), "{e}");
    assert_eq!(q.counts().await.unwrap().pending, 0, "nothing written");
    let e = q
        .change_group("a", baton::ops::group_set::Change::Burst(0))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("burst"), "{e}");
    let dir = common::TempDir::new();
    let cfg = common::product_config(&dir, &env.redis.url(), "");
    for (args, says) in [
        (&["--rate", "0/s"][..], "positive"),
        (&["--rate", "lots/s"][..], "not a number"),
        (&["--rate", "5/fortnight"][..], "not a duration"),
        (&["--burst", "0"][..], "--burst"),
    ] {
        let mut a = vec!["groups", "set", "-q", "q", "a"];
        a.extend_from_slice(args);
        let (code, _, err) = common::baton(&cfg, &a);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (code, _, err) = common::baton(
        &cfg,
        &["enqueue", "-q", "q", "-k", "k", "--payload", "{}", "--cost", "0"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("cost"), "{err}");
    assert_eq!(q.counts().await.unwrap().pending, 0, "nothing written");
    common::refused_queue_settings(&[
        ("group_rate = \"5/s\"", "group_rate", "fair"),
        (
            "fairness = \"fair\"\ngroup_rate = \"0/s\"",
            "group_rate",
            "positive",
        ),
        (
            "fairness = \"fair\"\ngroup_burst = 3",
            "queues.q.group_burst",
            "set group_rate as well",
        ),
        (
            "fairness = \"fair\"\ngroup_rate = \"5/s\"\ngroup_burst = 0",
            "queues.q.group_burst",
            "between 1",
        ),
    ]);
}

#[tokio::test]
async fn push_dispatch_honours_a_groups_rate() {
    let env = common::env_with(|c| {
        let q = c.queues.get_mut("q").unwrap();
        q.fairness = Fairness::Fair;
        q.dispatch = baton::DispatchMode::Push;
    })
    .await;
    let q = env.queue();
    q.configure().await.unwrap();
    q.change_group("slow", baton::ops::group_set::Change::RateIntervalUs(100_000))
        .await
        .unwrap(); // 10/s
    q.change_group("slow", baton::ops::group_set::Change::Burst(2))
        .await
        .unwrap();
    let group =
        |g: &'static str, n: usize| (0..n).map(move |i| TaskSpec::new("k", format!("{g}{i}")).group(g));
    let slow = common::enqueue_all(&q, group("slow", 20).collect()).await;
    let fast = common::enqueue_all(&q, group("fast", 200).collect()).await;
    let (mstop, mh) = common::maintain(&env, &q);
    let (stop, h) = common::spawn_worker(quick(&env, 8));
    for id in fast.iter().chain(&slow) {
        assert_eq!(
            q.wait(id, Duration::from_secs(10)).await.unwrap(),
            Outcome::Done(Vec::new())
        );
    }
    stop.cancel();
    h.await.unwrap().unwrap();
    mstop.cancel();
    mh.await.unwrap().unwrap();
    let all = common::flow::hand_outs(&q, "dispatched").await;
    let ones: HashMap<String, f64> = slow.iter().map(|i| (i.clone(), 1.0)).collect();
    let at = of(&all, &ones);
    assert_eq!(at.len(), slow.len());
    let reached = common::flow::check_rate(&at, 10.0, 2.0, "slow, dispatched");
    let fast_done = of(&all, &fast.iter().map(|i| (i.clone(), 1.0)).collect());
    let fast_span = (fast_done.last().unwrap().0 - fast_done[0].0) as f64 / 1000.0;
    assert!(
        fast_span < 1.5,
        "the fast group was dispatched over {fast_span:.2} s"
    );
    eprintln!("push: slow group at 10/s burst 2 sustained {reached:.2}/s; 200 fast tasks dispatched over {fast_span:.2} s");
    assert!(reached >= 0.9 * 10.0, "{reached:.2}/s");
}

#[tokio::test]
async fn a_task_costing_more_than_the_burst_goes_when_the_rate_is_idle_without_busy_polling() {
    let env = common::env_with(|c| c.queues.get_mut("q").unwrap().fairness = Fairness::Fair).await;
    let q = env.queue();
    q.configure().await.unwrap();
    // 10/s with a burst of 2; tasks of cost 5 could never fit a burst of 2: each goes when the
    // group's rate is idle and is charged all 5 units (half a second)
    q.change_group("big", baton::ops::group_set::Change::RateIntervalUs(100_000))
        .await
        .unwrap();
    q.change_group("big", baton::ops::group_set::Change::Burst(2))
        .await
        .unwrap();
    let ids = common::enqueue_all(
        &q,
        (0..4)
            .map(|i| TaskSpec::new("k", i.to_string()).group("big").cost(5))
            .collect(),
    )
    .await;
    let (stop, h) = common::spawn_worker(quick(&env, 4));
    for id in &ids {
        assert_eq!(
            q.wait(id, Duration::from_secs(10)).await.unwrap(),
            Outcome::Done(Vec::new())
        );
    }
    stop.cancel();
    h.await.unwrap().unwrap();
    let at: Vec<u64> = common::flow::hand_outs(&q, "claimed")
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(at.len(), 4);
    for w in at.windows(2) {
        assert!(
            w[1] - w[0] >= 499,
            "cost-5 tasks {} ms apart at 10/s: {at:?}",
            w[1] - w[0]
        );
    }
    // parked until the rate is idle again, not looked at every millisecond
    let c = q.counts().await.unwrap();
    assert!(
        c.held_group_rate_total <= 12,
        "{} parks for 4 tasks",
        c.held_group_rate_total
    );
    eprintln!(
        "cost 5 over burst 2 at 10/s: hand-outs {:?} ms apart, {} parks",
        at.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>(),
        c.held_group_rate_total
    );
}
