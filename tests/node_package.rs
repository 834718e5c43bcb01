//! `clients/node` is an npm package: from its lockfile `npm ci` installs it and `npm test` passes
//! (its own suites against private redis-servers), and `npm pack` gives a tarball that installs
//! into a project outside the tree and works a real queue with the scripts it carries — the
//! scripts this tree's Rust library runs (same SHA1s).
mod common;
use baton::scripts::ScriptName;
use common::clients::run_ok;
use std::process::Command;

const HINT: &str = "scripts/test installs Node.js and npm from Debian's packages";

#[tokio::test]
async fn npm_ci_test_and_pack_give_a_client_that_carries_its_own_scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/node");
    let bin = env!("CARGO_BIN_EXE_baton");
    let npm = |args: &[&str], what: &str| {
        run_ok(
            Command::new("npm")
                .args(args)
                .env("BATON_BIN", bin)
                .current_dir(&dir),
            what,
            HINT,
        )
    };
    npm(&["ci", "--no-audit", "--no-fund"], "npm ci in clients/node");
    let tests = npm(&["test"], "npm test in clients/node");
    let failed = tests
        .lines()
        .find(|l| l.starts_with("# fail "))
        .expect("a TAP summary");
    assert_eq!(failed, "# fail 0", "{tests}");
    let passed = tests.lines().find(|l| l.starts_with("# pass ")).unwrap();
    eprintln!("clients/node npm test: {passed}");

    // the packed tarball, installed into a project of its own outside the tree
    let out = common::TempDir::new();
    let tarball = npm(
        &[
            "pack",
            "--silent",
            "--pack-destination",
            out.path("").to_str().unwrap(),
        ],
        "npm pack",
    );
    let tarball = out.path(tarball.trim());
    let app = out.path("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("package.json"),
        r#"{"name": "app", "private": true, "type": "module"}"#,
    )
    .unwrap();
    run_ok(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .arg(&tarball)
            .current_dir(&app),
        "npm install baton-client-*.tgz",
        HINT,
    );
    let env = common::env().await;
    std::fs::write(
        app.join("probe.mjs"),
        r#"
import { createHash } from "node:crypto";
import { Redis } from "ioredis";
import { Queue, Scripts } from "baton-client";
const s = Scripts.load();
const redis = new Redis(process.argv[2]);
const q = await Queue.open(redis, "q", { scripts: s });
const { id } = await q.enqueue("k", { from: "npm" });
const shas = Object.fromEntries([...s.bodies].map(([n, b]) => [n, createHash("sha1").update(b).digest("hex")]));
console.log(JSON.stringify({ dir: s.dir, id, shas }));
redis.disconnect();
"#,
    )
    .unwrap();
    let probe = run_ok(
        Command::new("node")
            .arg("probe.mjs")
            .arg(env.redis.url())
            .env_remove("BATON_SCRIPTS")
            .current_dir(&app),
        "the installed package",
        HINT,
    );
    let v: serde_json::Value = serde_json::from_str(probe.trim()).unwrap();
    let scripts_dir = v["dir"].as_str().unwrap();
    assert!(
        scripts_dir.starts_with(app.to_str().unwrap()) && scripts_dir.contains("node_modules/baton-client"),
        "the scripts come from the installed package: {scripts_dir}"
    );
    let shas = v["shas"].as_object().unwrap();
    assert_eq!(shas.len(), ScriptName::ALL.len());
    for name in ScriptName::ALL {
        assert_eq!(shas[name.file_stem()], name.script().sha, "{}", name.file_stem());
    }
    let t = env.queue().get(v["id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(t.record.payload, br#"{"from":"npm"}"#);
}
