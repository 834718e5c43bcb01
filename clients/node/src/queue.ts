// One Baton queue: every operation is one call of one of Baton's Lua scripts, checked against
// the manifest before it is sent. No queue logic lives here.
import { createHash, randomInt } from "node:crypto";
import type { Redis } from "ioredis";
import { StaleLease, VersionMismatch, scriptError } from "./errors.js";
import { newId } from "./ids.js";
import { type Arg, type ArgValue, Scripts, fillPattern } from "./scripts.js";
import { type BatonEvent, Claimed, type State, type TaskInfo, parseEventTasks, parseRecord } from "./task.js";

/** A payload: bytes, text, or anything JSON.stringify takes. */
export type Payload = Buffer | Uint8Array | string | unknown;

export interface Backoff {
  /** "e" exponential (doubling from baseMs up to capMs) or "f" fixed. */
  kind: "e" | "f";
  baseMs: number;
  capMs: number;
  /** Share of each delay removed at random, 0-100. */
  jitterPct: number;
}

/** Defaults mirror Baton's `[defaults]` (config/baton.toml); a test holds them equal. */
export const DEFAULTS = {
  prefix: "baton",
  leaseMs: 4000,
  maxAttempts: 5,
  backoff: { kind: "e", baseMs: 1000, capMs: 600_000, jitterPct: 20 } as Backoff,
  timeoutMs: 1_800_000,
  resultTtlMs: 3_600_000,
  deadTtlMs: 7 * 86_400_000,
  idempotencyTtlMs: 86_400_000,
  uniqueTtlMs: 86_400_000,
  maxPayload: 1 << 20,
};

export interface QueueOptions extends Partial<typeof DEFAULTS> {
  scripts?: Scripts;
}

export interface TaskSpec {
  kind: string;
  payload: Payload;
  /** The task's id (default: a new ULID); a repeated id is a no-op. */
  id?: string;
  priority?: number;
  delayMs?: number;
  maxAttempts?: number;
  backoff?: Backoff;
  timeoutMs?: number;
  resultTtlMs?: number;
  /** A repeated key (within idempotencyTtlMs) returns the first task's id. */
  idempotencyKey?: string;
  idempotencyTtlMs?: number;
  /** Unique while active: an enqueue while the key's task is pending, delayed or running returns that task's id. */
  uniqueKey?: string;
  uniqueTtlMs?: number;
  /** Debounce: enqueues with the key within debounceMs replace the delayed task's payload and push it back, up to maxWaitMs. */
  debounceKey?: string;
  debounceMs?: number;
  maxWaitMs?: number;
  /** Throttle: at most one task per key per throttleMs; later enqueues return the first one's id. */
  throttleKey?: string;
  throttleMs?: number;
  /** No run starts later than this after now: the task goes to the dead-letter set unrun. */
  expiresInMs?: number;
  /** The task's group (tenant, customer, API key); on a fair queue the groups share the workers. */
  group?: string;
  /** What the task counts for under the rate limits of its queue and group (default 1). */
  cost?: number;
  /** Ids of tasks of this queue (or earlier in the batch) this task waits for. */
  after?: string[];
  /** With `after`: what a dependency that ended dead or cancelled does (default "fail"). */
  onFailure?: "fail" | "continue" | "ignore";
}

/** One dependency of a task, as the `dependencies` script reports it. */
export interface Dependency {
  id: string;
  state: "done" | "dead" | "cancelled" | "waiting";
  /** Its result when done. */
  result: Buffer | null;
  /** Its last error message when dead or cancelled. */
  error: string | null;
}

/** What enqueue did with one task (the script's `created` code). */
export type EnqueueStatus = "created" | "duplicate" | "forgotten" | "unique" | "debounced";
const ENQUEUE_STATUS: EnqueueStatus[] = ["duplicate", "created", "forgotten", "unique", "debounced"];

export interface Enqueued {
  id: string;
  created: boolean;
  status: EnqueueStatus;
}

export type HeartbeatStatus = "renewed" | "lost" | "cancelled";

