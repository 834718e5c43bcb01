//! The dashboard end to end in headless Chromium (Debian's chromium + chromium-driver, installed
//! by scripts/test): the page loads from baton-scheduler, shows the queue's real counts, refuses
//! an action without the token, and requeues a dead task when its button is clicked with it.
//! A screenshot is left in target/test-artifacts/ (outside git).
mod common;
use base64::Engine;
use baton::{FailReport, TaskSpec};
use common::web::{free_port, wait_up};
use common::{product_config, Proc, TempDir, SCHEDULER};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOKEN: &str = "browser-test-token-42";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A minimal W3C WebDriver client over chromedriver.
struct Browser {
    http: reqwest::Client,
    base: String,
    _driver: Proc,
    _profile: TempDir,
}

impl Browser {
    async fn start() -> Browser {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: run scripts/test (it installs Debian's chromium and chromium-driver)"
            );
        }
        let port = free_port();
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Proc { child };
        baton::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let root = format!("http://127.0.0.1:{port}");
        wait_up(&format!("{root}/status")).await;
        let profile = TempDir::new();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--window-size=1400,1000",
                         format!("--user-data-dir={}", profile.0.display())],
            }
        }}});
        let r: Value = http
            .post(format!("{root}/session"))
            .body(caps.to_string())
            .send()
            .await
            .unwrap()
            .json_value()
            .await;
        let sid = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_string();
        Browser {
            http,
            base: format!("{root}/session/{sid}"),
            _driver: driver,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        req.send().await.unwrap().json_value().await
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find(&self, css: &str) -> Option<String> {
        let r = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        r["value"][ELEMENT].as_str().map(str::to_string)
    }

    async fn text(&self, css: &str) -> Option<String> {
        let e = self.find(css).await?;
        let r = self
            .cmd(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await;
        r["value"].as_str().map(str::to_string)
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await.unwrap_or_else(|| panic!("no element {css}"));
        let r = self
            .cmd(
                reqwest::Method::POST,
                &format!("/element/{e}/click"),
                Some(json!({})),
            )
            .await;
        assert!(r["value"].is_null(), "click {css}: {r}");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await.unwrap_or_else(|| panic!("no element {css}"));
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Wait until the element's text satisfies `ok`; returns it.
    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let t = self.text(css).await;
            if let Some(t) = &t {
                if ok(t) {
                    return t.clone();
                }
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("{what}: {css} shows {t:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, path: &std::path::Path) {
        let r = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["value"].as_str().expect("screenshot"))
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (chromium exits); chromedriver is killed by Proc's drop.
        let url = self.base.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let _ = reqwest::Client::new().delete(url).send().await;
            })
        })
        .join();
    }
}

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        let text = self.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_real_counts_and_requeues_a_dead_task_by_click() {
    let env = common::env().await;
    let q = env.queue();
    // Two pending tasks, one dead task with a payload worth looking at.
    q.enqueue(TaskSpec::new("ok", "one")).await.unwrap();
    q.enqueue(TaskSpec::new("ok", "two")).await.unwrap();
    let dead = q
        .enqueue(TaskSpec::new("mail", r#"{"to":"<b>ops</b>"}"#).max_attempts(1))
        .await
        .unwrap()
        .id;
    let claimed = q.claim("w1", 10).await.unwrap();
    let c = claimed.iter().find(|c| c.id == dead).unwrap();
    q.fail(
        "w1",
        &FailReport {
            id: c.id.clone(),
            token: c.token.clone(),
            error: "smtp refused".into(),
            retry: false,
        },
    )
    .await
    .unwrap();
    // The other two were claimed too: hand them back so they are pending again.
    for other in claimed.iter().filter(|c| c.id != dead) {
        q.release("w1", &[baton::LeaseRef::new(&other.id, &other.token)])
            .await
            .unwrap();
    }
    let counts = q.counts().await.unwrap();

    let dir = TempDir::new();
    let port = free_port();
    let cfg = product_config(
        &dir,
        &env.redis.url(),
        &format!("http = \"127.0.0.1:{port}\"\nhttp_token = \"{TOKEN}\"\n"),
    );
    let _scheduler = Proc::start(SCHEDULER, &cfg);
    let base = format!("http://127.0.0.1:{port}");
    wait_up(&format!("{base}/healthz")).await;

    let b = Browser::start().await;
    b.goto(&format!("{base}/")).await;
    let row = r#"tr[data-queue="q"]"#;
    for (state, n) in [
        ("pending", counts.pending),
        ("leased", counts.leased),
        ("dead", counts.dead),
        ("done", counts.done),
    ] {
        let want = n.to_string();
        b.wait_text(&format!("{row} td.count-{state}"), "real counts", |t| t == want)
            .await;
    }
    assert_eq!(counts.dead, 1);
    let dead_row = format!(r#"tr[data-dead-id="{dead}"]"#);
    b.wait_text(&dead_row, "dead task listed", |t| t.contains("smtp refused"))
        .await;

    // Without the token: refused, nothing changes.
    b.click(&format!("{dead_row} button.requeue")).await;
    b.wait_text("#message", "refusal shown", |t| t.starts_with("refused: 401"))
        .await;
    common::assert_state(&q, &dead, "dead").await;

    // With the token: requeued by the click.
    b.type_into("#token", TOKEN).await;
    b.click(&format!("{dead_row} button.requeue")).await;
    b.wait_text("#message", "requeue confirmed", |t| t.contains("requeued 1"))
        .await;
    common::assert_state(&q, &dead, "pending").await;
    let pending = (counts.pending + 1).to_string();
    b.wait_text(&format!("{row} td.count-pending"), "counts refreshed", |t| {
        t == pending
    })
    .await;
    b.wait_text(&format!("{row} td.count-dead"), "counts refreshed", |t| t == "0")
        .await;

    // The task page shows its payload (as text, not markup) and its last error.
    b.goto(&format!("{base}/#task/q/{dead}")).await;
    b.wait_text("#task pre.payload", "task payload", |t| {
        t == r#"{"to":"<b>ops</b>"}"#
    })
    .await;
    b.wait_text("#task", "task error", |t| t.contains("smtp refused"))
        .await;

    // A running task's page shows its progress, and follows it live while the task runs.
    let long = q.enqueue(TaskSpec::new("ok", "long")).await.unwrap().id;
    let held = q.claim("w2", 10).await.unwrap();
    let run = held.iter().find(|c| c.id == long).expect("claimed");
    let lease = baton::LeaseRef::new(&run.id, &run.token);
    q.progress("w2", &lease, 40, "resizing").await.unwrap();
    b.goto(&format!("{base}/#task/q/{long}")).await;
    b.wait_text("#task dd.field-progress", "progress shown", |t| {
        t.contains("40%") && t.contains("resizing")
    })
    .await;
    q.progress("w2", &lease, 70, "uploading").await.unwrap();
    b.wait_text("#task dd.field-progress", "progress followed live", |t| {
        t.contains("70%") && t.contains("uploading")
    })
    .await;

    // A flow's page: its state and each member with its state and what it waits for, by name.
    let sub = q
        .flow(
            baton::Flow::new()
                .id("nightly")
                .task("extract", TaskSpec::new("ok", "e"))
                .task("left", TaskSpec::new("ok", "l").after(["extract"]))
                .task("right", TaskSpec::new("ok", "r").after(["extract"]))
                .task("report", TaskSpec::new("ok", "r").after(["left", "right"]))
                // a task of another queue: read there, its edges named as the flow names them
                .task_in("elsewhere", "archive", TaskSpec::new("ok", "a").after(["report"])),
        )
        .await
        .unwrap();
    b.goto(&format!("{base}/#flow/q/{}", sub.id)).await;
    b.wait_text("#flow dd.field-state", "flow state", |t| t == "sealed")
        .await;
    let member = |name: &str, col: &str| format!(r#"#flow-members tr[data-member="{name}"] td.{col}"#);
    b.wait_text(&member("extract", "member-state"), "member state", |t| {
        t == "pending"
    })
    .await;
    b.wait_text(&member("report", "member-state"), "member state", |t| {
        t == "waiting"
    })
    .await;
    b.wait_text(&member("report", "member-after"), "member edges", |t| {
        t.contains("left (waiting)") && t.contains("right (waiting)")
    })
    .await;
    b.wait_text(&member("left", "member-after"), "member edges", |t| {
        t == "extract (pending)"
    })
    .await;
    b.wait_text(
        &member("archive", "member-state"),
        "a member of another queue",
        |t| t == "waiting",
    )
    .await;
    b.wait_text(&member("archive", "member-after"), "its edge", |t| {
        t == "report (waiting)"
    })
    .await;
    b.wait_text("#flow dd.field-members", "member counts", |t| {
        t.starts_with("5: 0 done")
    })
    .await;
    // followed live: the first task ends, the page shows it and the two it released
    q.cancel(&[&*format!("{}:extract", sub.id)]).await.unwrap();
    b.wait_text(&member("extract", "member-state"), "followed live", |t| {
        t == "cancelled"
    })
    .await;
    b.wait_text(&member("left", "member-state"), "followed live", |t| {
        t == "cancelled"
    })
    .await;
    let all = b.text("#flow").await.unwrap_or_default();
    assert!(!all.contains("null") && !all.contains("undefined"), "{all}");
    let missing = reqwest::get(format!("{base}/api/queues/q/flows/nosuch"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../test-artifacts/dashboard.png");
    b.screenshot(&shot).await;
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 1000,
        "screenshot written"
    );
}
