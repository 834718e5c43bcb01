//! `clients/python` is a package: `pip install clients/python` into a fresh virtual environment
//! gives a `baton_client` that carries the scripts and manifest of the tree it was built from
//! (flattened at build time), finds them without any path into the Baton tree, runs exactly the
//! scripts the Rust library runs (same SHA1s), and works a real queue.
mod common;
use baton::scripts::ScriptName;
use baton::State;
use std::process::Command;

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (scripts/test installs python3 and redis-py)"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn pip_installs_a_client_that_carries_its_own_scripts() {
    let root = env!("CARGO_MANIFEST_DIR");
    let py = std::env::var("BATON_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = common::TempDir::new();
    let venv = dir.path("venv");
    // the system's site packages stay visible: redis-py comes from there (scripts/ensure-python)
    run(
        Command::new(&py)
            .args(["-m", "venv", "--system-site-packages"])
            .arg(&venv),
        "python3 -m venv",
    );
    let vpy = venv.join("bin/python");
    run(
        Command::new(&vpy)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
            ])
            .arg(format!("{root}/clients/python")),
        "pip install clients/python",
    );

    // from outside the tree, with no PYTHONPATH and no BATON_SCRIPTS
    let env = common::env().await;
    let probe = r#"
import hashlib, json, sys, redis
import baton_client as baton
s = baton.Scripts()
q = baton.Queue(redis.Redis.from_url(sys.argv[1]), "q", scripts=s)
task_id, created = q.enqueue("k", {"from": "pip"})
print(json.dumps({"dir": baton._default_scripts_dir(), "typed": __import__("os").path.exists(
    __import__("os").path.join(__import__("os").path.dirname(baton.__file__), "py.typed")),
    "sha": {n: hashlib.sha1(b.encode()).hexdigest() for n, b in s.bodies.items()},
    "id": task_id, "created": created}))
"#;
    let out = run(
        Command::new(&vpy)
            .args(["-c", probe, &env.redis.url()])
            .current_dir(dir.path(""))
            .env_remove("PYTHONPATH")
            .env_remove("BATON_SCRIPTS"),
        "the installed client",
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let scripts_dir = v["dir"].as_str().unwrap();
    assert!(
        scripts_dir.starts_with(venv.to_str().unwrap()) && !scripts_dir.starts_with(root),
        "the scripts come from the package, not the tree: {scripts_dir}"
    );
    assert_eq!(v["typed"], true, "py.typed ships");
    for name in ScriptName::ALL {
        assert_eq!(
            v["sha"][name.file_stem()].as_str(),
            Some(name.script().sha.as_str()),
            "{}: the packaged script is the one Rust loads",
            name.file_stem()
        );
    }
    assert_eq!(v["created"], true);

    // the type hints reach users: mypy, run on code using the installed package, passes a
    // correct program and names the mistake in a wrong one
    run(
        Command::new(&vpy).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "mypy",
        ]),
        "pip install mypy (from PyPI)",
    );
    let good = dir.write(
        "good.py",
        "import redis\nimport baton_client as baton\nq = baton.Queue(redis.Redis(), 'q', check_version=False)\n\
         for t in q.claim('w', 10):\n    n: int = t.attempt\n    k: str = t.kind\n\
         task_id, created = q.enqueue('k', {'a': 1})\nok: bool = created\n",
    );
    let bad = dir.write(
        "bad.py",
        "import redis\nimport baton_client as baton\nq = baton.Queue(redis.Redis(), 'q', check_version=False)\n\
         tasks: int = q.claim('w', 10)\n",
    );
    let mypy = |file: &std::path::Path| {
        Command::new(&vpy)
            .args(["-m", "mypy", "--no-incremental", "--ignore-missing-imports"])
            .arg(file)
            .current_dir(dir.path(""))
            .env_remove("PYTHONPATH")
            .output()
            .unwrap()
    };
    let out = mypy(&good);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let out = mypy(&bad);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("Claims") && text.contains("int"),
        "mypy names the wrong type: {text}"
    );
    let t = env.queue().get(v["id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (t.state, t.record.payload),
        (State::Pending, br#"{"from":"pip"}"#.to_vec())
    );
}

#[test]
fn the_package_version_is_the_release() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/clients/python/pyproject.toml"
    ))
    .unwrap();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .expect("a version line")
        .trim_matches('"');
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}
