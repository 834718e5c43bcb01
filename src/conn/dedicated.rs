//! Dedicated connections: blocking reads (XREAD BLOCK) and pub/sub each get their own, so no
//! blocking command ever stalls the shared multiplexed connection that carries script calls.

use super::{Conn, Link, Source};
use crate::error::{Error, Result};
use redis::aio::PubSub;
use std::time::Duration;

/// Longest blocking read a dedicated connection is made for.
pub(super) const MAX_BLOCK: Duration = Duration::from_secs(10);

impl Conn {
    /// A dedicated connection for blocking reads that wait up to `block` (≤ 10 s; XREAD
    /// BLOCK): no script call ever waits behind it.
    pub async fn blocking(&self, block: Duration) -> Result<Link> {
        let block = block.min(MAX_BLOCK);
        match &self.inner.source {
            Source::Cluster { blocking, .. } => blocking
                .get_async_connection()
                .await
                .map(Link::Cluster)
                .map_err(|e| self.err(e, "")),
            _ => {
                let cfg = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.inner.connect_timeout))
                    .set_response_timeout(Some(block + self.inner.response_timeout));
                let client = self.current().client.expect("single-node client");
                client
                    .get_multiplexed_async_connection_with_config(&cfg)
                    .await
                    .map(Link::Plain)
                    .map_err(|e| self.err(e, ""))
            }
        }
    }

    /// A dedicated pub/sub connection (never shared with script calls). On a cluster, any node
    /// will do: PUBLISH (also from scripts) reaches every node.
    pub async fn pubsub(&self) -> Result<PubSub> {
        let clients: Vec<redis::Client> = match &self.inner.source {
            Source::Cluster { seeds, .. } => seeds.clone(),
            _ => vec![self.current().client.expect("single-node client")],
        };
        let mut last = None;
        for client in clients {
            let addr = client.get_connection_info().addr().to_string();
            match tokio::time::timeout(self.inner.connect_timeout, client.get_async_pubsub()).await {
                Ok(Ok(p)) => return Ok(p),
                Ok(Err(e)) => last = Some(Error::from_redis(e, &addr, "", self.inner.response_timeout)),
                Err(_) => {
                    last = Some(Error::Unreachable {
                        addr,
                        detail: format!("no pub/sub connection within {:?}", self.inner.connect_timeout),
                    })
                }
            }
        }
        Err(last.expect("at least one node"))
    }
}
