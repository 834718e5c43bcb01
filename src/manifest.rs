//! The machine-readable contract of the scripts (`lua/manifest.json`).
//!
//! Other-language clients read the same file. In debug builds (so in every test) each script
//! call built with `Call::named` (the connection layer) is checked against it: an argument whose name or
//! position disagrees with the manifest, or a call left incomplete, panics — so a Rust call
//! site can never drift from the contract unnoticed.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The whole manifest.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub schema_version: String,
    pub key_pattern: String,
    pub keyset: Vec<String>,
    pub record: Vec<String>,
    pub errors: BTreeMap<String, String>,
    pub scripts: BTreeMap<String, ScriptSpec>,
}

/// One script's contract.
#[derive(Debug, Deserialize)]
pub struct ScriptSpec {
    pub file: String,
    pub version: u32,
    pub read_only: bool,
    pub argv: Vec<ArgSpec>,
    #[serde(default)]
    pub repeat: Option<RepeatSpec>,
    pub reply: String,
    pub errors: Vec<String>,
    /// The key roles the script may read or write (its header's `touches:` line, without the
    /// modes), in keyset order; `idem` for enqueue's idempotency keys.
    #[serde(default)]
    pub touches: Vec<String>,
}

/// A group of arguments repeated after the fixed ones.
#[derive(Debug, Deserialize)]
pub struct RepeatSpec {
    #[serde(default)]
    pub min: Option<usize>,
    #[serde(default)]
    pub max: Option<usize>,
    #[serde(default)]
    pub count: Option<String>,
    pub fields: Vec<ArgSpec>,
}

/// One argument.
#[derive(Debug, Deserialize)]
pub struct ArgSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub doc: String,
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
    #[serde(default)]
    pub unit: Option<String>,
    /// For an `options` argument (a "name=value,..." string): the named settings it may carry.
    #[serde(default)]
    pub options: Vec<ArgSpec>,
}

impl ArgSpec {
    /// This argument and, for an `options` argument, the settings it carries.
    pub fn with_options(&self) -> impl Iterator<Item = &ArgSpec> {
        std::iter::once(self).chain(self.options.iter())
    }
}

/// The embedded manifest text.
pub fn text() -> &'static str {
    crate::scripts::source("manifest.json")
}

/// The parsed manifest.
pub fn get() -> &'static Manifest {
    static M: OnceLock<Manifest> = OnceLock::new();
    M.get_or_init(|| serde_json::from_str(text()).expect("lua/manifest.json is valid (tested)"))
}

impl ScriptSpec {
    /// The name the manifest gives argument number `pos` (0-based), if any.
    pub fn arg_name(&self, pos: usize) -> Option<&str> {
        if pos < self.argv.len() {
            return Some(&self.argv[pos].name);
        }
        let r = self.repeat.as_ref()?;
        Some(&r.fields[(pos - self.argv.len()) % r.fields.len()].name)
    }

    /// Whether `n` arguments form a complete call (all fixed ones, whole repeat groups).
    pub fn complete_with(&self, n: usize) -> bool {
        if n < self.argv.len() {
            return false;
        }
        match &self.repeat {
            None => n == self.argv.len(),
            Some(r) => (n - self.argv.len()).is_multiple_of(r.fields.len()),
        }
    }
}
