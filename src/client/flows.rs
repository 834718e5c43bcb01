//! Flows and batches: a whole DAG of tasks submitted at once ([`Flow`], `Queue::flow`), or a
//! set of tasks added over time and sealed ([`Batch`], `Queue::open_batch`), both with
//! callback tasks (on_success, on_complete, on_death) enqueued exactly once by the scripts.
//! The bookkeeping and the rules are in `lua/include/flows.lua`; see docs/workflows.md.

use super::{new_id, Queue, MAX_BATCH};
use crate::error::{Error, Result};
use crate::ops::{self, flow_open::CallbackEvent, flow_seal::Sealed, flow_status::FlowStatus};
use crate::task::TaskSpec;
use std::collections::HashMap;

/// The most tasks one flow may have (the bound of `flow_open`'s `size` in the manifest).
pub const FLOW_MAX_TASKS: usize = ops::bounds::flow_open::SIZE.max as usize;

/// Callback tasks of a flow or batch: each enqueued exactly once, on this queue.
#[derive(Clone, Debug, Default)]
pub struct Callbacks {
    pub(crate) list: Vec<(CallbackEvent, TaskSpec)>,
}

impl Callbacks {
    fn set(&mut self, event: CallbackEvent, spec: TaskSpec) {
        self.list.retain(|(e, _)| *e != event);
        self.list.push((event, spec));
    }
}

/// A DAG of tasks submitted at once: all are stored or none, nothing runs before the whole
/// flow is stored, and each task runs after the tasks it names in `after` (by their names in
/// the flow).
#[derive(Clone, Debug, Default)]
pub struct Flow {
    id: Option<String>,
    nodes: Vec<(String, TaskSpec)>,
    /// The queue of each node that is not on the flow's own queue, by name.
    queues: HashMap<String, String>,
    callbacks: Callbacks,
}

impl Flow {
    pub fn new() -> Flow {
        Flow::default()
    }

    /// The flow's id (default: a new ULID). Submitting again with the same id is idempotent.
    pub fn id(mut self, id: impl Into<String>) -> Flow {
        self.id = Some(id.into());
        self
    }

    /// A task named `name` (unique in the flow); `spec.after(...)` names other tasks of the flow,
    /// `spec.on_failure(...)` says what their failure does to it.
    pub fn task(mut self, name: impl Into<String>, spec: TaskSpec) -> Flow {
        self.nodes.push((name.into(), spec));
        self
    }

    /// A task named `name` on another queue (of the same prefix): the flow's bookkeeping
    /// stays on the queue it is submitted to, and the hand-offs to and from this task go
    /// through the queues' outboxes (docs/workflows.md, "Across queues"). Its `after` names
    /// tasks of the flow, wherever they run.
    pub fn task_in(mut self, queue: impl Into<String>, name: impl Into<String>, spec: TaskSpec) -> Flow {
        let name = name.into();
        self.queues.insert(name.clone(), queue.into());
        self.nodes.push((name, spec));
        self
    }

    /// Enqueued once every task is done.
    pub fn on_success(mut self, spec: TaskSpec) -> Flow {
        self.callbacks.set(CallbackEvent::OnSuccess, spec);
        self
    }

    /// Enqueued once every task has finished, whatever the outcome.
    pub fn on_complete(mut self, spec: TaskSpec) -> Flow {
        self.callbacks.set(CallbackEvent::OnComplete, spec);
        self
    }

    /// Enqueued at the first task that ends dead.
    pub fn on_death(mut self, spec: TaskSpec) -> Flow {
        self.callbacks.set(CallbackEvent::OnDeath, spec);
        self
    }

