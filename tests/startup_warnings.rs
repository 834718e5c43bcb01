//! At connect Baton warns about Redis settings that can lose tasks: an eviction policy other
//! than noeviction, and no persistence at all — saying what can be lost and the fix.
mod common;
use baton::local_redis::LocalRedis;
use common::{baton, product_config, TempDir};

#[test]
fn eviction_policy_and_missing_persistence_are_warned_about() {
    let risky = LocalRedis::start_with(&["--maxmemory-policy", "allkeys-lru"]).unwrap();
    let dir = TempDir::new();
    let cfg = product_config(&dir, &risky.url(), "");
    let (code, _out, err) = baton(&cfg, &["stats", "--queue", "q", "--sample", "0s"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("maxmemory-policy allkeys-lru")
            && err.contains("lose tasks")
            && err.contains("noeviction"),
        "{err}"
    );
    assert!(
        err.contains("no persistence") && err.contains("appendonly yes"),
        "{err}"
    );

    let safe = LocalRedis::start_with(&["--appendonly", "yes"]).unwrap();
    let dir = TempDir::new();
    let cfg = product_config(&dir, &safe.url(), "");
    let (code, _out, err) = baton(&cfg, &["stats", "--queue", "q", "--sample", "0s"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("maxmemory-policy") && !err.contains("no persistence"),
        "{err}"
    );
}
