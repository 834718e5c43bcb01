//! A pub/sub subscription that survives lost connections.
//!
//! Wake-ups (workers, push dispatch) and finish notifications (result waiters) all listen on a
//! dedicated pub/sub connection — never the shared one, where a blocking read would stall every
//! script call. When that connection drops, the subscription reconnects with the shared
//! backoff and reports [`Signal::Subscribed`]: messages published meanwhile are lost, so the
//! listener must re-check whatever it was waiting for.

use crate::conn::Conn;
use crate::error::Result;
use crate::retry::Backoff;
use futures_util::StreamExt;
use redis::aio::PubSubStream;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a subscription yields.
pub(crate) enum Signal {
    /// A message on one of the channels.
    Message(redis::Msg),
    /// (Re)subscribed after a lost connection: anything may have happened meanwhile.
    Subscribed,
}

/// A resubscribing subscription to a fixed set of channels.
pub(crate) struct Subscription {
    conn: Conn,
    channels: Vec<String>,
    queue: String,
    stream: Option<PubSubStream>,
    backoff: Backoff,
}

impl Subscription {
    /// Not connected yet: the first [`Subscription::next`] connects (and yields `Subscribed`).
    pub(crate) fn new(conn: Conn, channels: &[String], queue: &str) -> Subscription {
        Subscription {
            conn,
            channels: channels.to_vec(),
            queue: queue.to_string(),
            stream: None,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
        }
    }

    /// Subscribed now, or the error: callers that must not miss a message subscribe before
    /// they check the state they wait for.
    pub(crate) async fn connect(conn: Conn, channels: &[String], queue: &str) -> Result<Subscription> {
        let mut s = Subscription::new(conn, channels, queue);
        s.stream = Some(s.open().await?);
        Ok(s)
    }

    async fn open(&self) -> Result<PubSubStream> {
        let mut pubsub = self.conn.pubsub().await?;
        pubsub
            .subscribe(&self.channels)
            .await
            .map_err(|e| self.conn.err(e, &self.queue))?;
        Ok(pubsub.into_on_message())
    }

    /// The next message, or `Subscribed` after a (re)connection; `None` once `stop` fired.
    pub(crate) async fn next(&mut self, stop: &CancellationToken) -> Option<Signal> {
        loop {
            if let Some(stream) = &mut self.stream {
                tokio::select! {
                    m = stream.next() => match m {
                        Some(m) => return Some(Signal::Message(m)),
                        None => {
                            tracing::warn!(queue = %self.queue, "pub/sub connection lost; resubscribing");
                            self.stream = None;
                        }
                    },
                    _ = stop.cancelled() => return None,
                }
            }
            match tokio::select! {
                r = self.open() => r,
                _ = stop.cancelled() => return None,
            } {
                Ok(stream) => {
                    self.backoff.reset();
                    self.stream = Some(stream);
                    return Some(Signal::Subscribed);
                }
                Err(e) => {
                    tracing::debug!(queue = %self.queue, error = %e, "pub/sub subscribe failed; retrying");
                    if !self.backoff.wait(stop).await {
                        return None;
                    }
                }
            }
        }
    }
}