    /// How many tasks the flow has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Check the flow without writing anything: names valid and unique, every `after` naming a
    /// task of the flow, no cycle, at most [`FLOW_MAX_TASKS`] tasks. Returns the order the tasks
    /// are stored in (each after the tasks it depends on; otherwise the order given).
    pub fn check(&self) -> Result<Vec<usize>> {
        let n = self.nodes.len();
        if n == 0 {
            return Err(Error::Invalid("a flow needs at least one task".into()));
        }
        if n > FLOW_MAX_TASKS {
            return Err(Error::Invalid(format!(
                "a flow takes at most {FLOW_MAX_TASKS} tasks, got {n}: split it into several flows"
            )));
        }
        if let Some(id) = &self.id {
            crate::keys::validate_name(id, "flow id")?;
            if id.len() > 100 {
                return Err(Error::Invalid(format!(
                    "a flow id is at most 100 characters, got {}",
                    id.len()
                )));
            }
        }
        for q in self.queues.values() {
            crate::keys::validate_name(q, "flow task queue")?;
        }
        let mut index = HashMap::with_capacity(n);
        for (i, (name, spec)) in self.nodes.iter().enumerate() {
            crate::keys::validate_name(name, "flow task name")?;
            if index.insert(name.as_str(), i).is_some() {
                return Err(Error::Invalid(format!(
                    "the flow names two tasks {name}: names must be unique"
                )));
            }
            if !spec.delay.is_zero() || spec.debounce.is_some() {
                return Err(Error::Invalid(format!(
                    "flow task {name} has a delay or debounce: tasks of a flow run when their dependencies (or the flow's submission) are done"
                )));
            }
        }
        // Kahn's algorithm, taking ready tasks in the order given
        let mut indeg = vec![0usize; n];
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, (name, spec)) in self.nodes.iter().enumerate() {
            for dep in &spec.after {
                let Some(&d) = index.get(dep.as_str()) else {
                    return Err(Error::Invalid(format!(
                        "flow task {name}: after names {dep}, which is not a task of the flow"
                    )));
                };
                if d == i {
                    return Err(Error::Invalid(format!("flow task {name} depends on itself")));
                }
                indeg[i] += 1;
                out[d].push(i);
            }
        }
        let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &j in &out[i] {
                indeg[j] -= 1;
                if indeg[j] == 0 {
                    ready.insert(j);
                }
            }
        }
        if order.len() < n {
            return Err(Error::Invalid(format!(
                "the flow has a cycle: {} (a task cannot wait for itself, even through others)",
                self.cycle(&index, &indeg)
            )));
        }
        Ok(order)
    }

    /// One cycle among the tasks left with dependencies, as "a -> b -> a".
    fn cycle(&self, index: &HashMap<&str, usize>, left: &[usize]) -> String {
        let start = left.iter().position(|&d| d > 0).unwrap_or(0);
        let mut seen = HashMap::new();
        let mut path = Vec::new();
        let mut at = start;
        loop {
            if let Some(&k) = seen.get(&at) {
                let names: Vec<&str> = path[k..]
                    .iter()
                    .chain(std::iter::once(&at))
                    .map(|&i: &usize| self.nodes[i].0.as_str())
                    .collect();
                return names.join(" -> ");
            }
            seen.insert(at, path.len());
            path.push(at);
            // follow a dependency that is itself still blocked (one exists on every cycle)
            let next = self.nodes[at]
                .1
                .after
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .find(|&d| left[d] > 0);
            match next {
                Some(d) => at = d,
                None => return self.nodes[start].0.clone(),
            }
        }
    }
}

/// What a flow submission stored.
#[derive(Clone, Debug)]
pub struct SubmittedFlow {
    pub id: String,
    /// Each task's name and id, in the order given.
    pub tasks: Vec<(String, String)>,
    /// False: a flow with this id existed already (a repeated submission).
    pub created: bool,
}

/// A set of tasks added over time (by the producer, and by its own running tasks through
/// `TaskContext::spawn`) with callbacks that fire once the batch is sealed and its tasks have
/// finished (on_death: at the first death).
#[derive(Clone, Debug, Default)]
pub struct Batch {
    id: Option<String>,
    callbacks: Callbacks,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }
    /// The batch's id (default: a new ULID); opening again with the same id is a no-op.
    pub fn id(mut self, id: impl Into<String>) -> Batch {
        self.id = Some(id.into());
        self
    }
    /// Enqueued once the batch is sealed and every task is done.
    pub fn on_success(mut self, spec: TaskSpec) -> Batch {
        self.callbacks.set(CallbackEvent::OnSuccess, spec);
        self
    }
    /// Enqueued once the batch is sealed and every task has finished, whatever the outcome.
    pub fn on_complete(mut self, spec: TaskSpec) -> Batch {
        self.callbacks.set(CallbackEvent::OnComplete, spec);
        self
    }
    /// Enqueued at the first task that ends dead.
    pub fn on_death(mut self, spec: TaskSpec) -> Batch {
        self.callbacks.set(CallbackEvent::OnDeath, spec);
        self
    }
}

/// An open batch on a queue.
#[derive(Clone)]
pub struct OpenBatch {
    queue: Queue,
    id: String,
}

impl OpenBatch {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Add tasks (counted in the batch in the same call that stores them); any number, stored
    /// in atomic calls of up to 1000.
    pub async fn add(&self, specs: Vec<TaskSpec>) -> Result<Vec<super::Enqueued>> {
        let mut out = Vec::with_capacity(specs.len());
        let mut specs = specs.into_iter().peekable();
        while specs.peek().is_some() {
            let chunk: Vec<TaskSpec> = specs
                .by_ref()
                .take(MAX_BATCH)
                .map(|mut s| {
                    s.flow = Some(self.id.clone());
                    s
                })
                .collect();
            out.extend(self.queue.enqueue_batch(chunk).await?);
        }
        Ok(out)
    }

