//! lua/manifest.json is the machine-readable contract: it must agree with the scripts' headers,
//! the Rust binding (checked at every call in debug builds, see Call::named) and the key layout.
use baton::manifest;
use baton::scripts::{ScriptName, SCHEMA_VERSION};

fn header(name: &str) -> String {
    let path = format!("{}/lua/{name}.lua", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let end = text.find("]]").expect("header block");
    text[..end].to_string()
}

#[test]
fn manifest_lists_exactly_the_scripts() {
    let m = manifest::get();
    let mut files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/lua"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".lua"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = m.scripts.values().map(|s| s.file.clone()).collect();
    listed.sort();
    assert_eq!(files, listed, "every lua/*.lua in the manifest and nothing else");
    let mut bound: Vec<String> = ScriptName::ALL
        .iter()
        .map(|s| format!("{}.lua", s.file_stem()))
        .collect();
    bound.sort();
    assert_eq!(bound, listed, "every script bound in Rust");
}

#[test]
fn headers_agree_with_the_manifest() {
    let m = manifest::get();
    assert_eq!(m.schema_version, SCHEMA_VERSION);
    assert_eq!(
        m.keyset,
        baton::keys::ROLES
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    );
    for (name, spec) in &m.scripts {
        let h = header(name);
        assert!(h.contains(&format!("name: {name}\n")), "{name}: header name");
        assert!(
            h.contains(&format!("version: {}\n", spec.version)),
            "{name}: header version"
        );
        assert!(
            h.contains(&format!("1-{}: the queue keyset", m.keyset.len())),
            "{name}: header keys"
        );
        let shebang = h.lines().next().unwrap();
        assert_eq!(
            shebang == "#!lua flags=no-writes",
            spec.read_only,
            "{name}: read_only vs shebang {shebang:?}"
        );
        let fields = spec
            .argv
            .iter()
            .chain(spec.repeat.iter().flat_map(|r| r.fields.iter()))
            .flat_map(|a| a.with_options());
        for a in fields {
            assert!(
                h.contains(&a.name),
                "{name}: header does not document argument {}",
                a.name
            );
        }
        for e in &spec.errors {
            assert!(m.errors.contains_key(e), "{name}: unknown error code {e}");
            assert!(
                h.contains(e.as_str()),
                "{name}: header does not document error {e}"
            );
        }
    }
}

#[test]
fn the_record_layout_matches_the_rust_parser() {
    let m = manifest::get();
    let sample: Vec<String> = m
        .record
        .iter()
        .map(|f| match f.as_str() {
            "used" => "9".to_string(),
            "base" => "2".to_string(),
            "strays" => "1".to_string(),
            "kind" => "k".to_string(),
            "backoff" => "e".to_string(),
            "payload" => "p|q".to_string(),
            _ => "7".to_string(),
        })
        .collect();
    let r = baton::Record::parse(sample.join("|").as_bytes()).unwrap();
    assert_eq!(
        (
            r.runs_ended,
            r.attempts_used,
            r.strays,
            r.kind.as_str(),
            r.payload.as_slice()
        ),
        (9, 7, 1, "k", &b"p|q"[..])
    );
}

#[test]
fn the_stray_bound_is_the_scripts() {
    assert_eq!(lua_constants()["MAX_STRAYS"], baton::MAX_STRAYS as i64);
}

#[test]
fn the_progress_event_interval_is_the_scripts() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/lua/manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        lua_constants()["PROGRESS_EVENT_MS"],
        m["events"]["progress_min_interval_ms"].as_i64().unwrap()
    );
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "argument 2 is Some(\"n\")")]
fn a_call_site_that_disagrees_with_the_manifest_panics() {
    let keys = baton::keys::QueueKeys::new("baton", "q").unwrap();
    let mut call = baton::conn::Call::new(ScriptName::Claim, keys.keyset(), &[]);
    call.named("worker", "w").named("count", 5);
}

/// The Lua constants (`local NAME = <integer>`) of the includes and scripts, by name.
fn lua_constants() -> std::collections::HashMap<String, i64> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/lua");
    let mut out = std::collections::HashMap::new();
    let files = std::fs::read_dir(format!("{root}/include"))
        .unwrap()
        .chain(std::fs::read_dir(root).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "lua"));
    for path in files {
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let Some(rest) = line.strip_prefix("local ") else {
                continue;
            };
            let Some((name, value)) = rest.split_once(" = ") else {
                continue;
            };
            if let Ok(v) = value.trim().parse::<i64>() {
                out.insert(name.trim().to_string(), v);
            }
        }
    }
    out
}

/// A bound as written in Lua or a header: a number, a constant, or its negation. `None` for
/// another argument's name (a bound that depends on the call).
fn resolve(expr: &str, consts: &std::collections::HashMap<String, i64>) -> Option<i64> {
    let expr = expr.trim();
    if let Some(e) = expr.strip_prefix('-') {
        return resolve(e, consts).map(|v| -v);
    }
    expr.parse().ok().or_else(|| consts.get(expr).copied())
}

/// Argument limits exist once, in the manifest (Rust reads them through `ops::bounds`); each
/// script's header and its own `int_arg` checks must state exactly those limits.
#[test]
fn bounds_in_headers_and_code_agree_with_the_manifest() {
    let m = manifest::get();
    let consts = lua_constants();
    assert_eq!(consts["MAX_MS"], 315_360_000_000, "the largest duration");
    for (name, spec) in &m.scripts {
        let path = format!("{}/lua/{}", env!("CARGO_MANIFEST_DIR"), spec.file);
        let text = std::fs::read_to_string(&path).unwrap();
        let (head, body) = text.split_at(text.find("]]").unwrap());
        let fields = spec
            .argv
            .iter()
            .chain(spec.repeat.iter().flat_map(|r| r.fields.iter()))
            .flat_map(|a| a.with_options());
        for a in fields.filter(|a| a.min.is_some()) {
            let (min, max) = (a.min.unwrap(), a.max.unwrap());
            // header: "<name> (int, LO..HI"; a bounded bytes argument: "<name> (bytes, LO..HI"
            let marker = format!("{} ({}, ", a.name, a.ty);
            let at = head
                .find(&marker)
                .unwrap_or_else(|| panic!("{name}: header lacks {marker:?}"));
            let range = head[at + marker.len()..].split([';', ')']).next().unwrap();
            let (lo, hi) = range
                .split_once("..")
                .unwrap_or_else(|| panic!("{name}: header range of {} is {range:?}", a.name));
            assert_eq!(
                resolve(hi, &consts),
                Some(max),
                "{name}: header max of {}",
                a.name
            );
            if let Some(lo) = resolve(lo, &consts) {
                assert_eq!(lo, min, "{name}: header min of {}", a.name);
            }
            if a.ty != "int" {
                // a length bound: its constant (named in the header) is what the code checks
                continue;
            }
            // code: int_arg(..., '<name>', LO, HI)
            let marker = format!("'{}', ", a.name);
            let at = body
                .find(&marker)
                .unwrap_or_else(|| panic!("{name}: no int_arg check of {}", a.name));
            let args = body[at + marker.len()..].split(')').next().unwrap();
            let (lo, hi) = args.split_once(',').unwrap();
            assert_eq!(
                resolve(hi, &consts),
                Some(max),
                "{name}: int_arg max of {}",
                a.name
            );
            if let Some(lo) = resolve(lo, &consts) {
                assert_eq!(lo, min, "{name}: int_arg min of {}", a.name);
            }
        }
    }
}
