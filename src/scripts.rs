//! The Lua scripts, embedded in the binary.
//!
//! Each file under `lua/` is one transition. `--@include NAME` lines are replaced by
//! `lua/include/NAME.lua` here, once, so Redis (and other-language clients, which get the same
//! flattened text) sees one self-contained script whose SHA1 we know before loading it. An
//! include may include others: each is inlined once per script, before the first one that needs
//! it, because a Lua local must be defined before the code that uses it.

use include_dir::{include_dir, Dir};
use std::sync::OnceLock;

static LUA: Dir = include_dir!("$CARGO_MANIFEST_DIR/lua");

/// The data schema version these scripts implement (`SCHEMA` in `lua/include/schema.lua`, from
/// the manifest's `schema_version`; a test checks the two agree).
pub const SCHEMA_VERSION: &str = crate::bounds::SCHEMA_VERSION;

/// One transition script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScriptName {
    Enqueue,
    Claim,
    Heartbeat,
    Start,
    Progress,
    Complete,
    Fail,
    Release,
    Reclaim,
    Promote,
    Cancel,
    Requeue,
    Get,
    Trim,
    Counts,
    Register,
    Deregister,
    Pause,
    Purge,
    Workers,
    Dispatch,
    Take,
    Configure,
    GroupSet,
    Groups,
    Dependencies,
    FlowOpen,
    FlowSeal,
    FlowStatus,
    Deliver,
    Outbox,
    FlowJoin,
}

impl ScriptName {
    /// Every script, in a fixed order.
    pub const ALL: [ScriptName; 32] = [
        ScriptName::Enqueue,
        ScriptName::Claim,
        ScriptName::Heartbeat,
        ScriptName::Start,
        ScriptName::Progress,
        ScriptName::Complete,
        ScriptName::Fail,
        ScriptName::Release,
        ScriptName::Reclaim,
        ScriptName::Promote,
        ScriptName::Cancel,
        ScriptName::Requeue,
        ScriptName::Get,
        ScriptName::Trim,
        ScriptName::Counts,
        ScriptName::Register,
        ScriptName::Deregister,
        ScriptName::Pause,
        ScriptName::Purge,
        ScriptName::Workers,
        ScriptName::Dispatch,
        ScriptName::Take,
        ScriptName::Configure,
        ScriptName::GroupSet,
        ScriptName::Groups,
        ScriptName::Dependencies,
        ScriptName::FlowOpen,
        ScriptName::FlowSeal,
        ScriptName::FlowStatus,
        ScriptName::Deliver,
        ScriptName::Outbox,
        ScriptName::FlowJoin,
    ];

    /// The file stem under `lua/`.
    pub fn file_stem(self) -> &'static str {
        match self {
            ScriptName::Enqueue => "enqueue",
            ScriptName::Claim => "claim",
            ScriptName::Heartbeat => "heartbeat",
            ScriptName::Start => "start",
            ScriptName::Progress => "progress",
            ScriptName::Complete => "complete",
            ScriptName::Fail => "fail",
            ScriptName::Release => "release",
            ScriptName::Reclaim => "reclaim",
            ScriptName::Promote => "promote",
            ScriptName::Cancel => "cancel",
            ScriptName::Requeue => "requeue",
            ScriptName::Get => "get",
            ScriptName::Trim => "trim",
            ScriptName::Counts => "counts",
            ScriptName::Register => "register",
            ScriptName::Deregister => "deregister",
            ScriptName::Pause => "pause",
            ScriptName::Purge => "purge",
            ScriptName::Workers => "workers",
            ScriptName::Dispatch => "dispatch",
            ScriptName::Take => "take",
            ScriptName::Configure => "configure",
            ScriptName::GroupSet => "group_set",
            ScriptName::Groups => "groups",
            ScriptName::Dependencies => "dependencies",
            ScriptName::FlowOpen => "flow_open",
            ScriptName::FlowSeal => "flow_seal",
            ScriptName::FlowStatus => "flow_status",
            ScriptName::Deliver => "deliver",
            ScriptName::Outbox => "outbox",
            ScriptName::FlowJoin => "flow_join",
        }
    }

    /// The flattened script and its SHA1.
    pub fn script(self) -> &'static Script {
        &all()[self as usize]
    }
}

/// A flattened script with its SHA1 (as SCRIPT LOAD will report it).
#[derive(Debug)]
pub struct Script {
    pub name: ScriptName,
    pub body: String,
    pub sha: String,
}

fn all() -> &'static [Script] {
    static ALL: OnceLock<Vec<Script>> = OnceLock::new();
    ALL.get_or_init(|| {
        ScriptName::ALL
            .iter()
            .map(|&name| {
                let body = flatten(&format!("{}.lua", name.file_stem()));
                let sha = sha1_smol::Sha1::from(body.as_bytes()).digest().to_string();
                Script { name, body, sha }
            })
            .collect()
    })
}

