//! The library's modules form layers: no module depends (through `crate::` paths) on a module
//! that depends back on it. A cycle here means two rooms that cannot be understood one at a
//! time — the test names it.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module -> the top-level modules its code names with `crate::`.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_str().unwrap();
        let top = top.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "bin" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // unit tests may reach anywhere
        let code = text.split("#[cfg(test)]").next().unwrap();
        let deps = edges.entry(top.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for part in line.split("crate::").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                // lowercase: a module (a capitalised name is an item re-exported at the root)
                if name.starts_with(|c: char| c.is_ascii_lowercase()) && name != top {
                    deps.insert(name);
                }
            }
        }
    }
    edges
}

fn path(
    edges: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if from == to {
        return Some(vec![to.to_string()]);
    }
    if !seen.insert(from.to_string()) {
        return None;
    }
    for next in edges.get(from).into_iter().flatten() {
        if let Some(mut p) = path(edges, next, to, seen) {
            p.insert(0, from.to_string());
            return Some(p);
        }
    }
    None
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let edges = edges();
    assert!(
        edges.contains_key("client") && edges["client"].contains("ops"),
        "parsed: {edges:?}"
    );
    for (m, deps) in &edges {
        for d in deps {
            if let Some(back) = path(&edges, d, m, &mut BTreeSet::new()) {
                panic!("module cycle: {m} -> {}", back.join(" -> "));
            }
        }
    }
}

#[test]
fn the_contract_and_the_domain_are_leaves() {
    let edges = edges();
    for leaf in ["bounds", "task", "keys", "cron_expr", "retry", "advice"] {
        let deps: Vec<&String> = edges[leaf].iter().filter(|d| *d != "error").collect();
        assert!(
            deps.is_empty(),
            "{leaf} should depend on nothing but error, depends on {deps:?}"
        );
    }
}
