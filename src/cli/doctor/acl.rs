//! Checks of the configured user's ACL rights: worker, producer-only, or too few.

use super::*;

/// The ACL user named in the config (`ACL WHOAMI` when allowed).
pub(super) async fn acl_user(conn: &Conn, config: &Config) -> String {
    if let Ok(u) = conn.query::<String>(redis::cmd("ACL").arg("WHOAMI")).await {
        return u;
    }
    if let Some(u) = &config.redis.username {
        return u.clone();
    }
    use redis::IntoConnectionInfo;
    config
        .redis
        .url
        .as_str()
        .into_connection_info()
        .ok()
        .and_then(|i| i.redis_settings().username().map(str::to_string))
        .unwrap_or_else(|| "default".into())
}

/// The commands each role needs, on the keys of `q` (docs/operations.md, "ACL users").
pub(super) fn role_commands(q: &Queue, wait: bool) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let k = q.keys();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let mut evalsha = s(&["EVALSHA", &ScriptName::Enqueue.script().sha, "17"]);
    evalsha.extend(k.keyset().iter().cloned());
    let (meta, pending, events) = (
        k.key(crate::keys::Role::Meta),
        k.key(crate::keys::Role::Pending),
        k.key(crate::keys::Role::Events),
    );
    let idem = k.idem("doctor");
    let mut producer = vec![
        evalsha,
        s(&["SCRIPT", "LOAD", "return 1"]),
        s(&["HSET", meta, "v", "1"]),
        s(&["HGET", meta, "v"]),
        s(&["HMGET", meta, "v"]),
        s(&["HSETNX", k.key(crate::keys::Role::Tasks), "x", "y"]),
        s(&["HINCRBY", meta, "seq", "1"]),
        s(&["ZADD", pending, "0", "x"]),
        s(&["ZRANGE", pending, "0", "-1"]),
        s(&["ZCARD", pending]),
        // counts: the live leases under the concurrency cap
        s(&["ZCOUNT", k.key(crate::keys::Role::Leased), "0", "+inf"]),
        s(&["ZSCORE", pending, "x"]),
        // dependencies and flows: the lists of waiting tasks and of a flow's members
        s(&["RPUSH", &k.wf("wo:doctor"), "x"]),
        s(&["LRANGE", &k.wf("wo:doctor"), "0", "-1"]),
        s(&["ZREM", pending, "x"]),
        s(&["DEL", &k.wf("wo:doctor")]),
        s(&["PEXPIRE", &k.wf("fl:doctor"), "1"]),
        s(&["SET", &idem, "x"]),
        s(&["GET", &idem]),
        s(&["TYPE", &idem]),
        s(&["XADD", events, "*", "f", "v"]),
        s(&["PUBLISH", &k.wake_channel(), "p"]),
        s(&["SUBSCRIBE", &k.fin_channel()]),
        s(&["XREAD", "STREAMS", events, "0"]),
        s(&["TIME"]),
    ];
    if wait {
        producer.push(s(&["WAIT", "0", "0"]));
    }
    let worker = vec![
        s(&["ZPOPMIN", pending, "1"]),
        s(&["HDEL", k.key(crate::keys::Role::Lease), "x"]),
        s(&["ZRANGEBYLEX", k.key(crate::keys::Role::Assigned), "-", "+"]),
    ];
    (producer, worker)
}

/// What `ACL DRYRUN` says of one command: `None` allowed, `Some(reason)` denied.
pub(super) async fn dryrun(conn: &Conn, user: &str, args: &[String]) -> Result<Option<String>, Error> {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("DRYRUN").arg(user).arg(args);
    match conn.query::<Value>(&cmd).await? {
        Value::Okay => Ok(None),
        Value::SimpleString(s) if s == "OK" => Ok(None),
        Value::BulkString(b) if b == b"OK" => Ok(None),
        Value::BulkString(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        other => Ok(Some(format!("{other:?}"))),
    }
}

/// The rights of the configured user: ACL DRYRUN of the commands each role needs, or, when
/// DRYRUN is denied, a no-op heartbeat (the scripts' own worker check).
pub(super) async fn acl(client: &Client, config: &Config, queues: &[String], out: &mut Vec<Finding>) {
    let conn = client.conn();
    let name = queues.first().map(String::as_str).unwrap_or("default");
    let Ok(q) = client.queue(name) else { return };
    let user = acl_user(conn, config).await;
    let (producer, worker) = role_commands(&q, config.redis.wait_replicas > 0);
    let mut denied: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let mut first_reason = String::new();
    for (i, list) in [&producer, &worker].into_iter().enumerate() {
        for args in list {
            match dryrun(conn, &user, args).await {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    if first_reason.is_empty() {
                        first_reason = reason;
                    }
                    let name = if args[0] == "SCRIPT" {
                        "SCRIPT LOAD".into()
                    } else {
                        args[0].clone()
                    };
                    denied[i].push(name);
                }
                Err(Error::NoPermission { .. }) => return out.push(probe(&q, &user).await),
                Err(e) => {
                    return out.push(Finding::warn(
                        "acl",
                        format!(
                            "rights of Redis user {user} not checked: ACL DRYRUN failed ({})",
                            brief(&e)
                        ),
                        "compare the user's rules (ACL GETUSER) with docs/operations.md, \"ACL users\"",
                    ))
                }
            }
        }
    }
    out.push(advice::acl(&user, &denied[0], &denied[1], &first_reason));
}

/// Worker rights without ACL DRYRUN: a heartbeat of an unregistered worker with no leases
/// passes the scripts' worker check and then writes nothing.
pub(super) async fn probe(q: &Queue, user: &str) -> Finding {
    const NOTE: &str = "(ACL DRYRUN not permitted to this user: probed with a no-op heartbeat)";
    match q.heartbeat("baton-doctor-probe", &[]).await {
        Ok(_) | Err(Error::VersionMismatch { .. }) => {
            let mut f = advice::acl(user, &[], &[], "");
            f.message = format!("{} {NOTE}", f.message);
            f
        }
        Err(Error::NoPermission { detail, .. }) if detail.contains("worker-side") => {
            let mut f = advice::acl(user, &[], &["ZPOPMIN".into()], "");
            f.message = format!("{} {NOTE}", f.message);
            f
        }
        Err(Error::NoPermission { detail, .. }) => {
            advice::acl(user, &["EVALSHA of Baton's scripts".into()], &[], &detail)
        }
        Err(e) => Finding::warn(
            "acl",
            format!("rights of Redis user {user} not checked: {}", brief(&e)),
            "compare the user's rules (ACL GETUSER) with docs/operations.md, \"ACL users\"",
        ),
    }
}