    /// Seal: no more tasks but those its running tasks add; the callbacks may fire from now on.
    pub async fn seal(&self) -> Result<Sealed> {
        self.queue.seal_flow(&self.id).await
    }
}

/// What cancelling a flow did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelledFlow {
    pub sealed: Sealed,
    /// Tasks cancelled by the follow-up pass (pending, delayed, waiting or running then).
    pub cancelled: usize,
}

impl Queue {
    fn callbacks(&self, cbs: &Callbacks) -> Result<Vec<ops::flow_open::Callback>> {
        cbs.list
            .iter()
            .map(|(event, spec)| {
                let t = self.new_task(spec.clone())?;
                if !t.after.is_empty() || !t.delay.is_zero() || t.debounce.is_some() {
                    return Err(Error::Invalid(format!(
                        "the {} callback ({}) takes no after, delay or debounce: it is enqueued when the flow decides",
                        event.as_str(),
                        t.kind
                    )));
                }
                Ok(ops::flow_open::Callback {
                    event: *event,
                    kind: t.kind,
                    payload: t.payload,
                    priority: t.priority,
                    max_attempts: t.max_attempts,
                    backoff: t.backoff,
                    backoff_base: t.backoff_base,
                    backoff_cap: t.backoff_cap,
                    jitter_pct: t.jitter_pct,
                    timeout: t.timeout,
                    result_ttl: t.result_ttl,
                    group: t.group,
                })
            })
            .collect()
    }

    async fn open(&self, id: &str, gated: bool, size: usize, cbs: &Callbacks) -> Result<bool> {
        let callbacks = self.callbacks(cbs)?;
        self.run(&ops::flow_open::Request {
            flow: id.into(),
            gated,
            size: size as u64,
            ttl: self.settings.dead_ttl,
            callbacks,
        })
        .await
    }

    /// Submit a whole flow: checked first (nothing is written if it is not a DAG of at most
    /// [`FLOW_MAX_TASKS`] tasks), then stored in dependency order in atomic calls of up to 1000
    /// tasks while its first tasks wait for the seal, then sealed: no task runs before every
    /// task is stored. Task ids are "<flow id>:<name>", so a repeated submission is idempotent.
    pub async fn flow(&self, flow: Flow) -> Result<SubmittedFlow> {
        let order = flow.check()?;
        let id = flow.id.clone().unwrap_or_else(new_id);
        crate::keys::validate_name(&id, "flow id")?;
        let node_id = |name: &str| format!("{id}:{name}");
        for (name, _) in &flow.nodes {
            crate::keys::validate_name(&node_id(name), "flow task id (<flow id>:<name>)")?;
        }
        // every task checked before the first write
        let home = self.name().to_string();
        let queue_of = |name: &str| flow.queues.get(name).cloned().unwrap_or_else(|| home.clone());
        let mut tasks = Vec::with_capacity(order.len());
        let mut queues = Vec::with_capacity(order.len());
        for &i in &order {
            let (name, spec) = &flow.nodes[i];
            let q = queue_of(name);
            let mut spec = spec.clone();
            // a dependency on a task of another queue is "<queue>/<id>"
            spec.after = spec
                .after
                .iter()
                .map(|d| match queue_of(d) {
                    dq if dq == q => node_id(d),
                    dq => format!("{dq}/{}", node_id(d)),
                })
                .collect();
            if q != home {
                // the seal of the flow, on its own queue, holds back what has no dependency
                // in the flow (on the flow's queue the enqueue script adds it itself)
                if spec.after.is_empty() {
                    spec.after.push(format!("{home}/#{id}"));
                }
                spec.flow = Some(format!("{home}/{id}"));
            } else {
                spec.flow = Some(id.clone());
            }
            spec.id = Some(node_id(name));
            spec.name = Some(name.clone());
            tasks.push(self.named(&q)?.new_task(spec)?);
            queues.push(q);
        }
        let created = self.open(&id, true, flow.nodes.len(), &flow.callbacks).await?;
        // in dependency order, runs of tasks of one queue in calls of up to 1000; a task of
        // another queue is counted in the flow (flow_join) before it is enqueued there
        let mut start = 0;
        while start < tasks.len() {
            let q = &queues[start];
            let mut end = start + 1;
            while end < tasks.len() && &queues[end] == q && end - start < MAX_BATCH {
                end += 1;
            }
            let batch: Vec<_> = tasks[start..end].to_vec();
            let target = self.named(q)?;
            if q != self.name() {
                let members = batch
                    .iter()
                    .map(|t| (format!("{q}/{}", t.id), t.name.clone().unwrap_or_default()))
                    .collect();
                self.run(&ops::flow_join::Request {
                    flow: id.clone(),
                    members,
                })
                .await?;
                target
                    .check_remote_deps(batch.iter().flat_map(|t| t.after.iter().map(String::as_str)))
                    .await?;
            }
            target
                .run(&ops::enqueue::Request {
                    max_payload: target.settings.max_payload,
                    tasks: batch,
                })
                .await?;
            start = end;
        }
        self.seal_flow(&id).await?;
        Ok(SubmittedFlow {
            tasks: flow.nodes.iter().map(|(n, _)| (n.clone(), node_id(n))).collect(),
            id,
            created,
        })
    }

