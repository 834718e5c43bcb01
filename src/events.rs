//! Lifecycle events: what the scripts write to each queue's capped `events` stream and publish
//! on its `events` channel (see docs/contract.md, "Events").
//!
//! One event per script call and type lists every task it concerns, so a batch of 1000 claims
//! costs one XADD. [`Queue::events`] reads the stream (resumable from any event id: a listener
//! that saves the last id it handled misses nothing across restarts, as long as the stream cap
//! holds it); [`Event::from_message`] parses the live channel's messages.

use crate::client::Queue;
use crate::error::{Error, Result};
use crate::keys::Role;
use futures_util::stream::{self, Stream};
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use std::time::Duration;

/// One lifecycle event: one script call moved these tasks.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    /// The stream entry id (`<ms>-<n>`): pass it back to resume after this event.
    pub id: String,
    pub queue: String,
    /// `enqueued`, `debounced`, `claimed`, `dispatched`, `completed`, `failed`, `retried`, `reclaimed`,
    /// `dead`, `promoted`, `cancelled`, `requeued`, `purged`, `released`, `progress`.
    pub kind: String,
    /// When it happened, ms by Redis' clock.
    pub at_ms: u64,
    /// The worker concerned (claim, dispatch, complete, fail, release, progress); `None`
    /// otherwise.
    pub worker: Option<String>,
    pub tasks: Vec<EventTask>,
    /// What the event carries besides its tasks, for types that have something: `progress`
    /// carries "percent|message".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A task named by an event, with the run the event concerns: the run's number for
/// claimed/dispatched/completed/failed/retried/reclaimed/dead, runs ended so far otherwise. Run
/// numbers never reset — a dead task requeued goes on counting — so two runs of a task never
/// share one (for a task never requeued, the run is its attempt).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EventTask {
    pub id: String,
    pub run: u32,
}

/// Where [`Queue::events`] starts.
#[derive(Clone, Debug)]
pub enum Since {
    /// Only events added after the call.
    Now,
    /// Every event the stream still holds.
    Beginning,
    /// Events after this stream id (the `id` of the last event handled).
    After(String),
}

impl Event {
    fn new(
        queue: &str,
        id: String,
        kind: &str,
        at: &str,
        worker: &str,
        tasks: &str,
        detail: Option<&str>,
    ) -> Result<Event> {
        let bad = || {
            Error::Protocol(format!(
                "malformed event {id} on queue {queue}: {kind}|{at}|{worker}|{tasks}"
            ))
        };
        let at_ms = at.parse().map_err(|_| bad())?;
        let mut list = Vec::new();
        for item in tasks.split(',').filter(|s| !s.is_empty()) {
            let (tid, run) = item.rsplit_once(':').ok_or_else(bad)?;
            list.push(EventTask {
                id: tid.to_string(),
                run: run.parse().map_err(|_| bad())?,
            });
        }
        Ok(Event {
            id,
            queue: queue.to_string(),
            kind: kind.to_string(),
            at_ms,
            worker: (!worker.is_empty()).then(|| worker.to_string()),
            tasks: list,
            detail: detail.map(str::to_string),
        })
    }

    /// Parse a message of the queue's live `events` channel:
    /// `<stream id>|<type>|<t>|<worker>|<id:run,...>`, then `|<detail>` when the event has one
    /// (task ids never hold `|`, so everything after the fifth `|` is the detail).
    pub fn from_message(queue: &str, msg: &str) -> Result<Event> {
        let mut p = msg.splitn(6, '|');
        let (Some(id), Some(kind), Some(at), Some(worker), Some(tasks)) =
            (p.next(), p.next(), p.next(), p.next(), p.next())
        else {
            return Err(Error::Protocol(format!(
                "malformed event message on queue {queue}: {msg}"
            )));
        };
        Event::new(queue, id.to_string(), kind, at, worker, tasks, p.next())
    }

    /// One stream entry, with its fields `e` (type), `t` (ms), `w` (worker), `x` (tasks) and
    /// `d` (detail, when the event has one).
    fn from_entry(queue: &str, entry: &StreamId) -> Result<Event> {
        let field = |k: &str| entry.get::<String>(k).unwrap_or_default();
        Event::new(
            queue,
            entry.id.clone(),
            &field("e"),
            &field("t"),
            &field("w"),
            &field("x"),
            entry.get::<String>("d").as_deref(),
        )
    }
}

fn entries(queue: &str, ids: &[StreamId]) -> Result<Vec<Event>> {
    ids.iter().map(|e| Event::from_entry(queue, e)).collect()
}

/// Pause before reconnecting a blocking read that lost its connection.
const RECONNECT: Duration = Duration::from_millis(200);

/// How long one blocking read waits before it is sent again.
const BLOCK: Duration = Duration::from_secs(5);

