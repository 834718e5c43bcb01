//! The limits of the scripts' arguments, generated at build time from `lua/manifest.json`.
//!
//! One module per script, one constant per bounded argument (`bounds::claim::LEASE_MS`). The
//! manifest is the one source: the scripts' own checks are tested against it, and config
//! validation derives every limit from these constants.

/// The inclusive range a script accepts for one integer argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    pub script: &'static str,
    pub arg: &'static str,
    pub min: i64,
    pub max: i64,
}

impl Bound {
    /// Whether the script accepts `v`.
    pub fn contains(&self, v: i64) -> bool {
        (self.min..=self.max).contains(&v)
    }
}

include!(concat!(env!("OUT_DIR"), "/bounds.rs"));