    /// Open a batch: add tasks with [`OpenBatch::add`], then [`OpenBatch::seal`].
    pub async fn open_batch(&self, batch: Batch) -> Result<OpenBatch> {
        let id = batch.id.clone().unwrap_or_else(new_id);
        crate::keys::validate_name(&id, "batch id")?;
        self.open(&id, false, 0, &batch.callbacks).await?;
        Ok(OpenBatch {
            queue: self.clone(),
            id,
        })
    }

    /// Seal flow or batch `id` (see [`OpenBatch::seal`]); sealing again changes nothing.
    pub async fn seal_flow(&self, id: &str) -> Result<Sealed> {
        crate::keys::validate_name(id, "flow id")?;
        self.run(&ops::flow_seal::Request {
            flow: id.into(),
            cancel: false,
        })
        .await
    }

    /// A flow's state and counts, with `count` of its members from `start` (in the order they
    /// joined). None: no such flow (or it ended and is no longer kept).
    pub async fn flow_status(&self, id: &str, start: usize, count: usize) -> Result<Option<FlowStatus>> {
        crate::keys::validate_name(id, "flow id")?;
        let r = self
            .run(&ops::flow_status::Request {
                flow: id.into(),
                start: start as u64,
                count: count.min(MAX_BATCH) as u64,
            })
            .await?;
        let mut r = r.0;
        if let Some(st) = r.as_mut() {
            if st.members.iter().any(|m| m.id.contains('/')) {
                self.remote_member_states(&mut st.members).await?;
            }
        }
        Ok(r)
    }

    /// Every member of a flow (paged through `flow_status`).
    pub async fn flow_members(&self, id: &str) -> Result<Option<FlowStatus>> {
        let Some(mut st) = self.flow_status(id, 0, MAX_BATCH).await? else {
            return Ok(None);
        };
        while (st.members.len() as u64) < st.total {
            let more = self.flow_status(id, st.members.len(), MAX_BATCH).await?;
            match more {
                Some(m) if !m.members.is_empty() => st.members.extend(m.members),
                _ => break,
            }
        }
        Ok(Some(st))
    }

    /// Cancel a flow or batch: it is closed, no callback fires, the tasks waiting for its seal
    /// end cancelled with what waits for them, and every other task of it not finished yet is
    /// cancelled (pending, delayed, waiting, or running: its worker learns it at its next
    /// heartbeat), cascading to what waits for them.
    pub async fn cancel_flow(&self, id: &str) -> Result<CancelledFlow> {
        crate::keys::validate_name(id, "flow id")?;
        let sealed = self
            .run(&ops::flow_seal::Request {
                flow: id.into(),
                cancel: true,
            })
            .await?;
        let mut cancelled = 0;
        let mut start = 0;
        loop {
            let Some(st) = self.flow_status(id, start, MAX_BATCH).await? else {
                break;
            };
            if st.members.is_empty() {
                break;
            }
            start += st.members.len();
            // members on other queues ("<queue>/<id>") are cancelled on their queues
            let mut open: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for m in st
                .members
                .iter()
                .filter(|m| m.state.is_some_and(|s| !s.is_final()))
            {
                let (q, id) = super::across::remote_ref(&m.id).unwrap_or((self.name(), &m.id));
                open.entry(q).or_default().push(id);
            }
            for (q, ids) in open {
                cancelled += self
                    .named(q)?
                    .cancel(&ids)
                    .await?
                    .iter()
                    .filter(|s| s.is_some())
                    .count();
            }
        }
        Ok(CancelledFlow { sealed, cancelled })
    }
}

impl TaskSpec {
    /// Dynamic fan-out: `parent` (a running task) adds this one; everything waiting for the
    /// parent waits for this task too, and it joins the parent's flow. `TaskContext::spawn`
    /// sets it.
    pub fn spawned_by(mut self, parent: impl Into<String>) -> TaskSpec {
        self.spawned_by = Some(parent.into());
        self
    }
}
