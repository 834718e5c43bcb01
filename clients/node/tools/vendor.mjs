// Vendors Baton's scripts into ./scripts with `baton scripts dump`: the flattened scripts and
// manifest.json (with each script's SHA1) of the Baton build that runs it. Which `baton`:
// $BATON_BIN, else the Baton source tree this package sits in (`cargo run --bin baton`).
// The client refuses scripts whose SHA1 differs from the manifest's, so a hand-edited or
// half-copied folder never reaches Redis.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const out = join(here, "scripts");
const tree = resolve(here, "..", "..");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: ["ignore", "ignore", "inherit"], ...opts });
if (process.env.BATON_BIN) {
  run(process.env.BATON_BIN, ["scripts", "dump", out]);
} else if (existsSync(join(tree, "Cargo.toml")) && existsSync(join(tree, "lua", "manifest.json"))) {
  run("cargo", ["run", "--quiet", "--bin", "baton", "--", "scripts", "dump", out], { cwd: tree });
} else {
  console.error("baton-client: cannot vendor the scripts: set BATON_BIN to a `baton` binary, or build inside a Baton source tree");
  process.exit(1);
}
