//! Cross-language contract: the Node client (clients/node, built from this tree with its scripts
//! vendored by `baton scripts dump`) shares queues with the Rust library and the Python client
//! through the same scripts — each side produces, works and reads the other's tasks; stale tokens
//! and version mismatches are refused the same way in all three.
mod common;
use common::clients::{self, Lang};

#[tokio::test]
async fn node_enqueues_rust_works_node_reads() {
    clients::enqueues_rust_works_reads_back(Lang::Node, &common::env().await).await;
}

#[tokio::test]
async fn rust_enqueues_node_works_with_heartbeats() {
    clients::rust_enqueues_worker_heartbeats(Lang::Node, &common::env().await).await;
}

/// The Node worker runs `concurrency` handlers at once, and on SIGTERM stops claiming and lets
/// the tasks in flight finish within its grace.
#[tokio::test]
async fn a_node_worker_runs_tasks_concurrently_and_stops_cleanly_on_sigterm() {
    clients::drains_on_sigterm(Lang::Node, "work-concurrent").await;
}

/// Past its shutdown grace the Node worker aborts what still runs and releases those leases.
#[tokio::test]
async fn a_node_worker_releases_what_outlives_its_grace() {
    clients::releases_past_grace(Lang::Node, "work-concurrent").await;
}

/// The same zombie refused for the same acknowledgements as Python's (the list is shared).
#[tokio::test]
async fn a_stale_token_is_refused_the_same_from_node_and_rust() {
    clients::stale_token_refused(Lang::Node, &common::env().await).await;
}

/// Node and Python print the very same refusal, at open and from the scripts.
#[tokio::test]
async fn a_version_mismatch_is_refused_identically_in_all_three() {
    let env = common::env().await;
    let node = clients::version_mismatch_refused(Lang::Node, &env).await;
    let python = Lang::Python.driver(&["version", &env.redis.url(), "q"]);
    assert_eq!(node, python);
}

#[tokio::test]
async fn a_node_worker_takes_push_assignments() {
    clients::takes_push_assignments(Lang::Node).await;
}
