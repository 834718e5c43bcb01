//! Higher priority is claimed first; within a priority, first in, first out.
mod common;
use baton::TaskSpec;

#[tokio::test]
async fn claims_by_priority_then_fifo() {
    let env = common::env().await;
    let q = env.queue();
    let mut expected = Vec::new();
    // interleave priorities so FIFO order and priority order disagree with enqueue order
    let plan = [
        (0, "a"),
        (5, "b"),
        (0, "c"),
        (-3, "d"),
        (5, "e"),
        (1000, "f"),
        (-1000, "g"),
        (0, "h"),
    ];
    for (p, name) in plan {
        q.enqueue(TaskSpec::new("k", name).priority(p).id(name))
            .await
            .unwrap();
    }
    for name in ["f", "b", "e", "a", "c", "h", "d", "g"] {
        expected.push(name.to_string());
    }
    let mut got = Vec::new();
    // claim in small batches to check order across calls too
    loop {
        let c = q.claim("w1", 3).await.unwrap();
        if c.is_empty() {
            break;
        }
        got.extend(c.into_iter().map(|t| t.id));
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn fifo_holds_for_a_large_batch() {
    let env = common::env().await;
    let q = env.queue();
    let specs: Vec<TaskSpec> = (0..500)
        .map(|i| TaskSpec::new("k", format!("{i}")).id(format!("t{i:04}")))
        .collect();
    q.enqueue_batch(specs).await.unwrap();
    let c = q.claim("w1", 1000).await.unwrap();
    let ids: Vec<String> = c.iter().map(|t| t.id.clone()).collect();
    let want: Vec<String> = (0..500).map(|i| format!("t{i:04}")).collect();
    assert_eq!(ids, want);
    for t in &c {
        assert_eq!(t.attempt, 1);
        assert_eq!(t.record.kind, "k");
    }
}
