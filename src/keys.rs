//! The key layout of a queue.
//!
//! Every key of queue `q` is `<prefix>:{q}:<role>`: the `{q}` hash tag puts a whole queue in one
//! Redis Cluster slot (scripts touch only one queue, so they never cross slots), while different
//! queues spread over the nodes. Every script receives the same 17 keys first (the "queue
//! keyset"), in the order of [`ROLES`]; see docs/contract.md.

use crate::error::{Error, Result};

/// The roles of the queue keyset, in the order scripts receive them as KEYS[1..17].
pub const ROLES: [&str; 17] = [
    "meta",      // hash: v (schema), seq, fence, paused
    "tasks",     // hash: id -> record
    "pending",   // zset: id by priority/FIFO score
    "delayed",   // zset: id by run-at ms
    "leased",    // zset: id by lease deadline ms
    "lease",     // hash: id -> "token|worker"
    "done",      // zset: id by expiry ms
    "dead",      // zset: id by expiry ms
    "cancelled", // zset: id by expiry ms
    "results",   // hash: id -> result bytes (non-empty results of done tasks)
    "errors",    // hash: id -> "attempt|at_ms|message"
    "workers",   // hash: worker id -> JSON description
    "wbeat",     // zset: worker id by last heartbeat ms
    "assigned",  // zset (lex): "worker|id" of tasks push-dispatched and not yet taken
    "winfl",     // hash: worker id -> leases held (in flight)
    "wstat",     // hash: "worker:a|c|f|b" -> assigned, completed, failed, busy ms
    "events",    // stream: lifecycle events (capped; see docs/contract.md)
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

    /// The 17 keys of the keyset, in script order.
    pub fn keyset(&self) -> &[String] {
        &self.keys
    }

    /// The key of one role (`"pending"`, `"dead"`...).
    pub fn role(&self, role: &str) -> &str {
        let i = ROLES.iter().position(|r| *r == role).expect("known role");
        &self.keys[i]
    }

    /// The idempotency key for a user-supplied key.
    pub fn idem(&self, key: &str) -> String {
        format!("{}idem:{key}", self.base)
    }

    /// Pub/sub channel that wakes idle workers ("p") and maintenance loops ("d").
    pub fn wake_channel(&self) -> String {
        format!("{}wake", self.base)
    }

    /// Pub/sub channel signalled when leases end (push dispatchers may assign more).
    pub fn free_channel(&self) -> String {
        format!("{}free", self.base)
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
        assert_eq!(k.keyset().len(), 17);
        for key in k.keyset() {
            assert!(key.starts_with("baton:{emails}:"), "{key}");
        }
        assert_eq!(k.role("dead"), "baton:{emails}:dead");
        assert_eq!(k.idem("x"), "baton:{emails}:idem:x");
    }

    #[test]
    fn refuses_names_that_would_break_the_hash_tag() {
        assert!(QueueKeys::new("baton", "a{b}").is_err());
        assert!(QueueKeys::new("baton", "").is_err());
        assert!(QueueKeys::new("baton", "has space").is_err());
    }
}
