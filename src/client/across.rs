//! Dependencies across queues. A script touches one queue (on a cluster, another queue is in
//! another slot), so what one queue has to tell another goes through the first queue's outbox
//! (`lua/include/outbox.lua`): the maintenance loops of the processes serving a queue read it
//! (`outbox`) and apply each message on the queue it is for (`deliver`), then acknowledge it.
//! Delivery is at least once and applying is idempotent, so a process killed mid-way, a
//! timeout or a failover only delays a hand-off.
//!
//! A dependency on task `Y` of queue `A` is written `A/Y` in `TaskSpec::after`.

use super::Queue;
use crate::error::{Error, Result};
use crate::keys::QueueKeys;
use crate::ops::{self, outbox::Message};
use crate::task::State;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `"<queue>/<id>"`: the queue and id of a dependency on a task of another queue.
pub(crate) fn remote_ref(dep: &str) -> Option<(&str, &str)> {
    dep.split_once('/')
}

impl Queue {
    /// This queue when `name` is its own, else [`Queue::sibling`].
    pub(crate) fn named(&self, name: &str) -> Result<Queue> {
        if name == self.name() {
            Ok(self.clone())
        } else {
            self.sibling(name)
        }
    }

    /// Queue `name` of the same prefix, on the same connection, with its settings from the
    /// client's configuration (`[queues.<name>]`, else the defaults).
    pub(crate) fn sibling(&self, name: &str) -> Result<Queue> {
        Ok(Queue {
            conn: self.conn.clone(),
            keys: Arc::new(QueueKeys::new(self.keys.prefix(), name)?),
            settings: Arc::new(self.config.queue(name)),
            config: self.config.clone(),
        })
    }

    /// Carry this queue's outbox until it is empty: deliver each message to its queue, then
    /// acknowledge it. Returns how many messages were delivered. A queue that cannot be
    /// reached keeps its messages (they are delivered on a later call); the others go on, and
    /// the first error is returned once the rest is acknowledged.
    pub async fn move_outbox(&self, limit: usize) -> Result<u64> {
        let limit = limit.clamp(1, super::MAX_BATCH);
        let mut acks: Vec<Message> = Vec::new();
        let mut moved = 0;
        let mut failed = None;
        loop {
            let delivered = std::mem::take(&mut acks);
            let msgs = self.run(&ops::outbox::Request { limit, delivered }).await?;
            if msgs.is_empty() || failed.is_some() {
                return failed.map_or(Ok(moved), Err);
            }
            // per target queue: the messages and the three fields `deliver` takes of each
            let mut by_target: BTreeMap<String, (Vec<Message>, Vec<[String; 3]>)> = BTreeMap::new();
            for m in msgs {
                match m.parts().map(|(t, f)| (t.to_string(), f.map(str::to_string))) {
                    Some((target, fields)) => {
                        let e = by_target.entry(target).or_default();
                        e.1.push(fields);
                        e.0.push(m);
                    }
                    None => {
                        tracing::error!(
                            queue = self.name(),
                            message = m.raw,
                            "dropping a malformed outbox message"
                        );
                        acks.push(m);
                    }
                }
            }
            for (target, (list, messages)) in by_target {
                let r = match self.sibling(&target) {
                    Ok(q) => q.run(&ops::deliver::Request { messages }).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(()) => {
                        moved += list.len() as u64;
                        acks.extend(list);
                    }
                    Err(e @ Error::Invalid(_)) => {
                        // a queue name no script writes: nothing can ever deliver it
                        tracing::error!(queue = self.name(), target, error = %e, "dropping outbox messages for an invalid queue");
                        acks.extend(list);
                    }
                    Err(e) => {
                        tracing::warn!(queue = self.name(), target, error = %e, "could not deliver outbox messages; they stay for the next round");
                        failed.get_or_insert(e);
                    }
                }
            }
        }
    }

