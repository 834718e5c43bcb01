//! Lifecycle events: every transition script writes one event per call and type to the queue's
//! capped stream and publishes it on the queue's channel; the stream can be resumed after a
//! subscriber restart without missing anything.
mod common;
use baton::Since;
use baton::{Event, FailReport, TaskSpec};
use futures_util::StreamExt;
use std::time::Duration;

/// (kind, worker, [(id, attempt)]) of events after `after` (all when None).
async fn kinds(q: &baton::Queue, after: Option<&str>) -> Vec<Event> {
    q.events_after(after.unwrap_or("0-0"), 10_000).await.unwrap()
}

fn report(c: &baton::Claimed, error: &str, retry: bool) -> FailReport {
    FailReport {
        id: c.id.clone(),
        token: c.token.clone(),
        error: error.to_string(),
        retry,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

type Summary = (String, Option<String>, Vec<(String, u32)>);

fn summary(events: &[Event]) -> Vec<Summary> {
    events
        .iter()
        .map(|e| {
            (
                e.kind.clone(),
                e.worker.clone(),
                e.tasks.iter().map(|t| (t.id.clone(), t.run)).collect(),
            )
        })
        .collect()
}

fn ev(kind: &str, worker: Option<&str>, tasks: &[(&str, u32)]) -> Summary {
    (
        kind.to_string(),
        worker.map(str::to_string),
        tasks.iter().map(|(i, a)| (i.to_string(), *a)).collect(),
    )
}

#[tokio::test]
async fn a_task_life_emits_events_in_order_with_ids_workers_and_attempts() {
    let env = common::env().await;
    let q = env.queue();
    // Live listener on the channel, subscribed before anything happens.
    let mut ps = q.conn().pubsub().await.unwrap();
    ps.subscribe("baton:{q}:events").await.unwrap();
    let mut live = ps.into_on_message();

    let before = now_ms();
    let id = q.enqueue(TaskSpec::new("k", "p").id("t1")).await.unwrap().id;
    let c = q.claim("w1", 10).await.unwrap();
    q.fail("w1", &report(&c[0], "boom", true)).await.unwrap();
    // backoff 50 ms (fixed): delayed, then promoted
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(q.promote(100).await.unwrap().promoted, 1);
    let c = q.claim("w2", 10).await.unwrap();
    assert_eq!(c[0].attempt, 2);
    q.complete("w2", &c[0], b"ok").await.unwrap();

    let got = kinds(&q, None).await;
    assert_eq!(
        summary(&got),
        vec![
            ev("enqueued", None, &[(&id, 0)]),
            ev("claimed", Some("w1"), &[(&id, 1)]),
            ev("failed", Some("w1"), &[(&id, 1)]),
            ev("retried", Some("w1"), &[(&id, 1)]),
            ev("promoted", None, &[(&id, 1)]),
            ev("claimed", Some("w2"), &[(&id, 2)]),
            ev("completed", Some("w2"), &[(&id, 2)]),
        ]
    );
    let after = now_ms();
    for w in got.windows(2) {
        assert!(w[0].at_ms <= w[1].at_ms, "timestamps in order");
        assert!(
            w[0].id < w[1].id || w[0].id.len() < w[1].id.len(),
            "stream ids increase"
        );
    }
    for e in &got {
        assert_eq!(e.queue, "q");
        assert!(
            e.at_ms + 1000 >= before && e.at_ms <= after + 1000,
            "Redis-time stamps near now"
        );
    }

    // The channel carried the same events, with the stream ids.
    let mut heard = Vec::new();
    while heard.len() < got.len() {
        let msg = tokio::time::timeout(Duration::from_secs(2), live.next())
            .await
            .expect("live event")
            .unwrap();
        let body: String = msg.get_payload().unwrap();
        heard.push(Event::from_message("q", &body).unwrap());
    }
    assert_eq!(heard, got);
}

#[tokio::test]
async fn expiry_dead_letter_cancel_requeue_and_purge_emit_their_events() {
    let env = common::env().await;
    let q = env.queue(); // max_attempts 3, lease 1 s
    let a = q
        .enqueue(TaskSpec::new("k", "").id("a").max_attempts(1))
        .await
        .unwrap()
        .id;
    let b = q
        .enqueue(TaskSpec::new("k", "").id("b").delay(Duration::from_secs(60)))
        .await
        .unwrap()
        .id;
    let first = q.claim("w1", 1).await.unwrap();
    // the run started, so its expiry is charged (max_attempts 1: dead)
    q.start("w1", first[0].token.parse().unwrap()).await.unwrap();
    let mark = kinds(&q, None).await.last().unwrap().id.clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    q.reclaim(100).await.unwrap();
    q.cancel(&[&b]).await.unwrap();
    assert_eq!(q.requeue_dead(&[&a]).await.unwrap(), 1);
    let c = q.claim("w1", 1).await.unwrap();
    q.fail("w1", &report(&c[0], "bad input", false)).await.unwrap();
    assert_eq!(q.purge_dead(&[&a]).await.unwrap(), 1);
    assert_eq!(
        summary(&kinds(&q, Some(&mark)).await),
        vec![
            ev("reclaimed", None, &[(&a, 1)]),
            ev("dead", None, &[(&a, 1)]),
            ev("cancelled", None, &[(&b, 0)]),
            // runs go on counting after a requeue: the second run is run 2, not a second "1"
            ev("requeued", None, &[(&a, 1)]),
            ev("claimed", Some("w1"), &[(&a, 2)]),
            ev("failed", Some("w1"), &[(&a, 2)]),
            ev("dead", Some("w1"), &[(&a, 2)]),
            ev("purged", None, &[(&a, 2)]),
        ]
    );
}

#[tokio::test]
async fn a_batch_is_one_event_and_events_max_len_0_turns_events_off() {
    let env = common::env().await;
    let q = env.queue();
    let ids: Vec<String> = q
        .enqueue_batch(
            (0..300)
                .map(|i| TaskSpec::new("k", "").id(format!("t{i}")))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let claimed = q.claim("w", 300).await.unwrap();
    let got = kinds(&q, None).await;
    assert_eq!(got.len(), 2, "one event per call");
    assert_eq!(got[0].tasks.len(), 300);
    assert_eq!(got[1].tasks.len(), claimed.len());
    assert_eq!(got[0].tasks.iter().map(|t| t.id.clone()).collect::<Vec<_>>(), ids);

    let mut settings = q.settings().clone();
    settings.events_max_len = 0;
    let off = q.with_settings(settings);
    off.configure().await.unwrap();
    off.enqueue(TaskSpec::new("k", "")).await.unwrap();
    let mut raw = env.raw().await;
    let exists: bool = redis::cmd("EXISTS")
        .arg("baton:{q}:events")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(!exists, "no stream while events are off");
    assert_eq!(
        off.counts().await.unwrap().enqueued_total,
        301,
        "totals count with events off too"
    );
}

#[tokio::test]
async fn the_stream_is_capped_by_events_max_len() {
    let env = common::env().await;
    let q = env.queue();
    let mut settings = q.settings().clone();
    settings.events_max_len = 100;
    let q = q.with_settings(settings);
    q.configure().await.unwrap();
    for i in 0..1000 {
        q.enqueue(TaskSpec::new("k", "").id(format!("t{i}")))
            .await
            .unwrap();
    }
    let mut raw = env.raw().await;
    let len: u64 = redis::cmd("XLEN")
        .arg("baton:{q}:events")
        .query_async(&mut raw)
        .await
        .unwrap();
    // MAXLEN ~ trims whole stream nodes (100 entries each by default): at most one node over.
    assert!((100..=200).contains(&len), "stream length {len}");
    let last = q.recent_events(1).await.unwrap();
    assert_eq!(last[0].tasks[0].id, "t999", "the newest events are kept");
}

#[tokio::test]
async fn a_restarted_subscriber_resumes_after_its_last_event_and_misses_none() {
    let env = common::env().await;
    let q = env.queue();
    let producer = {
        let q = q.clone();
        tokio::spawn(async move {
            for i in 0..400 {
                q.enqueue(TaskSpec::new("k", "").id(format!("t{i}")))
                    .await
                    .unwrap();
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    let mut seen: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    // Three subscriber lives: each reads some events, then "crashes" (drops its stream) and
    // sleeps while the producer goes on; the next resumes after the last id handled.
    for life in 0..3 {
        let since = match &last {
            None => Since::Beginning,
            Some(id) => Since::After(id.clone()),
        };
        let stream = q.events(since).await.unwrap();
        let mut stream = Box::pin(stream);
        let want = if life < 2 { 100 } else { usize::MAX };
        let mut n = 0;
        while n < want {
            let next = tokio::time::timeout(Duration::from_secs(3), stream.next()).await;
            let Ok(Some(e)) = next else { break };
            let e = e.unwrap();
            seen.extend(e.tasks.iter().map(|t| t.id.clone()));
            last = Some(e.id.clone());
            n += 1;
            if seen.len() == 400 {
                break;
            }
        }
        drop(stream);
        if life < 2 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    producer.await.unwrap();
    let want: Vec<String> = (0..400).map(|i| format!("t{i}")).collect();
    assert_eq!(seen, want, "every event once, in order, across restarts");
}
