// A worker loop over the scripts: claim (or take) → start mark → handlers → complete/fail, with
// heartbeats for every lease held, wake-ups on pub/sub, and a graceful stop.
import { hostname } from "node:os";
import { Fatal, StaleLease } from "./errors.js";
import { newId } from "./ids.js";
import { type Claims, type Completion, type Payload, type Queue, toBytes } from "./queue.js";
import type { Claimed } from "./task.js";

/** A handler: gets the claimed task (payload, `signal`, `progress`) and returns the result
 * (bytes, text or JSON-able). Throwing fails the attempt (retried per the task's policy);
 * throwing `Fatal` sends the task to the dead-letter set at once. */
export type Handler = (task: Claimed) => Payload | Promise<Payload>;

export interface WorkerOptions {
  /** Handlers running at once (default 10). */
  concurrency?: number;
  /** How often leases are renewed (default 1 s, or a third of the queue's lease if shorter). */
  heartbeatMs?: number;
  /** Longest sleep between claims of an empty queue; a wake-up on pub/sub ends it sooner. */
  pollMs?: number;
  workerId?: string;
  /** A queue with `dispatch = "push"`: take assigned tasks instead of claiming. */
  push?: boolean;
  /** On stop, how long the tasks in flight may still run before their leases are released. */
  shutdownGraceMs?: number;
  /** Stop on SIGTERM and SIGINT (default true). */
  handleSignals?: boolean;
}

interface Running {
  token: string;
  abort: AbortController;
  done: Promise<void>;
}

/** Resolves every pending `wait` at once on `notify`. */
class Bell {
  private waiters: (() => void)[] = [];
  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** Sends completions in batches: one `complete` call for every result that finished while the
 * previous call was in flight (no added latency when idle, fewer calls under load). */
class Acks {
  private queued: { c: Completion; busyMs: number; settle: (ok: boolean | Error) => void }[] = [];
  private flushing = false;
  constructor(private readonly q: Queue, private readonly worker: string) {}

  complete(c: Completion, busyMs: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queued.push({ c, busyMs, settle: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.queued.length) {
      const batch = this.queued.splice(0, 1000);
      try {
        const busy = batch.reduce((s, b) => s + b.busyMs, 0);
        const ok = await this.q.completeMany(this.worker, batch.map((b) => b.c), busy);
        batch.forEach((b, i) => b.settle(ok[i]));
      } catch (e) {
        for (const b of batch) b.settle(e instanceof Error ? e : new Error(String(e)));
      }
    }
    this.flushing = false;
  }
}

/** Runs up to `concurrency` handlers at once on one queue, like baton-worker: heartbeats, start
 * marks, batched acknowledgements, progress, timeouts, and on SIGTERM/SIGINT (or `stop()`) no more
 * claims, `shutdownGraceMs` for the tasks in flight, then the leases of any still running
 * released (they run again elsewhere, not charged). A handler's `task.signal` aborts when its
 * lease was lost, its task cancelled, its timeout passed, or the grace ran out. */
export class Worker {
  readonly id: string;
  readonly concurrency: number;
  private readonly heartbeatMs: number;
  private readonly pollMs: number;
  private readonly push: boolean;
  private readonly graceMs: number;
  private readonly handleSignals: boolean;
  private readonly held = new Map<string, Running>();
  private readonly bell = new Bell();
  private readonly acks: Acks;
  private stopping = false;
  private finished = 0;
  private lastToken = 0;
  private gapFrom: number | null = null;

  constructor(readonly queue: Queue, readonly handlers: Record<string, Handler>, options: WorkerOptions = {}) {
    this.concurrency = options.concurrency ?? 10;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) throw new RangeError("concurrency must be an integer of at least 1");
    this.heartbeatMs = options.heartbeatMs ?? Math.max(1, Math.min(1000, Math.floor(queue.opts.leaseMs / 3)));
    this.pollMs = options.pollMs ?? 1000;
    this.push = options.push ?? false;
    this.graceMs = options.shutdownGraceMs ?? 30_000;
    this.handleSignals = options.handleSignals ?? true;
    this.id = options.workerId ?? `node-${process.pid}-${newId()}`;
    this.acks = new Acks(queue, this.id);
  }

  /** Stop claiming; `run` then drains and returns. */
  stop(): void {
    this.stopping = true;
    this.bell.notify();
  }

  private info(): object {
    return {
      host: hostname(), pid: process.pid, concurrency: this.concurrency, capacity: this.concurrency, weight: 1,
      kinds: Object.keys(this.handlers).sort(), language: "node", dispatch: this.push ? "push" : "pull",
    };
  }

