//! The Lua scripts, embedded in the binary.
//!
//! Each file under `lua/` is one transition. `--@include NAME` lines are replaced by
//! `lua/include/NAME.lua` here, once, so Redis (and other-language clients, which get the same
//! flattened text) sees one self-contained script whose SHA1 we know before loading it.

use include_dir::{include_dir, Dir};
use std::sync::OnceLock;

static LUA: Dir = include_dir!("$CARGO_MANIFEST_DIR/lua");

/// The data schema version these scripts implement (`SCHEMA` in `lua/include/common.lua`).
pub const SCHEMA_VERSION: &str = "1";

/// One transition script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScriptName {
    Enqueue,
    Claim,
    Heartbeat,
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
}

impl ScriptName {
    /// Every script, in a fixed order.
    pub const ALL: [ScriptName; 21] = [
        ScriptName::Enqueue,
        ScriptName::Claim,
        ScriptName::Heartbeat,
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
    ];

    /// The file stem under `lua/`.
    pub fn file_stem(self) -> &'static str {
        match self {
            ScriptName::Enqueue => "enqueue",
            ScriptName::Claim => "claim",
            ScriptName::Heartbeat => "heartbeat",
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
    let mut out = String::new();
    for line in source(path).lines() {
        match line.strip_prefix("--@include ") {
            Some(name) => {
                out.push_str(&format!("-- begin include/{name}.lua\n"));
                out.push_str(source(&format!("include/{}.lua", name.trim())));
                out.push_str(&format!("-- end include/{name}.lua\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
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
        let common = source("include/common.lua");
        assert!(common.contains(&format!("local SCHEMA = '{SCHEMA_VERSION}'")));
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
