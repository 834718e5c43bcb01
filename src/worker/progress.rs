//! Progress from handlers that are not Rust code: exec programs write lines on a file
//! descriptor, http services call back a URL. Both feed a [`Feed`]: the latest report wins and
//! goes to Redis at most every [`PROGRESS_EVERY`], so a chatty program costs Redis a few calls a
//! second, never one per line.
//!
//! The line format (exec fd 3, and the plain-text body of an http callback):
//! `<percent> [message]` — a number from 0 to 100 (decimals are rounded), then optionally a space
//! and a short message (cut to 200 bytes).

use super::handler::TaskContext;
use crate::client::ProgressAck;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Least time between two progress writes of one task from an exec or http handler.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// The file descriptor exec programs write progress lines on (`BATON_PROGRESS_FD`).
pub(crate) const PROGRESS_FD: i32 = 3;

/// Longest progress line read; the rest of a longer line is ignored.
const MAX_LINE: usize = 4096;

/// One report: percent and message.
type Report = (u8, String);

/// Parse `<percent> [message]`.
pub(crate) fn parse_line(line: &str) -> Result<Report, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (num, message) = match line.trim_start().split_once(' ') {
        Some((n, m)) => (n, m.trim()),
        None => (line.trim(), ""),
    };
    match num.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok((p.round() as u8, message.to_string())),
        _ => Err(format!(
            "progress line {:?} ignored: expected \"<percent 0-100> [message]\", e.g. \"40 resizing\"",
            line.chars().take(80).collect::<String>()
        )),
    }
}

/// A running task's progress on its way to Redis: the latest report wins.
pub(crate) struct Feed {
    tx: watch::Sender<Option<Report>>,
    finishing: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Feed {
    /// Start forwarding reports for the task of `ctx`.
    pub fn start(ctx: &TaskContext) -> Feed {
        let (tx, rx) = watch::channel(None);
        let finishing = CancellationToken::new();
        let task = tokio::spawn(forward(ctx.clone(), rx, finishing.clone()));
        Feed { tx, finishing, task }
    }

    /// A new report (replaces one not sent yet).
    pub fn report(&self, r: Report) {
        self.tx.send_replace(Some(r));
    }

    /// Another way in for reports (a callback registration); the feed finishes once `finish`
    /// was called and every such handle is dropped.
    fn handle(&self) -> watch::Sender<Option<Report>> {
        self.tx.clone()
    }

    /// The handler is done: send the last report if it was not sent yet, then stop.
    pub async fn finish(self) {
        self.finishing.cancel();
        drop(self.tx);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

async fn forward(ctx: TaskContext, mut rx: watch::Receiver<Option<Report>>, finishing: CancellationToken) {
    // changed() still answers a value not seen yet after the sender is gone, then errs
    while rx.changed().await.is_ok() {
        let Some((percent, message)) = rx.borrow_and_update().clone() else {
            continue;
        };
        match ctx.progress(percent, &message).await {
            Ok(ProgressAck::Stored) => {}
            Ok(_) => return, // lost or cancelled: the context's token fired, the handler stops
            Err(e) => tracing::warn!(task = %ctx.id, error = %e, "progress report failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PROGRESS_EVERY) => {}
            _ = finishing.cancelled() => {}
        }
    }
}

/// Read progress lines from `r` into `feed` until end of file.
pub(crate) async fn read_lines(mut r: impl tokio::io::AsyncRead + Unpin, feed: &Feed, task: &str) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let mut line: Vec<u8> = Vec::new();
    let mut warned = false;
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b != b'\n' {
                if line.len() < MAX_LINE {
                    line.push(b); // past it, the rest of the line is dropped
                }
                continue;
            }
            match parse_line(&String::from_utf8_lossy(&line)) {
                Ok(report) => feed.report(report),
                Err(e) if !warned => {
                    warned = true;
                    tracing::warn!(task, "{e} (further bad lines of this task are ignored silently)");
                }
                Err(_) => {}
            }
            line.clear();
        }
    }
}

/// The running http-handler tasks that may call back with progress, by their callback path.
#[derive(Clone, Default)]
pub(crate) struct Callbacks {
    feeds: Arc<Mutex<HashMap<String, watch::Sender<Option<Report>>>>>,
}

impl Callbacks {
    /// Register a running task's feed under its path; the returned guard removes it (drop it
    /// before finishing the feed).
    pub fn register(&self, path: String, feed: &Feed) -> CallbackGuard {
        self.feeds.lock().unwrap().insert(path.clone(), feed.handle());
        CallbackGuard {
            callbacks: self.clone(),
            path,
        }
    }