export interface Counts {
  pending: number;
  delayed: number;
  leased: number;
  done: number;
  dead: number;
  cancelled: number;
  paused: number;
  workers: number;
  completedTotal: number;
  failedTotal: number;
  deadTotal: number;
  expiredTotal: number;
  enqueuedTotal: number;
  retriedTotal: number;
  agingMs: number;
  lapsedTotal: number;
  /** The rate limit: µs between two tasks (0 = none). */
  rateIntervalUs: number;
  burst: number;
  /** The concurrency cap (0 = none). */
  concurrency: number;
  /** Leases whose deadline has not passed: what the concurrency cap counts. */
  running: number;
  /** What holds the queue back now: 0 nothing, 1 the rate limit, 2 the concurrency cap. */
  held: number;
  heldRateTotal: number;
  heldConcurrencyTotal: number;
  /** Times a group was parked by its own rate limit, or by its own cap. */
  heldGroupRateTotal: number;
  heldGroupConcurrencyTotal: number;
  /** The queue's defaults for its groups: cap, rate (µs between tasks) and burst; 0 = none. */
  groupConcurrency: number;
  groupRateIntervalUs: number;
  groupBurst: number;
}

/** One group of a queue (fair queueing). */
export interface GroupInfo {
  name: string;
  /** Pending tasks of the group (0 on a fifo queue, which keeps no per-group order). */
  backlog: number;
  weight: number;
  /** The group's place in the fair order (lowest served next); null when not ready. */
  virtualTime: number | null;
  /** Its concurrency cap (its own or the queue's group_concurrency); null: none. */
  concurrency: number | null;
  /** Its live leases (counted when it has a cap). */
  running: number;
  /** Parked by a limit of its own: Redis ms when it is looked at again at the latest; null: not parked. */
  parkedUntilMs: number | null;
  /** Its rate limit (its own or the queue's group_rate) as µs between two tasks; null: none. */
  rateIntervalUs: number | null;
  burst: number;
  /** The limit that parked it ("group_rate" or "group_concurrency"); null when not parked. */
  heldBy: string | null;
}

/** Tasks a claim (or take) handed out. `waitMs` says whether the queue's limits held the call
 * back while tasks were pending: undefined (they did not), ms until the rate limit admits more,
 * or -1 when the concurrency cap is full (the end of a lease wakes workers). */
export type Claims = Claimed[] & { waitMs?: number };

/** A lease as acknowledged: the task id and the token it was claimed with. */
export interface LeaseRef {
  id: string;
  token: string;
}

export interface Completion extends LeaseRef {
  resultTtlMs: number;
  result?: Buffer | string;
}

export type Outcome =
  | { state: "done"; result: Buffer }
  | { state: "dead"; error: string | null }
  | { state: "cancelled" };

const str = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString("utf8") : String(v ?? ""));
const int = (v: unknown): number => (typeof v === "number" ? v : Number(str(v)));

/** Payload bytes: Buffer and Uint8Array as they are, a string as UTF-8, anything else as JSON. */
export function toBytes(v: Payload): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === "string") return Buffer.from(v, "utf8");
  if (v === undefined || v === null) return Buffer.alloc(0);
  return Buffer.from(JSON.stringify(v), "utf8");
}

function taskOptions(t: TaskSpec, uniqueTtlMs: number): string {
  const o: string[] = [];
  if (t.uniqueKey !== undefined) o.push(`unique_ttl_ms=${Math.trunc(uniqueTtlMs)}`);
  if (t.debounceKey !== undefined) {
    if (!t.debounceMs) throw new RangeError("debounceKey needs debounceMs (> 0)");
    o.push(`debounce_ms=${Math.trunc(t.debounceMs)},max_wait_ms=${Math.trunc(t.maxWaitMs ?? t.debounceMs)}`);
  }
  if (t.expiresInMs) o.push(`expires_in_ms=${Math.trunc(t.expiresInMs)}`);
  if (t.group) o.push(`group=${t.group}`);
  if (t.cost !== undefined && t.cost !== 1) o.push(`cost=${Math.trunc(t.cost)}`);
  if (t.after && t.after.length) o.push(`after=${t.after.join("+")},on_failure=${t.onFailure ?? "fail"}`);
  return o.join(",");
}

