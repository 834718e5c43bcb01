//! The `http` handler: POST the payload to a URL.
//!
//! A 2xx answer is success with the body as the result. 408, 425, 429 and 5xx answers, and
//! network errors, are retried by the task's policy; any other 4xx is final (the request itself
//! is wrong, so retrying cannot help) and sends the task to the dead-letter set.
//!
//! Progress: when the worker serves an HTTP listener (`worker.metrics`), each request carries
//! `x-baton-progress-url`; the service may POST `<percent> [message]` (text) or
//! `{"percent": 40, "message": "..."}` (JSON) there while it works. The URL names this run
//! (queue, task, fencing token) and stops answering when the run ends.

use super::handler::{Handler, HandlerError, HandlerResult, TaskContext, MAX_RESULT};
use super::progress::{callback_path, Callbacks, Feed};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::time::Duration;

/// How much of an error answer's body becomes the failure message.
const ERROR_BODY: usize = 2000;

pub(crate) struct HttpHandler {
    pub kind: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
    pub client: reqwest::Client,
    /// Base URL of this worker's progress callbacks, and where they are delivered.
    pub progress: Option<(String, Callbacks)>,
}

impl HttpHandler {
    pub fn new(
        kind: &str,
        url: &str,
        headers: BTreeMap<String, String>,
        timeout: Option<Duration>,
        progress: Option<(String, Callbacks)>,
    ) -> crate::Result<HttpHandler> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| crate::Error::Config(format!("worker.handlers.{kind}.http: {e}")))?;
        Ok(HttpHandler {
            kind: kind.into(),
            url: url.into(),
            headers,
            timeout,
            client,
            progress,
        })
    }
}

impl Handler for HttpHandler {
    fn call(&self, task: TaskContext) -> BoxFuture<'static, HandlerResult> {
        let mut req = self
            .client
            .post(&self.url)
            .header("x-baton-task-id", &task.id)
            .header("x-baton-kind", &task.kind)
            .header("x-baton-queue", &task.queue)
            .header("x-baton-attempt", task.attempt.to_string())
            .header("x-baton-run", task.run.to_string());
        let json = serde_json::from_slice::<serde::de::IgnoredAny>(&task.payload).is_ok();
        req = req.header(
            "content-type",
            if json {
                "application/json"
            } else {
                "application/octet-stream"
            },
        );
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(t) = self.timeout {
            req = req.timeout(t);
        }
        // the feed and its registration live as long as the request
        let progress = match &self.progress {
            Some((base, callbacks)) => {
                let path = callback_path(&task);
                req = req.header("x-baton-progress-url", format!("{base}{path}"));
                let feed = Feed::start(&task);
                Some((callbacks.register(path, &feed), feed))
            }
            None => None,
        };
        let req = req.body(task.payload);
        let url = self.url.clone();
        let kind = self.kind.clone();
        Box::pin(async move {
            let outcome = answer(req, url, kind).await;
            if let Some((registration, feed)) = progress {
                drop(registration);
                feed.finish().await; // its last report goes before the outcome
            }
            outcome
        })
    }
}

/// Send the request and turn the answer into the handler's outcome.
async fn answer(req: reqwest::RequestBuilder, url: String, kind: String) -> HandlerResult {
    let resp = req.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            format!("no answer within the timeout (worker.handlers.{kind}.timeout)")
        } else {
            e.to_string()
        };
        HandlerError::retry(format!("POST {url}: {what}"))
    })?;
    let status = resp.status();
    // Read in bounded memory: a success up to the result cap (past it the connection is
    // dropped and the task fails), an error answer only as far as its message is kept.
    let cap = if status.is_success() {
        MAX_RESULT
    } else {
        ERROR_BODY
    };
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| HandlerError::retry(format!("POST {url}: reading the answer failed: {e}")))?
    {
        if body.len() + chunk.len() > cap {
            if status.is_success() {
                return Err(HandlerError::fatal(format!(
                    "POST {url}: answer over the {MAX_RESULT}-byte result limit: the connection was dropped — return a reference to large data instead"
                )));
            }
            body.extend_from_slice(&chunk[..cap - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_success() {
        return Ok(body);
    }
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let msg = format!("POST {url} answered {status}: {text}");
    let retryable = status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
    Err(if retryable {
        HandlerError::retry(msg)
    } else {
        HandlerError::fatal(msg)
    })
}