pub(crate) fn source(path: &str) -> &'static str {
    LUA.get_file(path)
        .and_then(|f| f.contents_utf8())
        .unwrap_or_else(|| panic!("embedded script lua/{path} is missing (build bug)"))
}

fn flatten(path: &str) -> String {
    prune_unused(&flatten_with(path, &|p: &str| source(p)))
}

/// Drop the include functions a script never calls. Redis runs a script's whole body on every
/// call, and each `local function` there creates a closure each time (about 0.06 µs apiece on a
/// 2-core VM; `claim` inlined 43 functions and called 21). The rule, which every client's
/// loader repeats exactly (docs/contract.md): a block runs from a line starting
/// `local function NAME(` to the next line that is exactly `end`; it is dropped when NAME
/// appears as a whole word nowhere else in the text (comments count); repeat until nothing
/// more is dropped, since dropping one function may leave another unused.
fn prune_unused(body: &str) -> String {
    let mut lines: Vec<&str> = body.lines().collect();
    // how often each word occurs in the whole text, kept up to date as blocks go
    let mut total: std::collections::HashMap<&str, usize> = Default::default();
    for w in lines.iter().flat_map(|l| words(l)) {
        *total.entry(w).or_default() += 1;
    }
    loop {
        let unused: Vec<(usize, usize)> = function_blocks(&lines)
            .into_iter()
            .filter(|&(name, start, end)| {
                let inside = lines[start..=end]
                    .iter()
                    .flat_map(|l| words(l))
                    .filter(|&w| w == name)
                    .count();
                total.get(name) == Some(&inside)
            })
            .map(|(_, start, end)| (start, end))
            .collect();
        if unused.is_empty() {
            break;
        }
        for &(start, end) in unused.iter().rev() {
            for w in lines[start..=end].iter().flat_map(|l| words(l)) {
                *total.get_mut(w).expect("counted") -= 1;
            }
            lines.drain(start..=end);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The top-level function blocks of a flattened script: (name, first line, `end` line).
fn function_blocks<'a>(lines: &[&'a str]) -> Vec<(&'a str, usize, usize)> {
    let mut blocks = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.strip_prefix("local function ") else {
            continue;
        };
        let name = rest.split('(').next().unwrap_or("").trim();
        let end = (i + 1..lines.len())
            .find(|&j| lines[j] == "end")
            .unwrap_or_else(|| panic!("`local function {name}` has no closing `end` line"));
        blocks.push((name, i, end));
    }
    blocks
}