    /// Deliver a report to the task at `path`; false when no such run is going on here.
    pub fn deliver(&self, path: &str, report: Report) -> bool {
        match self.feeds.lock().unwrap().get(path) {
            Some(tx) => {
                tx.send_replace(Some(report));
                true
            }
            None => false,
        }
    }
}

/// Unregisters a callback path when the handler ends.
pub(crate) struct CallbackGuard {
    callbacks: Callbacks,
    path: String,
}

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        self.callbacks.feeds.lock().unwrap().remove(&self.path);
    }
}

/// The callback path of one run: `/progress/<queue>/<id>/<token>` (queue names and ids are
/// URL-safe by their validation).
pub(crate) fn callback_path(ctx: &TaskContext) -> String {
    format!("/progress/{}/{}/{}", ctx.queue, ctx.id, ctx.token())
}

/// The worker listener's route for http handlers' progress callbacks:
/// `POST /progress/<queue>/<id>/<token>` with `<percent> [message]` or
/// `{"percent": 40, "message": "..."}`. 202: taken (forwarded within [`PROGRESS_EVERY`]);
/// 404: no such run here (it ended, lost its lease, or never ran on this worker); 400: a body
/// in neither form.
pub(crate) fn router(callbacks: Callbacks) -> axum::Router {
    use axum::extract::Path;
    use axum::http::StatusCode;
    axum::Router::new().route(
        "/progress/{queue}/{id}/{token}",
        axum::routing::post(
            move |Path((queue, id, token)): Path<(String, String, String)>, body: String| {
                let callbacks = callbacks.clone();
                async move {
                    let report = match parse_body(&body) {
                        Ok(r) => r,
                        Err(e) => return (StatusCode::BAD_REQUEST, e),
                    };
                    if callbacks.deliver(&format!("/progress/{queue}/{id}/{token}"), report) {
                        (StatusCode::ACCEPTED, "progress taken\n".to_string())
                    } else {
                        (
                            StatusCode::NOT_FOUND,
                            format!("no run of task {id} with token {token} on queue {queue} is going on at this worker (it ended, lost its lease, or ran elsewhere)\n"),
                        )
                    }
                }
            },
        ),
    )
}

/// A callback body: a progress line, or JSON `{"percent": n, "message": "..."}`.
fn parse_body(body: &str) -> Result<Report, String> {
    if !body.trim_start().starts_with('{') {
        return parse_line(body.trim()).map_err(|e| e + " or {\"percent\": 40, \"message\": \"...\"}\n");
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        percent: f64,
        #[serde(default)]
        message: String,
    }
    let b: Body = serde_json::from_str(body)
        .map_err(|e| format!("progress body is not {{\"percent\": 0-100, \"message\": \"...\"}}: {e}\n"))?;
    if !(0.0..=100.0).contains(&b.percent) {
        return Err(format!("percent must be from 0 to 100, got {}\n", b.percent));
    }
    Ok((b.percent.round() as u8, b.message))
}

#[cfg(test)]
mod tests {
    use super::{parse_body, parse_line};

    #[test]
    fn callback_bodies_parse_in_both_forms() {
        assert_eq!(parse_body("40 half"), Ok((40, "half".into())));
        assert_eq!(
            parse_body(r#"{"percent": 55, "message": "m"}"#),
            Ok((55, "m".into()))
        );
        assert_eq!(parse_body(r#"{"percent": 7}"#), Ok((7, String::new())));
        assert!(parse_body(r#"{"percent": 700}"#)
            .unwrap_err()
            .contains("from 0 to 100"));
        assert!(parse_body(r#"{"pct": 7}"#).is_err());
        assert!(parse_body("soon").unwrap_err().contains("<percent 0-100>"));
    }

    #[test]
    fn lines_parse_or_name_the_format() {
        assert_eq!(
            parse_line("40 resizing images\n"),
            Ok((40, "resizing images".into()))
        );
        assert_eq!(parse_line("100"), Ok((100, String::new())));
        assert_eq!(parse_line("12.6 x"), Ok((13, "x".into())));
        for bad in ["", "abc", "101", "-1", "NaN half"] {
            let e = parse_line(bad).unwrap_err();
            assert!(e.contains("<percent 0-100> [message]"), "{e}");
        }
    }
}
