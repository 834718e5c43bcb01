// Baton's Lua scripts as vendored by `baton scripts dump` (flattened, with manifest.json), and the
// check of every call against the manifest before it is sent.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface ArgSpec {
  name: string;
  type: "string" | "int" | "bytes" | "options";
  doc?: string;
  unit?: string;
  min?: number;
  max?: number;
}

export interface ScriptSpec {
  file: string;
  version: number;
  read_only: boolean;
  sha1: string;
  argv: ArgSpec[];
  repeat?: { min?: number; max?: number; fields: ArgSpec[] };
  reply: string;
  errors: string[];
  extra_keys?: Record<string, string>;
}

export interface Manifest {
  manifest_version: number;
  schema_version: string;
  redis: string;
  key_pattern: string;
  keyset: string[];
  channels: Record<string, string>;
  record: string[];
  errors: Record<string, string>;
  scripts: Record<string, ScriptSpec>;
  events: { stream_role: string; default_max_len: number; progress_min_interval_ms: number };
}

/** A value sent as one script argument. */
export type ArgValue = string | number | Buffer;

/** One script argument: its manifest name and its value. */
export type Arg = [name: string, value: ArgValue];

/** Fill a manifest pattern: `{name}` takes a value, `{{` and `}}` are literal braces. */
export function fillPattern(pattern: string, values: Record<string, string>): string {
  return pattern.replace(/\{\{|\}\}|\{(\w+)\}/g, (m, name?: string) => {
    if (m === "{{") return "{";
    if (m === "}}") return "}";
    const v = values[name as string];
    if (v === undefined) throw new Error(`pattern ${pattern} needs {${name}}`);
    return v;
  });
}

function defaultDir(): string {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/
  for (const dir of [process.env.BATON_SCRIPTS, resolve(here, "..", "scripts")]) {
    if (dir && existsSync(join(dir, "manifest.json"))) return dir;
  }
  throw new Error(
    "no Baton scripts found: run `npm run vendor` (it runs `baton scripts dump`), pass Scripts.load(dir) " +
      "a folder written by `baton scripts dump DIR`, or set BATON_SCRIPTS",
  );
}

/** The scripts and their manifest, as written by `baton scripts dump DIR`. */
export class Scripts {
  readonly manifest: Manifest;
  readonly bodies: ReadonlyMap<string, string>;
  readonly dir: string;

  private constructor(dir: string, manifest: Manifest, bodies: Map<string, string>) {
    this.dir = dir;
    this.manifest = manifest;
    this.bodies = bodies;
  }

  /** Load `dir` (default: $BATON_SCRIPTS, else the scripts vendored into this package). Every
   * script must hash to the SHA1 the manifest gives it: a dump is taken whole or not at all. */
  static load(dir?: string): Scripts {
    const root = dir ?? defaultDir();
    const manifest = JSON.parse(readFileSync(join(root, "manifest.json"), "utf8")) as Manifest;
    const bodies = new Map<string, string>();
    for (const [name, spec] of Object.entries(manifest.scripts)) {
      if (!spec.sha1) {
        throw new Error(`${root}: the manifest gives script ${name} no sha1: load the output of \`baton scripts dump DIR\`, not lua/`);
      }
      const body = readFileSync(join(root, spec.file), "utf8");
      const sha = createHash("sha1").update(body).digest("hex");
      if (sha !== spec.sha1) {
        throw new Error(`${root}/${spec.file} hashes to ${sha}, the manifest says ${spec.sha1}: vendor the scripts again with \`baton scripts dump\` (npm run vendor)`);
      }
      bodies.set(name, body);
    }
    return new Scripts(root, manifest, bodies);
  }

  spec(name: string): ScriptSpec {
    const spec = this.manifest.scripts[name];
    if (!spec) throw new Error(`no script ${name} in the manifest`);
    return spec;
  }

  /** The manifest's upper bound of one fixed argument of a script. */
  argMax(script: string, arg: string): number {
    const a = this.spec(script).argv.find((x) => x.name === arg);
    if (a?.max === undefined) throw new Error(`${script}: argument ${arg} has no max in the manifest`);
    return a.max;
  }

  /** Throw unless `args` names the script's arguments in the manifest's order, makes whole
   * repeated groups within the manifest's count, and keeps each value within its bounds
   * (int: an integer in [min, max]; bytes: a length in [min, max]). A failure is a bug in the
   * client, caught by its tests before any call reaches Redis. */
  check(name: string, args: readonly Arg[]): void {
    const spec = this.spec(name);
    const fixed = spec.argv;
    const fields = spec.repeat?.fields ?? [];
    args.forEach(([arg, value], pos) => {
      let want: ArgSpec | undefined;
      if (pos < fixed.length) want = fixed[pos];
      else if (fields.length) want = fields[(pos - fixed.length) % fields.length];
      if (!want || arg !== want.name) {
        throw new Error(`${name}: argument ${pos + 1} is ${JSON.stringify(want?.name ?? null)} in the manifest, got ${JSON.stringify(arg)}`);
      }
      checkValue(name, want, value);
    });
    const rest = args.length - fixed.length;
    if (rest < 0 || (fields.length ? rest % fields.length !== 0 : rest !== 0)) {
      throw new Error(`${name}: ${args.length} arguments is not a complete call`);
    }
    if (spec.repeat) {
      const groups = rest / fields.length;
      const { min = 0, max = Infinity } = spec.repeat;
      if (groups < min || groups > max) {
        throw new Error(`${name}: ${groups} groups of (${fields.map((f) => f.name).join(", ")}), the manifest allows ${min}..${max}`);
      }
    }
  }
}

function checkValue(script: string, spec: ArgSpec, value: ArgValue): void {
  const where = `${script}: ${spec.name}`;
  if (spec.type === "int") {
    const n = typeof value === "number" ? value : Number(value.toString());
    if (!Number.isSafeInteger(n)) throw new Error(`${where} must be an integer, got ${value}`);
    if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
      throw new Error(`${where} = ${n} is outside ${spec.min ?? "-inf"}..${spec.max ?? "inf"} (manifest)`);
    }
  } else if (spec.type === "bytes") {
    const len = typeof value === "string" ? Buffer.byteLength(value) : Buffer.isBuffer(value) ? value.length : String(value).length;
    if ((spec.min !== undefined && len < spec.min) || (spec.max !== undefined && len > spec.max)) {
      throw new Error(`${where} is ${len} bytes, the manifest allows ${spec.min ?? 0}..${spec.max} bytes`);
    }
  } else if (typeof value !== "string") {
    throw new Error(`${where} must be a string, got ${typeof value}`);
  }
}
