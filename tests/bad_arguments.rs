//! Every script validates its arguments: bad input gets a named error and leaves no partial
//! write.
mod common;
use baton::conn::Call;
use baton::scripts::ScriptName;
use baton::{Error, TaskSpec};

#[tokio::test]
async fn each_script_refuses_bad_arguments_without_writing() {
    let env = common::env().await;
    let q = env.queue();
    q.enqueue(TaskSpec::new("k", "seed")).await.unwrap();
    let c = q.claim("w", 1).await.unwrap().remove(0);
    let mut raw = env.raw().await;
    let before = common::snapshot(&mut raw).await;

    let enqueue_ok = |id: &str| -> Vec<String> {
        [
            id, "k", "p", "0", "0", "3", "e", "1000", "2000", "0", "0", "1000", "0", "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut bad_enqueue_task = enqueue_ok("a");
    bad_enqueue_task[6] = "z".into(); // unknown backoff
    let mut bad_option = enqueue_ok("o");
    bad_option[13] = "expires_in_ms=5,colour=2".into();
    let mut bad_wait = enqueue_ok("p");
    bad_wait[13] = "debounce_ms=500,max_wait_ms=10".into();
    let mut bad_kind = enqueue_ok("b");
    bad_kind[1] = "has space".into();

    let cases: Vec<(ScriptName, Vec<String>, &str)> = vec![
        (ScriptName::Enqueue, vec!["1000".into(), "0".into()], "n must be"),
        (
            ScriptName::Enqueue,
            [vec!["1000".into(), "1".into()], bad_option].concat(),
            "unknown option colour",
        ),
        (
            ScriptName::Enqueue,
            [vec!["1000".into(), "1".into()], bad_wait].concat(),
            "max_wait_ms (10) must be at least debounce_ms (500)",
        ),
        (
            ScriptName::Enqueue,
            vec!["1000".into(), "2".into()],
            "expected 30 arguments",
        ),
        (
            ScriptName::Enqueue,
            [vec!["1000".into(), "1".into()], bad_enqueue_task].concat(),
            "backoff",
        ),
        (
            ScriptName::Enqueue,
            [vec!["1000".into(), "1".into()], bad_kind].concat(),
            "kind",
        ),
        (
            ScriptName::Enqueue,
            [vec!["1000".into(), "2".into()], enqueue_ok("c"), {
                let mut t = enqueue_ok("d");
                t[12] = "1000".into(); // asks for an idempotency key that is not in KEYS
                t
            }]
            .concat(),
            "idempotency key",
        ),
        (
            ScriptName::Claim,
            vec!["w".into(), "0".into(), "1000".into()],
            "n must be",
        ),
        (
            ScriptName::Claim,
            vec!["w".into(), "5".into(), "-1".into()],
            "lease_ms",
        ),
        (
            ScriptName::Claim,
            vec!["bad worker".into(), "5".into(), "1000".into()],
            "worker",
        ),
        (
            ScriptName::Heartbeat,
            vec!["w".into(), "1000".into(), c.id.clone()],
            "pairs",
        ),
        (
            ScriptName::Heartbeat,
            vec!["w".into(), "x".into(), c.id.clone(), c.token.clone()],
            "lease_ms",
        ),
        (
            ScriptName::Complete,
            vec!["w".into(), "0".into(), c.id.clone(), c.token.clone(), "10".into()],
            "groups",
        ),
        (
            ScriptName::Complete,
            vec![
                "w".into(),
                "0".into(),
                c.id.clone(),
                c.token.clone(),
                "-5".into(),
                "r".into(),
            ],
            "result_ttl_ms",
        ),
        (
            ScriptName::Complete,
            vec![
                "w".into(),
                "-1".into(),
                c.id.clone(),
                c.token.clone(),
                "5".into(),
                "r".into(),
            ],
            "busy_ms",
        ),
        (
            ScriptName::Fail,
            vec![
                "w".into(),
                "1000".into(),
                "0".into(),
                c.id.clone(),
                c.token.clone(),
                "e".into(),
                "maybe".into(),
            ],
            "mode",
        ),
        (
            ScriptName::Fail,
            vec![
                "w".into(),
                "0".into(),
                "0".into(),
                c.id.clone(),
                c.token.clone(),
                "e".into(),
                "retry".into(),
            ],
            "dead_ttl_ms",
        ),
        (ScriptName::Release, vec!["w".into(), c.id.clone()], "pairs"),
        (
            ScriptName::Progress,
            vec!["w".into(), c.id.clone(), c.token.clone(), "101".into(), "".into()],
            "percent must be",
        ),
        (
            ScriptName::Progress,
            vec![
                "w".into(),
                c.id.clone(),
                c.token.clone(),
                "half".into(),
                "".into(),
            ],
            "percent must be",
        ),
        (
            ScriptName::Progress,
            vec![
                "w".into(),
                c.id.clone(),
                c.token.clone(),
                "50".into(),
                "x".repeat(201),
            ],
            "message must be at most 200 bytes",
        ),
        (
            ScriptName::Progress,
            vec!["w".into(), c.id.clone(), "abc".into(), "50".into(), "".into()],
            "token must be",
        ),
        (
            ScriptName::Progress,
            vec!["w".into(), c.id.clone(), c.token.clone(), "50".into()],
            "expected worker, id, token, percent and message",
        ),
        (
            ScriptName::Dispatch,
            vec![
                "fastest".into(),
                "10".into(),
                "1000".into(),
                "1000".into(),
                "7".into(),
            ],
            "strategy",
        ),
        (
            ScriptName::Dispatch,
            vec![
                "random".into(),
                "10".into(),
                "1000".into(),
                "1000".into(),
                "0".into(),
            ],
            "seed",
        ),
        (
            ScriptName::Dispatch,
            vec![
                "weighted".into(),
                "0".into(),
                "1000".into(),
                "1000".into(),
                "7".into(),
            ],
            "n must be",
        ),
        (ScriptName::Take, vec!["w".into(), "5".into()], "lease_ms"),
        (
            ScriptName::Reclaim,
            vec!["0".into(), "1000".into(), "1000".into()],
            "limit",
        ),
        (ScriptName::Reclaim, vec!["10".into()], "dead_ttl_ms"),
        (
            ScriptName::Reclaim,
            vec!["10".into(), "1000".into()],
            "worker_ttl_ms",
        ),
        (ScriptName::Promote, vec!["1001".into()], "limit"),
        (ScriptName::Cancel, vec!["1000".into()], "task ids"),
        (ScriptName::Cancel, vec!["soon".into(), c.id.clone()], "ttl_ms"),
        (ScriptName::Requeue, vec![], "mode"),
        (ScriptName::Requeue, vec!["ids".into()], "task ids"),
        (ScriptName::Requeue, vec!["oldest".into(), "0".into()], "limit"),
        (ScriptName::Purge, vec!["all".into()], "mode"),
        (ScriptName::Purge, vec!["oldest".into(), "5000".into()], "limit"),
        (
            ScriptName::Register,
            vec!["w".into(), "not json".into()],
            "JSON object",
        ),
        (
            ScriptName::Deregister,
            vec!["bad worker".into(), "final".into()],
            "worker",
        ),
        (ScriptName::Deregister, vec!["w".into(), "later".into()], "mode"),
        (ScriptName::Pause, vec!["2".into()], "paused"),
        (ScriptName::Workers, vec!["0".into()], "limit"),
        (ScriptName::Trim, vec!["x".into()], "limit"),
        (ScriptName::Get, vec![], "task id"),
    ];
    for (script, args, needle) in cases {
        let mut call = Call::new(script, q.keys().keyset(), &[]);
        call.unchecked();
        for a in &args {
            call.arg(a);
        }
        let err = q.conn().eval(&call, "q").await.unwrap_err();
        assert!(
            matches!(err, Error::BadArgument { .. }),
            "{script:?} {args:?}: {err}"
        );
        assert!(
            err.to_string().contains(needle),
            "{script:?}: {err} should mention {needle:?}"
        );
        assert_eq!(
            common::snapshot(&mut raw).await,
            before,
            "{script:?} {args:?} wrote something"
        );
    }

    // too few keys
    let mut call = Call::new(ScriptName::Counts, &q.keys().keyset()[..3], &[]);
    call.unchecked();
    let err = q.conn().eval(&call, "q").await.unwrap_err();
    assert!(err.to_string().contains("18 queue keys"), "{err}");
    assert_eq!(common::snapshot(&mut raw).await, before);
}

/// Idempotency keys are passed by the caller (any language): a batch whose key slot names
/// another key of the queue, or a key of another queue, is refused before its first task is
/// written — not with WRONGTYPE halfway through.
#[tokio::test]
async fn enqueue_refuses_extra_keys_that_are_not_idempotency_keys() {
    let env = common::env().await;
    let q = env.queue();
    q.enqueue(TaskSpec::new("k", "seed")).await.unwrap();
    let mut raw = env.raw().await;
    let before = common::snapshot(&mut raw).await;
    let task = |id: &str| -> Vec<String> {
        [
            id, "k", "p", "0", "0", "3", "e", "1000", "2000", "0", "0", "1000", "60000", "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // two tasks with keys: the first key is right, the second is `wrong`
    let refused = |wrong: String| {
        let mut call = Call::new(
            ScriptName::Enqueue,
            q.keys().keyset(),
            &[q.keys().idem("k1"), wrong],
        );
        call.unchecked();
        for a in [vec!["1000".into(), "2".into()], task("a"), task("b")].concat() {
            call.arg(a);
        }
        let q = q.clone();
        async move { q.conn().eval(&call, "q").await.unwrap_err() }
    };
    let other = baton::keys::QueueKeys::new("baton", "other").unwrap();
    let tasks_hash = q.keys().key(baton::keys::Role::Tasks).to_string();
    for wrong in [tasks_hash, other.idem("k2")] {
        let err = refused(wrong).await;
        assert!(matches!(err, Error::BadArgument { .. }), "{err}");
        assert!(err.to_string().contains("idempotency key of this queue"), "{err}");
        assert_eq!(common::snapshot(&mut raw).await, before, "nothing written");
    }
    // a key of the right name that holds something else
    let squatted = q.keys().idem("k3");
    let _: () = redis::cmd("HSET")
        .arg(&squatted)
        .arg("f")
        .arg("v")
        .query_async(&mut raw)
        .await
        .unwrap();
    let before = common::snapshot(&mut raw).await;
    let err = refused(squatted).await;
    assert!(err.to_string().contains("holds a hash"), "{err}");
    assert_eq!(common::snapshot(&mut raw).await, before, "nothing written");
}

/// Unique keys are checked like idempotency keys: a unique key slot holding an idempotency key
/// (or any key outside this queue's `uniq:` prefix) is refused before anything is written.
#[tokio::test]
async fn enqueue_refuses_a_unique_key_slot_with_another_key() {
    let env = common::env().await;
    let q = env.queue();
    let mut raw = env.raw().await;
    let before = common::snapshot(&mut raw).await;
    let mut call = Call::new(ScriptName::Enqueue, q.keys().keyset(), &[q.keys().idem("u")]);
    call.unchecked();
    let args = [
        "1000",
        "1",
        "a",
        "k",
        "p",
        "0",
        "0",
        "3",
        "e",
        "1000",
        "2000",
        "0",
        "0",
        "1000",
        "0",
        "unique_ttl_ms=60000",
    ];
    for a in args {
        call.arg(a);
    }
    let err = q.conn().eval(&call, "q").await.unwrap_err();
    assert!(matches!(err, Error::BadArgument { .. }), "{err}");
    assert!(err.to_string().contains("a unique key of this queue"), "{err}");
    assert_eq!(common::snapshot(&mut raw).await, before, "nothing written");
}
