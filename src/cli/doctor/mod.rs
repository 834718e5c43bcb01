//! `baton doctor`: check a deployment and print each finding with its fix.
//!
//! Read-only: it connects like every command (which loads the scripts), then only reads — INFO,
//! CONFIG GET, ACL DRYRUN, SCRIPT EXISTS, TIME, the queues' meta and worker registry. When ACL
//! DRYRUN is denied it probes the worker rights with a heartbeat of an unregistered worker and
//! no leases, which writes nothing. Exit code: 1 when any finding is a failure, else 0
//! (warnings alone exit 0).

mod acl;
mod queues;
mod server;

use acl::acl;
use queues::{clock, queue, scripts};
use server::{server, settings};

use super::exit;
use crate::advice::{self, Finding, Status};
use crate::client::{Client, Queue};
use crate::config::Config;
use crate::conn::Conn;
use crate::error::Error;
use crate::scripts::{ScriptName, SCHEMA_VERSION};
use redis::Value;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Run every check, print the findings; the exit code.
pub(super) async fn run(config: Option<PathBuf>, json: bool) -> i32 {
    let findings = check(config).await;
    print(&findings, json);
    if findings.iter().any(|f| f.status == Status::Fail) {
        exit::ERROR
    } else {
        exit::OK
    }
}

fn print(findings: &[Finding], json: bool) {
    if json {
        println!("{}", serde_json::to_string(findings).unwrap_or_default());
        return;
    }
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0).max(11);
    for f in findings {
        let mark = match f.status {
            Status::Ok => '✓',
            Status::Warn => '!',
            Status::Fail => '✗',
        };
        match &f.fix {
            Some(fix) => println!("{mark} {:<width$}  {} — fix: {fix}", f.check, f.message),
            None => println!("{mark} {:<width$}  {}", f.check, f.message),
        }
    }
    let count = |s| findings.iter().filter(|f| f.status == s).count();
    println!(
        "{} ok, {} warning(s), {} failure(s)",
        count(Status::Ok),
        count(Status::Warn),
        count(Status::Fail)
    );
}

/// An error's text split into what happened and the fix (Baton's errors end in "— fix").
fn from_error(check: &str, e: &Error) -> Finding {
    let text = e.to_string();
    match text.split_once(" — ") {
        Some((msg, fix)) => Finding::fail(check, msg, fix),
        None => Finding::fail(check, text, "see the error above"),
    }
}

/// An error's text without its fix, for mentioning it inside another finding.
fn brief(e: &Error) -> String {
    let text = e.to_string();
    match text.split_once(" — ") {
        Some((msg, _)) => msg.to_string(),
        None => text,
    }
}

/// Where the config came from (the lookup of `process::load_config`).
fn config_source(flag: &Option<PathBuf>) -> String {
    if let Some(p) = flag {
        return p.display().to_string();
    }
    if let Some(p) = std::env::var_os("BATON_CONFIG") {
        return format!("{} (BATON_CONFIG)", PathBuf::from(p).display());
    }
    if std::path::Path::new("config/baton.toml").exists() {
        return "config/baton.toml".into();
    }
    "built-in defaults and BATON__* environment".into()
}

async fn check(flag: Option<PathBuf>) -> Vec<Finding> {
    let mut out = Vec::new();
    let source = config_source(&flag);
    let config = match crate::process::load_config(flag) {
        Ok(c) => c,
        Err(e) => {
            out.push(from_error("config", &e));
            return out;
        }
    };
    let queues = config.scheduler_queues();
    if queues.is_empty() {
        out.push(Finding::warn(
            "config",
            format!(
                "{source} names no queue: per-queue checks skipped, and baton-scheduler maintains nothing"
            ),
            "name the queues in [queues.NAME] tables or worker.queues",
        ));
    } else {
        out.push(Finding::ok(
            "config",
            format!("{source}; queues: {}", queues.join(", ")),
        ));
    }
    let client = match Client::connect(config.clone()).await {
        Ok(c) => c,
        Err(e @ Error::Config(_)) => {
            out.push(from_error("config", &e));
            return out;
        }
        Err(e) => {
            out.push(from_error("redis", &e));
            return out;
        }
    };
    let conn = client.conn();
    let addr = conn.addr();

    server(conn, &config, &addr, &mut out).await;
    settings(conn, &addr, &mut out).await;
    acl(&client, &config, &queues, &mut out).await;
    scripts(conn, &mut out).await;
    let now_ms = clock(conn, &mut out).await;
    for name in &queues {
        match client.queue(name) {
            Ok(q) => queue(&q, now_ms, &mut out).await,
            Err(e) => out.push(from_error("config", &e)),
        }
    }
    out
}