  /** Process tasks until `stop()`, SIGTERM/SIGINT, `signal` aborts, or `maxTasks` have been
   * taken and finished. Returns how many tasks it finished (completed or failed). */
  async run(options: { signal?: AbortSignal; maxTasks?: number } = {}): Promise<number> {
    const { signal, maxTasks } = options;
    const onStop = () => this.stop();
    signal?.addEventListener("abort", onStop);
    if (signal?.aborted) this.stopping = true;
    if (this.handleSignals) {
      process.on("SIGTERM", onStop);
      process.on("SIGINT", onStop);
    }
    const q = this.queue;
    await q.register(this.id, this.info());
    const sub = q.redis.duplicate();
    sub.on("message", () => this.bell.notify()); // work arrived (pull) or was assigned (push)
    sub.on("error", () => {}); // reconnects by itself; claims go on by polling meanwhile
    await sub.subscribe(q.channels.wake);
    const hb = setInterval(() => void this.heartbeat().catch(() => {}), this.heartbeatMs);
    let taken = 0;
    try {
      while (!this.stopping && (maxTasks === undefined || taken < maxTasks)) {
        const free = this.concurrency - this.held.size;
        if (free <= 0) {
          await this.bell.wait(this.pollMs);
          continue;
        }
        const want = maxTasks === undefined ? free : Math.min(free, maxTasks - taken);
        let tasks: Claims;
        try {
          tasks = await (this.push ? q.take(this.id, want) : q.claim(this.id, want));
        } catch (e) {
          // the reply may be lost after the script ran: leases we never saw, below the next tokens
          this.gapFrom ??= this.lastToken;
          console.error(`baton worker ${this.id}: claim failed (${(e as Error).message}); retrying`);
          await this.bell.wait(this.pollMs);
          continue;
        }
        if (!tasks.length) {
          // held back by the rate limit: it says when the next task is admitted
          const w = tasks.waitMs;
          await this.bell.wait(w !== undefined && w > 0 ? Math.min(w, this.pollMs) : this.pollMs);
          continue;
        }
        taken += tasks.length;
        const tokens = tasks.map((t) => Number(t.token));
        const gaps: [number, number][] = this.gapFrom !== null ? [[this.gapFrom, Math.min(...tokens)]] : [];
        for (const t of tasks) this.hold(t);
        // every task of this reply starts now: one mark covers them all (docs/contract.md)
        this.lastToken = Math.max(this.lastToken, ...tokens);
        await q.start(this.id, this.lastToken, gaps).then(
          () => (this.gapFrom = null),
          () => {}, // no mark: an expired lease of these runs counts as a stray, the safe side
        );
        for (const t of tasks) this.launch(t);
      }
    } finally {
      await this.shutdown(maxTasks !== undefined && !this.stopping);
      clearInterval(hb);
      await sub.quit().catch(() => sub.disconnect());
      signal?.removeEventListener("abort", onStop);
      if (this.handleSignals) {
        process.off("SIGTERM", onStop);
        process.off("SIGINT", onStop);
      }
    }
    return this.finished;
  }

  private async shutdown(waitForAll: boolean): Promise<void> {
    const q = this.queue;
    await q.leave(this.id).catch(() => {}); // no more push assignments
    const running = [...this.held.values()].map((r) => r.done);
    if (running.length) {
      if (waitForAll) await Promise.all(running);
      else {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([Promise.all(running), new Promise((r) => (timer = setTimeout(r, this.graceMs)))]);
        clearTimeout(timer);
      }
    }
    const left = [...this.held.entries()].map(([id, r]) => ({ id, token: r.token }));
    for (const r of this.held.values()) r.abort.abort(new Error("worker shutting down: lease released"));
    if (left.length) await q.release(this.id, left).catch(() => {});
    await q.deregister(this.id).catch(() => {});
  }

  private async heartbeat(): Promise<void> {
    const held = [...this.held.entries()].map(([id, r]) => ({ id, token: r.token }));
    for (let i = 0; i === 0 || i < held.length; i += 1000) {
      const chunk = held.slice(i, i + 1000);
      const { registered, statuses } = await this.queue.heartbeat(this.id, chunk);
      if (!registered) await this.queue.register(this.id, this.info());
      chunk.forEach((l, k) => {
        const r = this.held.get(l.id);
        if (statuses[k] !== "renewed" && r && r.token === l.token) {
          r.abort.abort(new StaleLease(`task ${l.id}: lease ${statuses[k]}`));
        }
      });
    }
  }

  private hold(task: Claimed): void {
    const abort = new AbortController();
    task.signal = abort.signal;
    this.held.set(task.id, { token: task.token, abort, done: Promise.resolve() });
  }

  private launch(task: Claimed): void {
    const entry = this.held.get(task.id) as Running;
    entry.done = this.runOne(task, entry.abort).finally(() => {
      if (this.held.get(task.id)?.token === task.token) this.held.delete(task.id);
      this.bell.notify(); // a slot is free
    });
  }

  private async runOne(task: Claimed, abort: AbortController): Promise<void> {
    const q = this.queue;
    const started = Date.now();
    task.reporter = async (percent, message) => {
      const r = await q.progress(this.id, task, percent, message);
      if (r === "cancelled") abort.abort(new StaleLease(`task ${task.id} was cancelled`));
      return r;
    };
    let timer: NodeJS.Timeout | undefined;
    try {
      const handler = this.handlers[task.kind];
      if (!handler) throw new Error(`no handler for task kind ${JSON.stringify(task.kind)} on worker ${this.id} (queue ${q.name})`);
      const work = Promise.resolve().then(() => handler(task));
      const stopped = new Promise<never>((_, reject) => {
        const fail = () => reject(abort.signal.reason);
        if (abort.signal.aborted) fail();
        abort.signal.addEventListener("abort", fail, { once: true });
        if (task.timeoutMs > 0) {
          timer = setTimeout(() => abort.abort(new Error(`timed out after ${task.timeoutMs} ms`)), task.timeoutMs);
        }
      });
      stopped.catch(() => {});
      const result = await Promise.race([work, stopped]);
      const ok = await this.acks.complete({ id: task.id, token: task.token, resultTtlMs: task.resultTtlMs, result: toBytes(result) }, Date.now() - started);
      if (ok) this.finished++;
    } catch (e) {
      const reason = abort.signal.aborted ? abort.signal.reason : e;
      if (reason instanceof StaleLease || (abort.signal.aborted && this.stopping)) return; // another run owns it now
      const error = reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason);
      try {
        await q.fail(this.id, task, error, { retry: !(reason instanceof Fatal), busyMs: Date.now() - started });
        this.finished++;
      } catch (err) {
        if (!(err instanceof StaleLease)) console.error(`baton worker ${this.id}: fail of ${task.id} not sent: ${(err as Error).message}`);
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
