//! A script call, built argument by argument and checked against `lua/manifest.json` in
//! debug builds, so a Rust call site can never drift from the contract unnoticed.

use crate::scripts::ScriptName;
use redis::Cmd;

/// One script call, ready to send: `EVALSHA sha numkeys keys… args…`.
#[derive(Clone)]
pub struct Call {
    pub(super) script: ScriptName,
    pub(super) cmd: Cmd,
    /// Arguments given so far.
    args: usize,
    /// Every argument so far was given with `named` (so the call is checked on send).
    checked: bool,
}

impl Call {
    /// Start a call of `script` with the queue keyset plus `extra_keys`.
    pub fn new(script: ScriptName, keyset: &[String], extra_keys: &[String]) -> Call {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&script.script().sha).arg(keyset.len() + extra_keys.len());
        for k in keyset.iter().chain(extra_keys) {
            cmd.arg(k);
        }
        Call {
            script,
            cmd,
            args: 0,
            checked: true,
        }
    }

    #[doc(hidden)] // tests of the scripts' own validation
    /// Append one ARGV value, unchecked (tests use it to send deliberately bad calls).
    pub fn arg<T: redis::ToRedisArgs>(&mut self, v: T) -> &mut Call {
        self.cmd.arg(v);
        self.args += 1;
        self.checked = false;
        self
    }

    #[doc(hidden)]
    /// Skip the manifest check for this call (tests of the scripts' own validation).
    pub fn unchecked(&mut self) -> &mut Call {
        self.checked = false;
        self
    }

    /// Append the ARGV value the manifest calls `name` at this position. In debug builds a
    /// name that disagrees with `lua/manifest.json` panics.
    pub fn named<T: redis::ToRedisArgs>(&mut self, name: &str, v: T) -> &mut Call {
        #[cfg(not(debug_assertions))]
        let _ = name; // checked in debug builds only
        #[cfg(debug_assertions)]
        {
            let spec = &crate::manifest::get().scripts[self.script.file_stem()];
            let want = spec.arg_name(self.args);
            assert!(
                want == Some(name),
                "script {}: argument {} is {:?} in lua/manifest.json, but the Rust call site passes {name:?}",
                self.script.file_stem(),
                self.args + 1,
                want
            );
        }
        self.cmd.arg(v);
        self.args += 1;
        self
    }

    /// In debug builds, panic if a checked call is incomplete per the manifest.
    pub(super) fn verify(&self) {
        #[cfg(debug_assertions)]
        if self.checked {
            let spec = &crate::manifest::get().scripts[self.script.file_stem()];
            assert!(
                spec.complete_with(self.args),
                "script {}: {} arguments is not a complete call per lua/manifest.json",
                self.script.file_stem(),
                self.args
            );
        }
    }

    /// The script this call runs.
    pub fn script(&self) -> ScriptName {
        self.script
    }
}
