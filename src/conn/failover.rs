//! Following the primary: Sentinel users ask the sentinels again after a READONLY reply (the
//! old primary was demoted) or a connection failure, reconnect and reload the scripts; Cluster
//! users rebuild the cluster connection (fresh slot map). Calls made while a lookup failed are
//! not sent to a server the sentinels no longer name.

use super::server::check_server;
use super::topology::{manager, probe};
use super::{Conn, Current, Link, Source, Timeouts};
use crate::error::{Error, Result};
use redis::cluster::ClusterClient;
use std::time::{Duration, Instant};

impl Conn {
    /// Ask the sentinels for the primary and connect to it (checked, scripts not loaded yet).
    pub(super) async fn resolve(
        source: &Source,
        cfg_like: &impl Timeouts,
        generation: u64,
    ) -> Result<Current> {
        let Source::Sentinel(sc) = source else {
            unreachable!("resolve is for Sentinel")
        };
        let client = {
            let mut sc = sc.lock().await;
            tokio::time::timeout(cfg_like.connect() * 2, sc.async_get_client())
                .await
                .map_err(|_| Error::Unreachable {
                    addr: "sentinels".into(),
                    detail: format!("no answer from the sentinels within {:?}", cfg_like.connect() * 2),
                })?
                .map_err(|e| Error::Unreachable {
                    addr: "sentinels".into(),
                    detail: format!("no primary from the sentinels: {e}"),
                })?
        };
        let addr = client.get_connection_info().addr().to_string();
        let mut p = probe(&client, cfg_like, &addr).await?;
        check_server(&mut p, &addr).await?;
        let link = Link::One(manager(&client, cfg_like, &addr).await?);
        tracing::info!(primary = %addr, "connected to the primary named by the sentinels");
        Ok(Current {
            link,
            client: Some(client),
            addr,
            generation,
        })
    }

    /// Sentinel: after a READONLY reply or a connection failure, ask the sentinels for the
    /// primary again, reconnect and reload the scripts. Returns whether the connection changed.
    pub(super) async fn failover(&self, seen: u64) -> bool {
        if let Source::Cluster { main, rebuilt, .. } = &self.inner.source {
            return self.rebuild_cluster(main, rebuilt, seen).await;
        }
        if !matches!(self.inner.source, Source::Sentinel(_)) {
            return false;
        }
        let _guard = self.inner.switching.lock().await;
        if self.generation() != seen && !self.is_suspect() {
            return true; // another caller already switched
        }
        let generation = self.generation() + 1;
        match Self::resolve(&self.inner.source, &*self.inner, generation).await {
            Ok(next) => {
                self.inner
                    .suspect
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                let old = self.current().addr;
                *self.inner.current.write().expect("conn lock") = next;
                if let Err(e) = self.load_scripts().await {
                    tracing::warn!(error = %e, "scripts not loaded on the new primary yet");
                }
                tracing::warn!(from = %old, to = %self.current().addr, "primary changed (Sentinel): reconnected");
                true
            }
            Err(e) => {
                self.inner
                    .suspect
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::warn!(error = %e, "primary lookup after a connection failure failed; will retry");
                false
            }
        }
    }

    /// Cluster: after a node failure, build a fresh cluster connection (it reads the slot map
    /// anew from a live node, so a promoted replica is found at once) — at most twice a second.
    pub(super) async fn rebuild_cluster(
        &self,
        main: &ClusterClient,
        rebuilt: &std::sync::Mutex<Option<Instant>>,
        seen: u64,
    ) -> bool {
        let _guard = self.inner.switching.lock().await;
        if self.generation() != seen {
            return true;
        }
        if rebuilt
            .lock()
            .expect("lock")
            .is_some_and(|t| t.elapsed() < Duration::from_millis(500))
        {
            return false;
        }
        *rebuilt.lock().expect("lock") = Some(Instant::now());
        match tokio::time::timeout(self.inner.connect_timeout * 2, main.get_async_connection()).await {
            Ok(Ok(link)) => {
                let mut cur = self.inner.current.write().expect("conn lock");
                cur.link = Link::Cluster(link);
                cur.generation += 1;
                drop(cur);
                tracing::warn!("cluster node failure: reconnected with a fresh slot map");
                true
            }
            _ => false,
        }
    }

    /// Run `f` on the current link; on Sentinel, a READONLY or connection failure looks the
    /// primary up again and runs `f` once more on the new one.
    pub(super) async fn with_link<T, F, Fut>(&self, f: F) -> redis::RedisResult<T>
    where
        F: Fn(Link) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.is_suspect() && !self.failover(self.generation()).await {
            // Never write to an address the sentinels no longer name: it may be a former
            // primary restarted empty, whose writes would be wiped when it rejoins as replica.
            return Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "no reachable primary named by the sentinels yet (failover in progress?)",
            )));
        }
        let (link, generation) = self.link();
        match f(link).await {
            Err(e) if should_switch(&e) && self.failover(generation).await => f(self.link().0).await,
            r => r,
        }
    }
}

/// A reply or failure after which Sentinel users should look the primary up again (and
/// cluster users rebuild their connection).
pub(super) fn should_switch(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        || e.is_timeout()
        || e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
}