/// The identifiers (runs of ASCII letters, digits and `_`) in a line.
fn words(line: &str) -> impl Iterator<Item = &str> {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// `flatten` over any source of files, so the resolution rules can be tested on made-up ones.
///
/// The script's own lines are kept in place, each `--@include NAME` replaced by the include's
/// text between `-- begin include/NAME.lua` and `-- end include/NAME.lua` lines. An include's
/// own `--@include` lines are resolved before its text, not inside it, so the begin/end blocks
/// never nest. An include already inlined is skipped (its first occurrence wins); an include
/// that reaches itself again panics: there is no order in which its locals could be defined.
fn flatten_with<'a>(path: &str, src: &dyn Fn(&str) -> &'a str) -> String {
    let mut out = String::new();
    let mut done = Vec::new();
    for line in src(path).lines() {
        match include_name(line) {
            Some(name) => inline(name, src, &mut out, &mut done, &mut Vec::new()),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

fn include_name(line: &str) -> Option<&str> {
    line.strip_prefix("--@include ").map(str::trim)
}

fn inline<'a>(
    name: &'a str,
    src: &dyn Fn(&str) -> &'a str,
    out: &mut String,
    done: &mut Vec<&'a str>,
    open: &mut Vec<&'a str>,
) {
    if done.contains(&name) {
        return;
    }
    if open.contains(&name) {
        panic!("include cycle in lua/include: {} -> {name}", open.join(" -> "));
    }
    let text = src(&format!("include/{name}.lua"));
    open.push(name);
    for dep in text.lines().filter_map(include_name) {
        inline(dep, src, out, done, open);
    }
    open.pop();
    out.push_str(&format!("-- begin include/{name}.lua\n"));
    for line in text.lines().filter(|l| include_name(l).is_none()) {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("-- end include/{name}.lua\n"));
    done.push(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_is_flat_and_starts_with_a_shebang() {
        for name in ScriptName::ALL {
            let s = name.script();
            assert!(s.body.starts_with("#!lua"), "{name:?} must start with #!lua");
            assert!(!s.body.contains("--@include"), "{name:?} still has an include");
            assert_eq!(s.sha.len(), 40);
            assert_eq!(s.name, name);
        }
    }

    #[test]
    fn rust_schema_version_matches_the_scripts() {
        let schema = source("include/schema.lua");
        assert!(schema.contains(&format!("local SCHEMA = '{SCHEMA_VERSION}'")));
    }

    /// A made-up tree: `a` needs `b` and `c`, both need `d`.
    fn fake(path: &str) -> &'static str {
        match path {
            "s.lua" => "#!lua\n--[[\nheader\n]]\n--@include a\n--@include d\nbody()\n",
            "include/a.lua" => "-- a\n--@include b\n--@include c\nlocal A = 1\n",
            "include/b.lua" => "--@include d\nlocal B = D\n",
            "include/c.lua" => "--@include d\n--@include b\nlocal C = D + B\n",
            "include/d.lua" => "local D = 4\n",
            "include/x.lua" => "--@include y\n",
            "include/y.lua" => "--@include z\n",
            "include/z.lua" => "--@include x\n",
            "loop.lua" => "#!lua\n--@include x\n",
            _ => panic!("no {path}"),
        }
    }

    fn begins(body: &str) -> Vec<&str> {
        body.lines()
            .filter_map(|l| l.strip_prefix("-- begin include/"))
            .collect()
    }

    #[test]
    fn nested_includes_are_inlined_once_each_dependencies_first() {
        let body = flatten_with("s.lua", &fake);
        assert_eq!(begins(&body), ["d.lua", "b.lua", "c.lua", "a.lua"]);
        assert_eq!(body.matches("local D = 4").count(), 1);
        assert_eq!(body.matches("local B = D").count(), 1);
        assert!(!body.contains("--@include"), "{body}");
        assert!(body.starts_with("#!lua\n--[[\nheader\n]]\n-- begin include/d.lua\n"));
        assert!(body.ends_with("-- end include/a.lua\nbody()\n"), "{body}");
        // every include's text sits whole between its own markers: no block nests in another
        let mut open = None;
        for line in body.lines() {
            if let Some(n) = line.strip_prefix("-- begin include/") {
                assert_eq!(open.replace(n), None, "nested block in\n{body}");
            } else if let Some(n) = line.strip_prefix("-- end include/") {
                assert_eq!(open.take(), Some(n));
            }
        }
        assert_eq!(open, None);
    }

    #[test]
    #[should_panic(expected = "include cycle in lua/include: x -> y -> z -> x")]
    fn an_include_cycle_panics() {
        flatten_with("loop.lua", &fake);
    }

    /// Each script lists every include it needs, its includes' own needs too, dependencies
    /// first: a resolver that only replaces the script's own `--@include` lines (one level,
    /// as the Python client's does) then still gets every include, in the same order.
    #[test]
    fn every_script_lists_its_includes_closure_in_order() {
        for name in ScriptName::ALL {
            let own: Vec<String> = source(&format!("{}.lua", name.file_stem()))
                .lines()
                .filter_map(include_name)
                .map(|n| format!("{n}.lua"))
                .collect();
            assert_eq!(begins(&name.script().body), own, "{name:?}");
        }
    }

    #[test]
    fn unused_functions_are_pruned_with_what_only_they_used() {
        let body = "local function a(x)\n  return b(x)\nend\nlocal function b(x)\n  return x\nend\n\
                    local function c()\n  return 1\nend\n-- c_d is not c\nlocal function d()\n  return d\nend\nreturn c()\n";
        // a is unused; dropping it leaves b unused; d only names itself; c is called
        assert_eq!(
            prune_unused(body),
            "local function c()\n  return 1\nend\n-- c_d is not c\nreturn c()\n"
        );
    }

    #[test]
    fn no_loaded_script_defines_a_function_it_never_calls() {
        for name in ScriptName::ALL {
            let body = &name.script().body;
            let lines: Vec<&str> = body.lines().collect();
            for (f, ..) in function_blocks(&lines) {
                let uses = lines.iter().flat_map(|l| words(l)).filter(|w| *w == f).count();
                assert!(uses > 1, "{name:?} defines {f} and never names it again");
            }
        }
    }

    #[test]
    fn every_lua_file_is_a_known_script() {
        for f in LUA.files() {
            let stem = f.path().file_stem().unwrap().to_str().unwrap();
            if f.path().extension().and_then(|e| e.to_str()) == Some("lua") {
                assert!(
                    ScriptName::ALL.iter().any(|s| s.file_stem() == stem),
                    "lua/{stem}.lua is not bound in scripts.rs"
                );
            }
        }
    }
}