impl Queue {
    /// The last `n` events still in the stream, oldest first.
    pub async fn recent_events(&self, n: usize) -> Result<Vec<Event>> {
        let v: StreamRangeReply = self
            .conn()
            .query(
                redis::cmd("XREVRANGE")
                    .arg(self.keys().key(Role::Events))
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(n),
            )
            .await?;
        let mut list = entries(self.name(), &v.ids)?;
        list.reverse();
        Ok(list)
    }

    /// Events after `from`, oldest first: at most `n`, without waiting.
    pub async fn events_after(&self, after: &str, n: usize) -> Result<Vec<Event>> {
        let v: StreamRangeReply = self
            .conn()
            .query(
                redis::cmd("XRANGE")
                    .arg(self.keys().key(Role::Events))
                    .arg(format!("({after}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(n),
            )
            .await?;
        entries(self.name(), &v.ids)
    }

    /// An endless stream of the queue's events from `from`, read with blocking XREAD on a
    /// connection of its own (never the shared one). It ends only with an error: Redis gone
    /// beyond its reconnect attempts. Save each event's `id` to resume with [`Since::After`].
    pub async fn events(&self, from: Since) -> Result<impl Stream<Item = Result<Event>> + Send + 'static> {
        let con = self.conn().blocking(BLOCK).await?;
        let key = self.keys().key(Role::Events).to_string();
        let queue = self.name().to_string();
        let last = match from {
            Since::Beginning => "0-0".to_string(),
            Since::After(id) => id,
            Since::Now => {
                // Resolve "$" now, so events added before the first read are not skipped.
                let v: StreamRangeReply = con
                    .query(
                        redis::cmd("XREVRANGE")
                            .arg(&key)
                            .arg("+")
                            .arg("-")
                            .arg("COUNT")
                            .arg(1),
                    )
                    .await
                    .map_err(|e| self.conn().err(e, &queue))?;
                v.ids
                    .first()
                    .map(|e| e.id.clone())
                    .unwrap_or_else(|| "0-0".to_string())
            }
        };
        let conn = self.conn().clone();
        let state = (
            con,
            key,
            queue,
            last,
            std::collections::VecDeque::<Event>::new(),
            false,
        );
        Ok(stream::unfold(
            state,
            move |(mut con, key, queue, mut last, mut buf, done)| {
                let conn = conn.clone();
                async move {
                    if done {
                        return None;
                    }
                    loop {
                        if let Some(e) = buf.pop_front() {
                            return Some((Ok(e), (con, key, queue, last, buf, false)));
                        }
                        let mut xread = redis::cmd("XREAD");
                        xread
                            .arg("COUNT")
                            .arg(500)
                            .arg("BLOCK")
                            .arg(BLOCK.as_millis() as u64);
                        xread.arg("STREAMS").arg(&key).arg(&last);
                        // nil when the block timed out with nothing new
                        let read: redis::RedisResult<Option<StreamReadReply>> = con.query(&xread).await;
                        let reply = match read {
                            Ok(r) => r,
                            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                                // Reconnect once; a second failure ends the stream with the error.
                                tokio::time::sleep(RECONNECT).await;
                                match conn.blocking(BLOCK).await {
                                    Ok(c) => {
                                        con = c;
                                        continue;
                                    }
                                    Err(e) => return Some((Err(e), (con, key, queue, last, buf, true))),
                                }
                            }
                            Err(e) => {
                                let e = conn.err(e, &queue);
                                return Some((Err(e), (con, key, queue, last, buf, true)));
                            }
                        };
                        let ids = reply
                            .and_then(|r| r.keys.into_iter().next())
                            .map(|k| k.ids)
                            .unwrap_or_default();
                        let list = match entries(&queue, &ids) {
                            Ok(l) => l,
                            Err(e) => return Some((Err(e), (con, key, queue, last, buf, true))),
                        };
                        if let Some(e) = list.last() {
                            last = e.id.clone();
                        }
                        buf.extend(list);
                    }
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_channel_messages() {
        let e = Event::from_message("q", "1700-0|completed|1700|w1|a:1,b:2").unwrap();
        assert_eq!(e.kind, "completed");
        assert_eq!(e.worker.as_deref(), Some("w1"));
        assert_eq!(e.at_ms, 1700);
        assert_eq!(
            e.tasks,
            vec![
                EventTask {
                    id: "a".into(),
                    run: 1
                },
                EventTask {
                    id: "b".into(),
                    run: 2
                }
            ]
        );
        let e = Event::from_message("q", "1-0|enqueued|5||x:y:0").unwrap();
        assert_eq!(e.worker, None);
        assert_eq!(e.tasks[0].id, "x:y");
        assert!(Event::from_message("q", "1-0|enqueued|5").is_err());
        assert!(Event::from_message("q", "1-0|enqueued|t|w|a:1").is_err());
    }
}
