//! The key layout of a queue.
//!
//! Every key of queue `q` is `<prefix>:{q}:<role>`: the `{q}` hash tag puts a whole queue in one
//! Redis Cluster slot (scripts touch only one queue, so they never cross slots), while different
//! queues spread over the nodes. Every script receives the same 18 keys first (the "queue
//! keyset"), in the order of [`Role`]; see docs/contract.md.

use crate::error::{Error, Result};

/// The roles of the queue keyset, in the order scripts receive them as KEYS[1..18].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// hash: v (schema), seq, fence, paused, ev (events cap)
    Meta,
    /// hash: id -> record
    Tasks,
    /// zset: id by priority/FIFO score
    Pending,
    /// zset: id by run-at ms
    Delayed,
    /// zset: id by lease deadline ms
    Leased,
    /// hash: id -> "token|worker"
    Lease,
    /// zset: id by expiry ms
    Done,
    /// zset: id by expiry ms
    Dead,
    /// zset: id by expiry ms
    Cancelled,
    /// hash: id -> result bytes (non-empty results of done tasks)
    Results,
    /// hash: id -> "run|at_ms|message"
    Errors,
    /// hash: worker id -> JSON description
    Workers,
    /// zset: worker id by last heartbeat ms
    Wbeat,
    /// zset (lex): "worker|id" of tasks push-dispatched and not yet taken
    Assigned,
    /// hash: worker id -> leases held (in flight)
    Winfl,
    /// hash: "worker:a|c|f|b" -> assigned, completed, failed, busy ms
    Wstat,
    /// stream: lifecycle events (capped; see docs/contract.md)
    Events,
    /// hash: id -> "token|percent|at_ms|event_ms|message", the last progress report
    Progress,
}

impl Role {
    /// Every role, in keyset order.
    pub const ALL: [Role; 18] = [
        Role::Meta,
        Role::Tasks,
        Role::Pending,
        Role::Delayed,
        Role::Leased,
        Role::Lease,
        Role::Done,
        Role::Dead,
        Role::Cancelled,
        Role::Results,
        Role::Errors,
        Role::Workers,
        Role::Wbeat,
        Role::Assigned,
        Role::Winfl,
        Role::Wstat,
        Role::Events,
        Role::Progress,
    ];

    /// The role's name: the last part of its key, as in `lua/manifest.json`'s keyset.
    pub fn as_str(self) -> &'static str {
        ROLES[self as usize]
    }
}

/// The role names, in keyset order.
pub const ROLES: [&str; 18] = [
    "meta",
    "tasks",
    "pending",
    "delayed",
    "leased",
    "lease",
    "done",
    "dead",
    "cancelled",
    "results",
    "errors",
    "workers",
    "wbeat",
    "assigned",
    "winfl",
    "wstat",
    "events",
    "progress",
];

/// Names of the keys of one queue.
#[derive(Clone, Debug)]
pub struct QueueKeys {
    queue: String,
    base: String,
    keys: Vec<String>,
}

impl QueueKeys {
    /// Keys of `queue` under `prefix`. Queue names are 1-128 characters of `[A-Za-z0-9-_.:]`.
    pub fn new(prefix: &str, queue: &str) -> Result<QueueKeys> {
        validate_name(queue, "queue name")?;
        validate_name(prefix, "redis.prefix")?;
        let base = format!("{prefix}:{{{queue}}}:");
        let keys = ROLES.iter().map(|r| format!("{base}{r}")).collect();
        Ok(QueueKeys {
            queue: queue.to_string(),
            base,
            keys,
        })
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The key prefix (`redis.prefix`) the queue lives under.
    pub fn prefix(&self) -> &str {
        // base is "<prefix>:{<queue>}:"
        &self.base[..self.base.len() - self.queue.len() - 4]
    }

    /// The 18 keys of the keyset, in script order.
    pub fn keyset(&self) -> &[String] {
        &self.keys
    }

    /// The key of one role.
    pub fn key(&self, role: Role) -> &str {
        &self.keys[role as usize]
    }

    /// The idempotency key for a user-supplied key.
    pub fn idem(&self, key: &str) -> String {
        format!("{}idem:{key}", self.base)
    }

    /// The unique-while-active key for a user-supplied key.
    pub fn uniq(&self, key: &str) -> String {
        format!("{}uniq:{key}", self.base)
    }

    /// A key of the dependencies and flows (`lua/include/deps.lua`, `lua/include/flows.lua`):
    /// `waiting`, `wx:<id>`, `wo:<id>`, `fl:<flow>`, `fm:<flow>`, `tflow`, `ob` (the outbox).
    pub fn wf(&self, role: &str) -> String {
        format!("{}{role}", self.base)
    }

    /// The debounce key for a user-supplied key.
    pub fn deb(&self, key: &str) -> String {
        format!("{}deb:{key}", self.base)
    }

    /// Pub/sub channel that wakes idle workers ("p") and maintenance loops ("d").
    pub fn wake_channel(&self) -> String {
        format!("{}wake", self.base)
    }

    /// Pub/sub channel signalled when leases end (push dispatchers may assign more).
    pub fn free_channel(&self) -> String {
        format!("{}free", self.base)
    }

    /// Pub/sub channel signalled ("o") when a message is written to the queue's empty outbox
    /// (dependencies across queues: the maintenance loops carry it).
    pub fn outbox_channel(&self) -> String {
        format!("{}outbox", self.base)
    }

    /// Pub/sub channel on which comma-joined ids of finished tasks are published.
    pub fn fin_channel(&self) -> String {
        format!("{}fin", self.base)
    }
}

pub(crate) fn validate_name(name: &str, what: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} {name:?} is not valid: use 1-128 characters of A-Z a-z 0-9 - _ . :"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_queue_hash_tag() {
        let k = QueueKeys::new("baton", "emails").unwrap();
        assert_eq!(k.keyset().len(), 18);
        for key in k.keyset() {
            assert!(key.starts_with("baton:{emails}:"), "{key}");
        }
        assert_eq!(k.key(Role::Dead), "baton:{emails}:dead");
        for r in Role::ALL {
            assert!(k.key(r).ends_with(&format!(":{}", r.as_str())));
        }
        assert_eq!(k.idem("x"), "baton:{emails}:idem:x");
        assert_eq!(k.prefix(), "baton");
    }

    #[test]
    fn refuses_names_that_would_break_the_hash_tag() {
        assert!(QueueKeys::new("baton", "a{b}").is_err());
        assert!(QueueKeys::new("baton", "").is_err());
        assert!(QueueKeys::new("baton", "has space").is_err());
    }
}
