//! Wake-ups: the queue's pub/sub channel tells idle claim loops and the maintenance loops
//! that there is work.

use super::*;

/// Forwards wake-ups from the queue's channel (resubscribing after a lost connection).
pub(super) async fn wake_listener(
    queue: Queue,
    me: String,
    mut sub: Subscription,
    claim: Arc<Notify>,
    maint: Arc<Notify>,
    stop: CancellationToken,
) {
    let push = queue.settings().dispatch == DispatchMode::Push;
    while let Some(signal) = sub.next(&stop).await {
        match signal {
            // pull workers wake on "p" (pending became non-empty), push workers on "a:<their
            // id>" (tasks assigned to them)
            Signal::Message(m) => match (m.get_payload_bytes(), push) {
                (b"d", _) => maint.notify_one(),
                (b"p", false) => claim.notify_one(),
                (a, true) if a.strip_prefix(b"a:") == Some(me.as_bytes()) => claim.notify_one(),
                _ => {}
            },
            // Anything may have happened while disconnected.
            Signal::Subscribed => {
                claim.notify_one();
                maint.notify_one();
            }
        }
    }
}