/** One Baton queue on an ioredis connection. Make it with `await Queue.open(redis, name)`. */
export class Queue {
  readonly redis: Redis;
  readonly name: string;
  readonly scripts: Scripts;
  readonly keys: string[];
  readonly opts: typeof DEFAULTS;
  readonly channels: { wake: string; fin: string; events: string };
  private readonly shas = new Map<string, string>();
  private finSub?: Redis;
  private finWaiters = new Map<string, Set<() => void>>();

  /** Prefer `Queue.open`, which also checks the queue's schema version. */
  constructor(redis: Redis, name: string, options: QueueOptions = {}) {
    const { scripts, ...rest } = options;
    this.redis = redis;
    this.name = name;
    this.scripts = scripts ?? Scripts.load();
    this.opts = { ...DEFAULTS, ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) };
    const m = this.scripts.manifest;
    const at = { prefix: this.opts.prefix, queue: name };
    this.keys = m.keyset.map((role) => fillPattern(m.key_pattern, { ...at, role }));
    this.channels = {
      wake: fillPattern(m.channels.wake, at),
      fin: fillPattern(m.channels.fin, at),
      events: fillPattern(m.channels.events, at),
    };
    for (const [n, body] of this.scripts.bodies) this.shas.set(n, createHash("sha1").update(body).digest("hex"));
  }

  /** The queue, after checking that it holds no data of another schema version than these
   * scripts (a queue not created yet passes). Every script checks again on every call. */
  static async open(redis: Redis, name: string, options: QueueOptions = {}): Promise<Queue> {
    const q = new Queue(redis, name, options);
    await q.checkVersion();
    return q;
  }

  async checkVersion(): Promise<void> {
    const have = await this.redis.hget(this.keys[0], "v");
    const want = this.scripts.manifest.schema_version;
    if (have !== null && have !== want) {
      throw new VersionMismatch(
        "VERSION",
        `queue ${this.keys[0]} has data schema v${have} but these scripts are v${want}; run a baton release whose scripts match the queue (see docs/contract.md)`,
      );
    }
  }

  /** Run one script: check the call against the manifest, EVALSHA it (loading it on NOSCRIPT),
   * map the contract's error codes to classes. */
  async call(name: string, args: Arg[], extraKeys: string[] = []): Promise<unknown> {
    this.scripts.check(name, args);
    const sha = this.shas.get(name) as string;
    const keys = extraKeys.length ? this.keys.concat(extraKeys) : this.keys;
    const values: ArgValue[] = args.map(([, v]) => v);
    try {
      return await this.redis.callBuffer("EVALSHA", sha, keys.length, ...keys, ...values);
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith("NOSCRIPT")) throw scriptError(e);
    }
    // not in the script cache (Redis restarted, failed over, flushed): the script did not run
    await this.redis.script("LOAD", this.scripts.bodies.get(name) as string);
    try {
      return await this.redis.callBuffer("EVALSHA", sha, keys.length, ...keys, ...values);
    } catch (e) {
      throw scriptError(e);
    }
  }

  // ---- producer ----

  /** Enqueue one task. */
  async enqueue(kind: string, payload: Payload, options: Omit<TaskSpec, "kind" | "payload"> = {}): Promise<Enqueued> {
    return (await this.enqueueBatch([{ ...options, kind, payload }]))[0];
  }

  /** Enqueue 1..1000 tasks atomically: all or none. */
  async enqueueBatch(tasks: TaskSpec[]): Promise<Enqueued[]> {
    const o = this.opts;
    const args: Arg[] = [["max_payload", o.maxPayload], ["n", tasks.length]];
    const extra: string[] = [];
    const patterns = this.scripts.spec("enqueue").extra_keys as Record<string, string>;
    const keyOf = (pattern: string, key: string) => fillPattern(pattern, { prefix: o.prefix, queue: this.name, key });
    for (let t of tasks) {
      if (t.throttleKey !== undefined) {
        if (t.idempotencyKey !== undefined || !t.throttleMs) {
          throw new RangeError("throttleKey needs throttleMs (> 0) and no idempotencyKey: it is one");
        }
        t = { ...t, idempotencyKey: `throttle:${t.throttleKey}`, idempotencyTtlMs: t.throttleMs };
      }
      const bo = t.backoff ?? o.backoff;
      if (t.idempotencyKey !== undefined) extra.push(keyOf(patterns.pattern, t.idempotencyKey));
      if (t.uniqueKey !== undefined) extra.push(keyOf(patterns.unique_pattern, t.uniqueKey));
      if (t.debounceKey !== undefined) extra.push(keyOf(patterns.debounce_pattern, t.debounceKey));
      args.push(
        ["id", t.id ?? newId()],
        ["kind", t.kind],
        ["payload", toBytes(t.payload)],
        ["priority", t.priority ?? 0],
        ["delay_ms", Math.trunc(t.delayMs ?? 0)],
        ["max_attempts", t.maxAttempts ?? o.maxAttempts],
        ["backoff", bo.kind],
        ["backoff_base_ms", bo.baseMs],
        ["backoff_cap_ms", bo.capMs],
        ["jitter_pct", bo.jitterPct],
        ["timeout_ms", t.timeoutMs ?? o.timeoutMs],
        ["result_ttl_ms", t.resultTtlMs ?? o.resultTtlMs],
        ["idem_ttl_ms", t.idempotencyKey !== undefined ? (t.idempotencyTtlMs ?? o.idempotencyTtlMs) : 0],
        ["options", taskOptions(t, t.uniqueTtlMs ?? o.uniqueTtlMs)],
      );
    }
    const reply = (await this.call("enqueue", args, extra)) as unknown[];
    const out: Enqueued[] = [];
    for (let i = 0; i < reply.length; i += 2) {
      const code = int(reply[i + 1]);
      out.push({ id: str(reply[i]), created: code === 1, status: ENQUEUE_STATUS[code] });
    }
    return out;
  }

  /** A task's dependencies with how each ended and its result or last error, in one call. */
  async dependencies(id: string): Promise<Dependency[]> {
    const r = (await this.call("dependencies", [["id", id]])) as unknown[];
    const out: Dependency[] = [];
    for (let i = 0; i < r.length; i += 3) {
      const state = str(r[i + 1]) as Dependency["state"];
      const val = r[i + 2] as Buffer;
      const failed = (state === "dead" || state === "cancelled") && val.length > 0;
      out.push({
        id: str(r[i]), state, result: state === "done" ? val : null,
        error: failed ? val.toString("utf8").split("|").slice(2).join("|") : null,
      });
    }
    return out;
  }

  /** One task's state, record, attempts, lease, last error, result and progress; null when unknown. */
  async get(id: string): Promise<TaskInfo | null> {
    const reply = (await this.call("get", [["id", id]])) as unknown[];
    if (!reply || reply.length === 0) return null;
    const [state, record, attempts, lease, , error, result, progress] = reply;
    const leaseText = str(lease);
    const bar = leaseText.indexOf("|");
    const held = leaseText ? { token: leaseText.slice(0, bar), worker: leaseText.slice(bar + 1) } : null;
    const errText = str(error);
    let prog: TaskInfo["progress"] = null;
    if (Buffer.isBuffer(progress) && progress.length) {
      const parts = progress.toString("utf8").split("|");
      prog = {
        percent: Number(parts[1]),
        atMs: Number(parts[2]),
        message: parts.slice(4).join("|"),
        currentRun: held !== null && held.token === parts[0],
      };
    }
    return {
      ...parseRecord(record as Buffer),
      id,
      state: str(state) as State,
      attempts: int(attempts),
      lease: held,
      error: errText ? errText.split("|").slice(2).join("|") : null,
      result: str(state) === "done" ? ((result as Buffer) ?? Buffer.alloc(0)) : null,
      progress: prog,
    };
  }

  /** Wait until the task finishes (woken by the queue's `fin` channel, re-read at least every
   * second). Rejects with a timeout error, or for an unknown task. */
  async wait(id: string, timeoutMs = 30_000): Promise<Outcome> {
    const deadline = Date.now() + timeoutMs;
    await this.subscribeFin();
    let wake: () => void = () => {};
    const waiters = this.finWaiters.get(id) ?? new Set();
    this.finWaiters.set(id, waiters);
    try {
      for (;;) {
        const woken = new Promise<void>((resolve) => {
          wake = resolve;
          waiters.add(resolve);
        });
        const t = await this.get(id);
        if (!t) throw new Error(`no task ${id} on queue ${this.name}`);
        if (t.state === "done") return { state: "done", result: t.result as Buffer };
        if (t.state === "dead") return { state: "dead", error: t.error };
        if (t.state === "cancelled") return { state: "cancelled" };
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`task ${id} still ${t.state} after ${timeoutMs} ms`);
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([woken, new Promise<void>((r) => (timer = setTimeout(r, Math.min(left, 1000))))]);
        clearTimeout(timer);
        waiters.delete(wake);
      }
    } finally {
      waiters.delete(wake);
      if (waiters.size === 0) this.finWaiters.delete(id);
    }
  }

  private async subscribeFin(): Promise<void> {
    if (this.finSub) return;
    const sub = this.redis.duplicate();
    this.finSub = sub;
    sub.on("messageBuffer", (_channel: Buffer, message: Buffer) => {
      for (const id of message.toString("utf8").split(",")) {
        for (const w of this.finWaiters.get(id) ?? []) w();
      }
    });
    await sub.subscribe(this.channels.fin);
  }

  /** Cancel pending, delayed or leased tasks; returns the state each was in, or null. */
  async cancel(...ids: string[]): Promise<(State | null)[]> {
    const reply = (await this.call("cancel", [["ttl_ms", this.opts.deadTtlMs], ...ids.map((i): Arg => ["id", i])])) as unknown[];
    return reply.map((s) => (str(s) || null) as State | null);
  }

  /** A group's weight under fair queueing (1..10000; 0 = back to the default, 1), at run time.
   * Returns the weight it had. */
  async setGroupWeight(group: string, weight: number): Promise<number> {
    const r = (await this.call("group_set", [["group", group], ["field", "weight"], ["value", weight]])) as unknown[];
    return int(r[0]);
  }

  /** A group's own cap on running tasks (0 = none, even under the queue's group_concurrency), at
   * run time. Returns its own cap before (null: it had none). */
  async setGroupConcurrency(group: string, cap: number): Promise<number | null> {
    const r = (await this.call("group_set", [["group", group], ["field", "concurrency"], ["value", cap]])) as unknown[];
    const c = int(r[1]);
    return c >= 0 ? c : null;
  }

  /** A group's own rate limit as µs between two of its tasks (0 = none, even under the queue's
   * group_rate; 10/s = 100000), at run time. Returns its own rate before (null: it had none). */
  async setGroupRate(group: string, intervalUs: number): Promise<number | null> {
    const r = (await this.call("group_set", [["group", group], ["field", "rate"], ["value", intervalUs]])) as unknown[];
    const c = int(r[2]);
    return c >= 0 ? c : null;
  }

  /** The burst of a group's own rate limit (1..1000000). Returns its own burst before (null: none). */
  async setGroupBurst(group: string, burst: number): Promise<number | null> {
    const r = (await this.call("group_set", [["group", group], ["field", "burst"], ["value", burst]])) as unknown[];
    const c = int(r[3]);
    return c >= 0 ? c : null;
  }

  /** The queue's groups: those with pending tasks (fair queues; next served first), then those
   * parked by a limit of their own, then those with settings. */
  async groups(limit = 50): Promise<GroupInfo[]> {
    const r = (await this.call("groups", [["limit", limit]])) as unknown[];
    const out: GroupInfo[] = [];
    for (let i = 0; i < r.length; i += 10) {
      const vt = str(r[i + 3]);
      const cap = int(r[i + 4]);
      const parked = int(r[i + 6]);
      const rate = int(r[i + 7]);
      out.push({
        name: str(r[i]), backlog: int(r[i + 1]), weight: int(r[i + 2]), virtualTime: vt === "" ? null : Number(vt),
        concurrency: cap >= 0 ? cap : null, running: int(r[i + 5]), parkedUntilMs: parked > 0 ? parked : null,
        rateIntervalUs: rate > 0 ? rate : null, burst: int(r[i + 8]), heldBy: str(r[i + 9]) || null,
      });
    }
    return out;
  }

  /** Tasks per state set and the queue's totals. */
  async counts(): Promise<Counts> {
    const r = ((await this.call("counts", [])) as unknown[]).map(int);
    const names: (keyof Counts)[] = [
      "pending", "delayed", "leased", "done", "dead", "cancelled", "paused", "workers", "completedTotal",
      "failedTotal", "deadTotal", "expiredTotal", "enqueuedTotal", "retriedTotal", "agingMs", "lapsedTotal",
      "rateIntervalUs", "burst", "concurrency", "running", "held", "heldRateTotal", "heldConcurrencyTotal",
      "heldGroupRateTotal", "heldGroupConcurrencyTotal", "groupConcurrency", "groupRateIntervalUs", "groupBurst",
    ];
    return Object.fromEntries(names.map((n, i) => [n, r[i]])) as unknown as Counts;
  }

  /** Store the queue settings the scripts read (as baton-worker and baton-scheduler do at start
   * from `[queues.Q]`). Returns the dispatch mode stored before ("" for a new queue). */
  async configure(
    settings: {
      eventsMaxLen?: number;
      dispatch?: "pull" | "push";
      agingMs?: number;
      /** Rate limit: µs between two tasks (200/s = 5000); 0 = none. */
      rateIntervalUs?: number;
      burst?: number;
      /** Most leases alive at once on the queue; 0 = no cap. */
      concurrency?: number;
      /** "fifo" (priority, then first in first out) or "fair" (weighted fair queueing across groups). */
      fairness?: "fifo" | "fair";
      /** On a fair queue, most running tasks per group; 0 = none. */
      groupConcurrency?: number;
      /** On a fair queue, every group's rate limit: µs between two of its tasks; 0 = none. */
      groupRateIntervalUs?: number;
      groupBurst?: number;
    } = {},
  ): Promise<string> {
    const {
      eventsMaxLen = 10_000, dispatch = "pull", agingMs = 0, rateIntervalUs = 0, burst = 1, concurrency = 0, fairness = "fifo",
      groupConcurrency = 0, groupRateIntervalUs = 0, groupBurst = 1,
    } = settings;
    return str(
      await this.call("configure", [
        ["events_max_len", eventsMaxLen], ["dispatch", dispatch], ["aging_ms", agingMs],
        ["rate_interval_us", rateIntervalUs], ["burst", burst], ["concurrency", concurrency], ["fairness", fairness],
        ["group_concurrency", groupConcurrency], ["group_rate_interval_us", groupRateIntervalUs], ["group_burst", groupBurst],
      ]),
    );
  }

  /** Lifecycle events from the queue's stream, oldest first, after `after` (a stream id; "0"
   * for all still kept, "$" for new ones only), until `signal` aborts. Uses its own connection. */
  async *events(options: { after?: string; signal?: AbortSignal; blockMs?: number } = {}): AsyncGenerator<BatonEvent> {
    const stream = this.keys[this.scripts.manifest.keyset.indexOf(this.scripts.manifest.events.stream_role)];
    const conn = this.redis.duplicate();
    let after = options.after ?? "0";
    const onAbort = () => conn.disconnect();
    options.signal?.addEventListener("abort", onAbort);
    try {
      while (!options.signal?.aborted) {
        let reply: [string, [string, string[]][]][] | null;
        try {
          reply = (await conn.xread("COUNT", 100, "BLOCK", options.blockMs ?? 1000, "STREAMS", stream, after)) as typeof reply;
        } catch (e) {
          if (options.signal?.aborted) return;
          throw e;
        }
        for (const [, entries] of reply ?? []) {
          for (const [id, fields] of entries) {
            after = id;
            const f: Record<string, string> = {};
            for (let i = 0; i < fields.length; i += 2) f[fields[i]] = fields[i + 1];
            yield { id, type: f.e, atMs: Number(f.t), worker: f.w ?? "", tasks: parseEventTasks(f.x ?? ""), detail: f.d ?? null };
          }
        }
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      conn.disconnect();
    }
  }

  /** Close the connections this queue opened itself (the result waiters'); not `redis`. */
  async close(): Promise<void> {
    const sub = this.finSub;
    this.finSub = undefined;
    if (sub) await sub.quit().catch(() => sub.disconnect());
  }

  // ---- worker side ----

  /** Enter the queue's worker registry with a JSON-able description. */
  async register(worker: string, info: object): Promise<void> {
    await this.call("register", [["worker", worker], ["info", JSON.stringify(info)]]);
  }

  /** Shutdown begins: no more push assignments; untaken ones go back to pending. */
  async leave(worker: string): Promise<void> {
    while (int(await this.call("deregister", [["worker", worker], ["mode", "leave"]])) >= 1000);
  }

  /** Leave the registry (after the worker's last lease ended). */
  async deregister(worker: string): Promise<boolean> {
    return int(await this.call("deregister", [["worker", worker], ["mode", "final"]])) === 1;
  }

  /** Claim up to n pending tasks under a lease. */
  async claim(worker: string, n = 1): Promise<Claims> {
    return parseClaimed(await this.call("claim", this.leaseArgs(worker, n)));
  }

  /** Push queues: take up to n tasks the dispatcher assigned to `worker`. */
  async take(worker: string, n = 1): Promise<Claims> {
    return parseClaimed(await this.call("take", this.leaseArgs(worker, n)));
  }

  private leaseArgs(worker: string, n: number): Arg[] {
    return [["worker", worker], ["n", n], ["lease_ms", this.opts.leaseMs], ["dead_ttl_ms", this.opts.deadTtlMs]];
  }

  /** Renew leases (also the worker's liveness when it holds none). */
  async heartbeat(worker: string, leases: LeaseRef[]): Promise<{ registered: boolean; statuses: HeartbeatStatus[] }> {
    const args: Arg[] = [["worker", worker], ["lease_ms", this.opts.leaseMs]];
    for (const l of leases) args.push(["id", l.id], ["token", l.token]);
    const reply = ((await this.call("heartbeat", args)) as unknown[]).map(int);
    const names: Record<number, HeartbeatStatus> = { 1: "renewed", 2: "cancelled" };
    return { registered: reply[0] === 1, statuses: reply.slice(1).map((s) => names[s] ?? "lost") };
  }

  /** Mark every lease `worker` holds with a token up to `token` as started (docs/contract.md,
   * "Start marks"); `gaps` are token ranges (lo, hi) of claims whose reply was lost. */
  async start(worker: string, token: number | string, gaps: [number, number][] = []): Promise<number> {
    const args: Arg[] = [["worker", worker], ["token", Number(token)]];
    for (const [lo, hi] of gaps) args.push(["lo", lo], ["hi", hi]);
    return int(await this.call("start", args));
  }

  /** Report a running task's progress under its lease: percent 0-100 and a short note (cut to
   * the manifest's bound). Rejects with StaleLease when the lease is gone. */
  async progress(worker: string, lease: LeaseRef, percent: number, message = ""): Promise<"stored" | "cancelled"> {
    const max = this.scripts.argMax("progress", "message");
    let note = Buffer.from(message, "utf8");
    if (note.length > max) note = note.subarray(0, max);
    const reply = int(
      await this.call("progress", [
        ["worker", worker], ["id", lease.id], ["token", lease.token],
        ["percent", Math.max(0, Math.min(100, Math.round(percent)))], ["message", note],
      ]),
    );
    if (reply === 0) throw new StaleLease(`task ${lease.id}: the lease is not held by ${worker} any more`);
    return reply === 1 ? "stored" : "cancelled";
  }

  /** Acknowledge tasks with their results (1..1000 in one call); per task true = completed,
   * false = stale (the lease was not held any more: the result was refused). */
  async completeMany(worker: string, done: Completion[], busyMs = 0): Promise<boolean[]> {
    const args: Arg[] = [["worker", worker], ["busy_ms", Math.max(0, Math.round(busyMs))]];
    for (const c of done) {
      args.push(["id", c.id], ["token", c.token], ["result_ttl_ms", c.resultTtlMs], ["result", toBytes(c.result ?? "")]);
    }
    return ((await this.call("complete", args)) as unknown[]).map((s) => int(s) === 1);
  }

  /** Acknowledge one claimed task with its result; rejects with StaleLease if the lease is gone. */
  async complete(worker: string, task: Claimed, result: Payload = "", busyMs = 0): Promise<void> {
    const [ok] = await this.completeMany(worker, [{ id: task.id, token: task.token, resultTtlMs: task.resultTtlMs, result: toBytes(result) }], busyMs);
    if (!ok) throw new StaleLease(`task ${task.id}: the lease is not held by ${worker} any more`);
  }

  /** Report a failed attempt: "retrying" (after the task's backoff) or "dead"; `retry: false`
   * sends it to the dead-letter set now. Rejects with StaleLease if the lease is gone. */
  async fail(worker: string, lease: LeaseRef, error: string, options: { retry?: boolean; busyMs?: number } = {}): Promise<"retrying" | "dead"> {
    // jitter's randomness comes from the caller (the scripts never use math.random)
    const mode = options.retry === false ? "final" : `r:${(randomInt(1_000_000) / 1_000_000).toFixed(6)}`;
    const reply = (await this.call("fail", [
      ["worker", worker], ["dead_ttl_ms", this.opts.deadTtlMs], ["busy_ms", Math.max(0, Math.round(options.busyMs ?? 0))],
      ["id", lease.id], ["token", lease.token], ["error", error.slice(0, 8192)], ["mode", mode],
    ])) as unknown[];
    const code = int(reply[0]);
    if (code === 0) throw new StaleLease(`task ${lease.id}: the lease is not held by ${worker} any more`);
    return code === 1 ? "retrying" : "dead";
  }

  /** Give leases back unrun (shutdown): they go back to pending without charging an attempt.
   * Returns how many were released. */
  async release(worker: string, leases: LeaseRef[]): Promise<number> {
    let released = 0;
    for (let i = 0; i < leases.length; i += 1000) {
      const args: Arg[] = [["worker", worker]];
      for (const l of leases.slice(i, i + 1000)) args.push(["id", l.id], ["token", l.token]);
      released += ((await this.call("release", args)) as unknown[]).filter((s) => int(s) === 1).length;
    }
    return released;
  }

  /** Take back expired leases (maintenance; baton-scheduler does it): [requeued, dead]. */
  async reclaim(limit = 100): Promise<[number, number]> {
    const reply = (await this.call("reclaim", [
      ["limit", limit], ["dead_ttl_ms", this.opts.deadTtlMs], ["worker_ttl_ms", this.opts.leaseMs * 3],
    ])) as unknown[];
    return [int(reply[0]), int(reply[1])];
  }
}

function parseClaimed(reply: unknown): Claims {
  const r = [...(reply as unknown[])];
  const out: Claims = [];
  // the queue's limits held the call back: the wait ends the reply (4k + 1 values)
  if (r.length % 4 === 1) out.waitMs = int(r.pop());
  for (let i = 0; i < r.length; i += 4) out.push(new Claimed(str(r[i]), str(r[i + 1]), int(r[i + 2]), r[i + 3] as Buffer));
  return out;
}
