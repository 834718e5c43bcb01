// What the scripts return about tasks: the record, a claimed task, a task's state.

/** The record's header fields (docs/contract.md, "The task record"); the payload follows them. */
export interface TaskRecord {
  used: number;
  base: number;
  strays: number;
  expiresMs: number;
  kind: string;
  priority: number;
  maxAttempts: number;
  backoff: string;
  backoffBaseMs: number;
  backoffCapMs: number;
  jitterPct: number;
  timeoutMs: number;
  resultTtlMs: number;
  createdMs: number;
  payload: Buffer;
}

const PIPE = 0x7c; // "|"

/** Split a record on its first 14 "|" (the payload may hold more). */
export function parseRecord(raw: Buffer): TaskRecord {
  const parts: string[] = [];
  let from = 0;
  for (let i = 0; i < 14; i++) {
    const at = raw.indexOf(PIPE, from);
    if (at < 0) throw new Error(`malformed task record: ${raw.subarray(0, 80).toString()}`);
    parts.push(raw.subarray(from, at).toString());
    from = at + 1;
  }
  const n = (i: number) => Number(parts[i]);
  return {
    used: n(0),
    base: n(1),
    strays: n(2),
    expiresMs: n(3),
    kind: parts[4],
    priority: n(5),
    maxAttempts: n(6),
    backoff: parts[7],
    backoffBaseMs: n(8),
    backoffCapMs: n(9),
    jitterPct: n(10),
    timeoutMs: n(11),
    resultTtlMs: n(12),
    createdMs: n(13),
    payload: raw.subarray(from),
  };
}

/** A task held under a lease by a worker. */
export class Claimed {
  readonly id: string;
  readonly token: string;
  readonly deadlineMs: number;
  /** Attempt number of maxAttempts since the last requeue (1 on the first run). */
  readonly attempt: number;
  /** The run's number over the task's life (never reset; events name runs by it). */
  readonly run: number;
  readonly kind: string;
  readonly priority: number;
  readonly maxAttempts: number;
  readonly timeoutMs: number;
  readonly resultTtlMs: number;
  readonly createdMs: number;
  readonly payload: Buffer;
  /** Aborted when the run must stop: lease lost, task cancelled, timeout or worker shutdown. */
  signal: AbortSignal = new AbortController().signal;
  /** @internal set by the Worker running the task */
  reporter?: (percent: number, message: string) => Promise<"stored" | "cancelled">;

  constructor(id: string, token: string, deadlineMs: number, record: Buffer) {
    const rec = parseRecord(record);
    this.id = id;
    this.token = token;
    this.deadlineMs = deadlineMs;
    this.attempt = rec.used - rec.base + 1;
    this.run = rec.used + 1;
    this.kind = rec.kind;
    this.priority = rec.priority;
    this.maxAttempts = rec.maxAttempts;
    this.timeoutMs = rec.timeoutMs;
    this.resultTtlMs = rec.resultTtlMs;
    this.createdMs = rec.createdMs;
    this.payload = rec.payload;
  }

  /** The payload as UTF-8 text. */
  text(): string {
    return this.payload.toString("utf8");
  }

  /** The payload parsed as JSON. */
  json<T = unknown>(): T {
    return JSON.parse(this.payload.toString("utf8")) as T;
  }

  /** From a handler run by Worker: report how far this run got (0-100) and a short note.
   * Rejects with StaleLease when the run lost its lease or the task was cancelled: stop then. */
  progress(percent: number, message = ""): Promise<"stored" | "cancelled"> {
    if (!this.reporter) {
      return Promise.reject(new Error("progress is reported by the Worker running this task; use Queue.progress otherwise"));
    }
    return this.reporter(percent, message);
  }
}

export type State = "pending" | "delayed" | "leased" | "done" | "dead" | "cancelled";

export interface Progress {
  percent: number;
  message: string;
  atMs: number;
  /** Whether the run holding the lease now sent it (false: an earlier run's, or the task ended). */
  currentRun: boolean;
}

/** One task as `get` shows it. */
export interface TaskInfo extends TaskRecord {
  id: string;
  state: State;
  /** Attempts charged since the last requeue. */
  attempts: number;
  lease: { token: string; worker: string } | null;
  /** The last failure's message, if any. */
  error: string | null;
  /** The result of a done task. */
  result: Buffer | null;
  progress: Progress | null;
}

/** A lifecycle event (docs/contract.md, "Events"). */
export interface BatonEvent {
  /** Stream id: resume after it with `events({ after })`. */
  id: string;
  type: string;
  atMs: number;
  worker: string;
  tasks: { id: string; run: number }[];
  detail: string | null;
}

export function parseEventTasks(x: string): { id: string; run: number }[] {
  if (!x) return [];
  return x.split(",").map((item) => {
    const at = item.lastIndexOf(":"); // ids may contain ":"
    return { id: item.slice(0, at), run: Number(item.slice(at + 1)) };
  });
}
