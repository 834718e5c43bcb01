//! Running the scripts: SCRIPT LOAD at start (on every primary of a cluster), EVALSHA per
//! call, and the NOSCRIPT resend — NOSCRIPT means the script did not run, so resending is safe,
//! even for calls inside a pipeline. `[redis] wait_replicas` makes enqueue and complete
//! acknowledgements wait for replicas.

use super::failover::should_switch;
use super::{Call, Conn, Link};
use crate::error::{Error, Result};
use crate::scripts::{ScriptName, SCHEMA_VERSION};
use redis::Value;
use std::time::Instant;

impl Conn {
    /// SCRIPT LOAD every script (on every primary of a cluster); check Redis computed the SHA
    /// we call them by.
    pub async fn load_scripts(&self) -> Result<()> {
        let (link, _) = self.link();
        for name in ScriptName::ALL {
            let sha: String = link
                .query(redis::cmd("SCRIPT").arg("LOAD").arg(&name.script().body))
                .await
                .map_err(|e| self.err(e, ""))?;
            if sha != name.script().sha {
                return Err(Error::Protocol(format!(
                    "SCRIPT LOAD of {} returned sha {sha}, expected {}",
                    name.file_stem(),
                    name.script().sha
                )));
            }
        }
        tracing::debug!(addr = %self.addr(), schema = SCHEMA_VERSION, "scripts loaded");
        Ok(())
    }

    /// Run one script call; on NOSCRIPT reload the scripts and send it again.
    pub async fn eval(&self, call: &Call, queue: &str) -> Result<Value> {
        let start = Instant::now();
        let r = self.eval_inner(call, queue).await;
        crate::metrics::script_call(
            call.script.file_stem(),
            start.elapsed().as_secs_f64(),
            r.as_ref().err().map(Error::kind_name),
        );
        r
    }

    pub(super) async fn eval_inner(&self, call: &Call, queue: &str) -> Result<Value> {
        call.verify();
        // the link that ran the call comes back with its reply: WAIT must follow the write on
        // that very connection (after a switch, WAIT on the new one would count none of it)
        let run = || self.with_link(|l| async move { Ok((l.query::<Value>(&call.cmd).await?, l)) });
        let (v, link) = match run().await {
            Ok(r) => r,
            Err(e) if is_noscript(&e) => {
                self.load_scripts().await?;
                run().await.map_err(|e| self.err(e, queue))?
            }
            Err(e) => return Err(self.err(e, queue)),
        };
        if durable(call.script) {
            self.wait_replicas(&link, queue).await?;
        }
        Ok(v)
    }

    /// `[redis] wait_replicas`: block until that many replicas acknowledged the writes sent so
    /// far on `link` (the connection that ran them), or fail naming the setting.
    pub(super) async fn wait_replicas(&self, link: &Link, queue: &str) -> Result<()> {
        let Some((n, timeout)) = self.inner.wait else {
            return Ok(());
        };
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(n).arg(timeout.as_millis() as u64);
        let got: i64 = tokio::time::timeout(timeout + self.inner.response_timeout, link.query(&cmd))
            .await
            .map_err(|_| Error::Timeout {
                addr: self.addr(),
                timeout: timeout + self.inner.response_timeout,
            })?
            .map_err(|e| self.err(e, queue))?;
        if got < n as i64 {
            return Err(Error::NotDurable {
                addr: self.addr(),
                detail: format!(
                    "only {got} of the {n} replicas required by redis.wait_replicas acknowledged the write within redis.wait_timeout ({timeout:?}); it ran on the primary and may be lost if the primary fails now — check the replicas, or lower wait_replicas"
                ),
            });
        }
        Ok(())
    }

    /// Run several script calls in one round trip. Each call gets its own result; calls refused
    /// with NOSCRIPT are resent (alone) after reloading the scripts.
    pub async fn eval_pipeline(&self, calls: &[Call], queue: &str) -> Result<Vec<Result<Value>>> {
        let start = Instant::now();
        let r = self.eval_pipeline_inner(calls, queue).await;
        let secs = start.elapsed().as_secs_f64();
        let (r, links) = match r {
            Ok((results, links)) => (Ok(results), links),
            Err(e) => (Err(e), Vec::new()),
        };
        for (i, call) in calls.iter().enumerate() {
            let err = match &r {
                Err(e) => Some(e.kind_name()),
                Ok(rs) => rs[i].as_ref().err().map(Error::kind_name),
            };
            crate::metrics::script_call(call.script.file_stem(), secs, err);
        }
        for link in &links {
            self.wait_replicas(link, queue).await?;
        }
        r
    }

    pub(super) async fn eval_pipeline_inner(
        &self,
        calls: &[Call],
        queue: &str,
    ) -> Result<(Vec<Result<Value>>, Vec<Link>)> {
        calls.iter().for_each(Call::verify);
        let mut results: Vec<Option<Result<Value>>> = (0..calls.len()).map(|_| None).collect();
        // each link (connection) on which a durable call ran: WAIT goes to each of them
        let mut durable_links: Vec<Link> = Vec::new();
        let mut todo: Vec<usize> = (0..calls.len()).collect();
        for round in 0..2 {
            // After a first round, a failure must not hide the results already in: the calls
            // still to send get the error, the others keep their answers.
            let sent = async {
                if round > 0 {
                    self.load_scripts().await?;
                }
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for &i in &todo {
                    pipe.add_command(calls[i].cmd.clone());
                }
                let pipe = &pipe;
                self.with_link(|l| async move { Ok((l.pipe::<Vec<Value>>(pipe).await?, l)) })
                    .await
                    .map_err(|e| self.err(e, queue))
            };
            let (values, link) = match (sent.await, round) {
                (Ok(v), _) => v,
                (Err(e), 0) => return Err(e),
                (Err(e), _) => {
                    let detail = e.to_string();
                    for &i in &todo {
                        results[i] = Some(Err(Error::Unreachable {
                            addr: self.addr(),
                            detail: detail.clone(),
                        }));
                    }
                    break;
                }
            };
            let mut again = Vec::new();
            let mut wrote = false;
            for (&i, v) in todo.iter().zip(values) {
                match v {
                    Value::ServerError(se) => {
                        let e: redis::RedisError = se.into();
                        if round == 0 && is_noscript(&e) {
                            again.push(i);
                        } else if round == 0 && should_switch(&e) && self.failover(self.generation()).await {
                            again.push(i); // READONLY: it did not run; send it to the new primary
                        } else {
                            results[i] = Some(Err(self.err(e, queue)));
                        }
                    }
                    v => {
                        wrote |= durable(calls[i].script);
                        results[i] = Some(Ok(v));
                    }
                }
            }
            if wrote {
                durable_links.push(link);
            }
            if again.is_empty() {
                break;
            }
            todo = again;
        }
        Ok((
            results
                .into_iter()
                .map(|r| r.expect("every call answered"))
                .collect(),
            durable_links,
        ))
    }
}

/// Scripts whose acknowledgement `[redis] wait_replicas` makes durable.
pub(super) fn durable(script: ScriptName) -> bool {
    // deliver: a hand-off between queues (dependencies across queues) is acknowledged in the
    // sending queue once delivered, so a delivery lost in a failover would be lost for good
    matches!(
        script,
        ScriptName::Enqueue | ScriptName::Complete | ScriptName::Deliver
    )
}

pub(super) fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}