    /// Refuse dependencies on tasks of other queues that those queues do not know, naming the
    /// first (the enqueue script cannot look into another queue). One round trip per queue.
    pub(crate) async fn check_remote_deps<'a>(&self, deps: impl Iterator<Item = &'a str>) -> Result<()> {
        // "<queue>/#<flow>" is a flow's seal, not a task; "<this queue>/<id>" is local
        let refs: Vec<&str> = deps
            .filter(|d| remote_ref(d).is_some_and(|(q, id)| q != self.name() && !id.starts_with('#')))
            .collect();
        let found = self
            .remote_tasks(refs.iter().copied().enumerate().collect())
            .await?;
        match found.iter().find(|(_, t)| t.is_none()) {
            Some(&(i, _)) => {
                let (q, _) = remote_ref(refs[i]).unwrap_or_default();
                Err(Error::Invalid(format!(
                    "unknown dependency {} (after): no such task in queue {q} (or it finished and is no longer kept); nothing was enqueued",
                    refs[i]
                )))
            }
            None => Ok(()),
        }
    }

    /// Fill in the states of a flow's members on other queues ("<queue>/<id>", which the
    /// flow's own queue cannot see): one round trip per queue.
    pub(crate) async fn remote_member_states(&self, members: &mut [ops::flow_status::Member]) -> Result<()> {
        let refs: Vec<(usize, &str)> = members.iter().map(|m| m.id.as_str()).enumerate().collect();
        for (i, t) in self.remote_tasks(refs).await? {
            members[i].state = t.map(|t| t.state);
        }
        Ok(())
    }

    /// The tasks of other queues among `refs` ((index, "<queue>/<id>"); other entries are
    /// passed over), read on their queues, one round trip per queue: (index, the task if known).
    async fn remote_tasks(
        &self,
        refs: Vec<(usize, &str)>,
    ) -> Result<Vec<(usize, Option<crate::task::Task>)>> {
        let mut per: BTreeMap<&str, Vec<(usize, &str)>> = BTreeMap::new();
        for (i, r) in refs {
            if let Some((q, id)) = remote_ref(r) {
                per.entry(q).or_default().push((i, id));
            }
        }
        let mut out = Vec::new();
        for (q, list) in per {
            let ids: Vec<&str> = list.iter().map(|&(_, id)| id).collect();
            let found = self.sibling(q)?.get_many(&ids).await?;
            out.extend(list.iter().map(|&(i, _)| i).zip(found));
        }
        Ok(out)
    }

    /// The dependencies of a member of a flow of this queue, which may be a task of another
    /// queue ("<queue>/<id>"): read on its queue, their ids named as this queue names them (a
    /// task of this queue by its id, a task of another by "<queue>/<id>").
    pub(crate) async fn member_dependencies(
        &self,
        member: &str,
    ) -> Result<Vec<ops::dependencies::Dependency>> {
        let Some((q, id)) = remote_ref(member) else {
            return self.dependencies(member).await;
        };
        let mut deps = self.sibling(q)?.dependencies(id).await?;
        for d in &mut deps {
            d.id = match remote_ref(&d.id) {
                Some((dq, did)) if dq == self.name() => did.to_string(),
                Some(_) => continue,
                None => format!("{q}/{}", d.id),
            };
        }
        Ok(deps)
    }

    /// Several tasks of this queue in one round trip (a pipeline of `get`), in order.
    pub(crate) async fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<crate::task::Task>>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(super::MAX_BATCH) {
            let calls: Vec<_> = chunk
                .iter()
                .map(|id| {
                    use ops::Op;
                    ops::get::Request { id: (*id).into() }.call(&self.keys)
                })
                .collect();
            for (id, r) in chunk
                .iter()
                .zip(self.conn.eval_pipeline(&calls, self.name()).await?)
            {
                let found = self.decode::<ops::get::Request>(r?)?;
                out.push(
                    found
                        .0
                        .map(|s| s.into_task(id, self.name()))
                        .transpose()
                        .map_err(|e| Error::Protocol(format!("get on queue {}: {e}", self.name())))?,
                );
            }
        }
        Ok(out)
    }

    /// Fill in the results and errors of dependencies on other queues' tasks (the dependencies
    /// script knows how they ended, not what they left): one round trip per queue.
    pub(crate) async fn remote_results(&self, deps: &mut [ops::dependencies::Dependency]) -> Result<()> {
        let ended = |s: State| matches!(s, State::Done | State::Dead | State::Cancelled);
        let refs: Vec<(usize, &str)> = deps
            .iter()
            .enumerate()
            .filter(|(_, d)| ended(d.state))
            .map(|(i, d)| (i, d.id.as_str()))
            .collect();
        for (i, t) in self.remote_tasks(refs).await? {
            if let Some(t) = t {
                deps[i].result = t.result.unwrap_or_default();
                if deps[i].state != State::Done {
                    deps[i].error = t.last_error.map(|f| f.message);
                }
            }
        }
        Ok(())
    }
}
