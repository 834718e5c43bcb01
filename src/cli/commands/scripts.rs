//! `baton scripts`: the Lua scripts and their manifest, flattened for other languages.

use super::*;

/// The manifest with each script's SHA1 added (what other-language clients vendor).
pub(super) fn manifest_with_shas() -> serde_json::Value {
    let mut m: serde_json::Value = serde_json::from_str(crate::manifest::text()).unwrap_or_default();
    for name in crate::scripts::ScriptName::ALL {
        m["scripts"][name.file_stem()]["sha1"] = serde_json::json!(name.script().sha);
    }
    m
}

pub(super) fn scripts(action: &ScriptsAction, json: bool) -> Result<i32> {
    let m = crate::manifest::get();
    match action {
        ScriptsAction::List => {
            if json {
                println!("{}", manifest_with_shas()["scripts"]);
                return Ok(exit::OK);
            }
            println!("{:<12} {:>7} {:<40} READ-ONLY", "SCRIPT", "VERSION", "SHA1");
            for name in crate::scripts::ScriptName::ALL {
                let spec = &m.scripts[name.file_stem()];
                println!(
                    "{:<12} {:>7} {:<40} {}",
                    name.file_stem(),
                    spec.version,
                    name.script().sha,
                    if spec.read_only { "yes" } else { "" }
                );
            }
            println!("data schema version {}", m.schema_version);
            Ok(exit::OK)
        }
        ScriptsAction::Dump { dir } => {
            let io = |e: std::io::Error| Error::Invalid(format!("cannot write to {}: {e}", dir.display()));
            std::fs::create_dir_all(dir).map_err(io)?;
            for name in crate::scripts::ScriptName::ALL {
                let s = name.script();
                std::fs::write(dir.join(format!("{}.lua", name.file_stem())), &s.body).map_err(io)?;
            }
            let text = serde_json::to_string_pretty(&manifest_with_shas()).unwrap_or_default();
            std::fs::write(dir.join("manifest.json"), text + "\n").map_err(io)?;
            eprintln!(
                "wrote {} scripts and manifest.json to {}",
                crate::scripts::ScriptName::ALL.len(),
                dir.display()
            );
            Ok(exit::OK)
        }
    }
}
