// The worker: concurrency, results, retries, heartbeats, lost leases, timeouts, graceful stop.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Queue, Worker, Fatal } from "../dist/index.js";
import { startRedis, sleep, eventually } from "./helpers.mjs";

let redis;
let n = 0;
before(async () => (redis = await startRedis()));
after(() => redis.stop());
const fresh = (opts = {}) => Queue.open(redis.client(), `w${++n}`, opts);
const quiet = { handleSignals: false, pollMs: 200 };

/** What baton-scheduler does, every 20 ms until the returned stop is called: reclaim expired
 * leases, promote due delayed tasks (the `promote` script: an operator call the client does
 * not wrap, sent through its checked call path). */
function maintenance(q) {
  let on = true;
  const loop = (async () => {
    while (on) {
      await q.reclaim(100);
      await q.call("promote", [["limit", 100]]);
      await sleep(20);
    }
  })();
  return async () => {
    on = false;
    await loop;
  };
}

test("runs up to `concurrency` handlers at once and stores each result", async () => {
  const q = await fresh();
  const ids = (await q.enqueueBatch(Array.from({ length: 40 }, (_, i) => ({ kind: "double", payload: { n: i } })))).map((e) => e.id);
  let running = 0;
  let most = 0;
  const w = new Worker(q, {
    double: async (task) => {
      running++;
      most = Math.max(most, running);
      await sleep(20);
      running--;
      return { n: task.json().n * 2 };
    },
  }, { ...quiet, concurrency: 8 });
  assert.equal(await w.run({ maxTasks: 40 }), 40);
  assert.equal(most, 8);
  for (const [i, id] of ids.entries()) {
    const t = await q.get(id);
    assert.equal(t.state, "done");
    assert.deepEqual(JSON.parse(t.result.toString()), { n: i * 2 });
  }
  assert.equal((await q.counts()).workers, 0, "deregistered");
});

test("a failing handler is retried by its policy; Fatal and an unknown kind go to the dead-letter set", async () => {
  const q = await fresh();
  const backoff = { kind: "f", baseMs: 1, capMs: 1, jitterPct: 0 };
  const flaky = await q.enqueue("flaky", "", { maxAttempts: 3, backoff });
  const fatal = await q.enqueue("fatal", "", { maxAttempts: 3 });
  const unknown = await q.enqueue("nobody-handles-this", "", { maxAttempts: 1 });
  let calls = 0;
  const w = new Worker(q, {
    flaky: () => {
      if (++calls < 3) throw new Error(`try ${calls}`);
      return "third time";
    },
    fatal: () => {
      throw new Fatal("bad payload");
    },
  }, quiet);
  const stopMaint = maintenance(q);
  const stop = new AbortController();
  const running = w.run({ signal: stop.signal });
  await eventually("all three finished", async () => ["done", "dead"].includes((await q.get(flaky.id)).state) && (await q.get(unknown.id)).state === "dead");
  stop.abort();
  await running;
  await stopMaint();
  assert.equal((await q.get(flaky.id)).state, "done");
  assert.equal(calls, 3);
  const f = await q.get(fatal.id);
  assert.equal(f.state, "dead");
  assert.equal(f.attempts, 1, "Fatal is not retried");
  assert.match(f.error, /Fatal: bad payload/);
  assert.match((await q.get(unknown.id)).error, /no handler for task kind "nobody-handles-this"/);
});

test("heartbeats keep a lease longer than the lease time; reclaim never takes it", async () => {
  const q = await fresh({ leaseMs: 300 });
  const { id } = await q.enqueue("slow", "x");
  const stopMaint = maintenance(q);
  const w = new Worker(q, { slow: async () => { await sleep(1200); return "kept"; } }, { ...quiet, heartbeatMs: 100 });
  assert.equal(await w.run({ maxTasks: 1 }), 1);
  await stopMaint();
  const t = await q.get(id);
  assert.equal(t.state, "done");
  assert.equal(t.attempts, 1, "one run");
  assert.equal((await q.counts()).expiredTotal, 0, "no lease expired");
  assert.equal(t.result.toString(), "kept");
});

test("a cancelled task's handler sees its signal abort, and its result is not stored", async () => {
  const q = await fresh({ leaseMs: 600 });
  const { id } = await q.enqueue("long", "x");
  let aborted = null;
  const w = new Worker(q, {
    long: (task) => new Promise((resolve) => {
      task.signal.addEventListener("abort", () => {
        aborted = task.signal.reason;
        resolve("too late");
      });
    }),
  }, { ...quiet, heartbeatMs: 50 });
  const stop = new AbortController();
  const running = w.run({ signal: stop.signal });
  await eventually("leased", async () => (await q.get(id)).state === "leased");
  await q.cancel(id);
  await eventually("the handler was told", async () => aborted !== null);
  stop.abort();
  await running;
  assert.match(String(aborted.message), /cancelled/);
  assert.equal((await q.get(id)).state, "cancelled");
});

test("a handler past the task's timeout is aborted and the attempt failed", async () => {
  const q = await fresh();
  const { id } = await q.enqueue("hang", "x", { timeoutMs: 100, maxAttempts: 1 });
  const w = new Worker(q, { hang: () => new Promise(() => {}) }, quiet);
  assert.equal(await w.run({ maxTasks: 1 }), 1);
  const t = await q.get(id);
  assert.equal(t.state, "dead");
  assert.match(t.error, /timed out after 100 ms/);
});

test("progress from a handler is stored under the lease", async () => {
  const q = await fresh();
  const { id } = await q.enqueue("p", "x");
  const w = new Worker(q, { p: async (task) => { await task.progress(64, "most"); return "ok"; } }, quiet);
  await w.run({ maxTasks: 1 });
  const t = await q.get(id);
  assert.equal(t.progress.percent, 64);
  assert.equal(t.progress.message, "most");
});

test("stop drains within the grace; past it, the leases of what still runs are released unrun-charged", async () => {
  for (const [graceMs, wantDone] of [[5000, true], [50, false]]) {
    const q = await fresh({ leaseMs: 1000 });
    const ids = (await q.enqueueBatch(Array.from({ length: 12 }, () => ({ kind: "sleepy", payload: "" })))).map((e) => e.id);
    const w = new Worker(q, { sleepy: async () => { await sleep(400); return "z"; } }, { ...quiet, concurrency: 4, shutdownGraceMs: graceMs });
    const running = w.run();
    await eventually("4 leased", async () => (await q.counts()).leased === 4);
    w.stop();
    const finished = await running;
    const states = await Promise.all(ids.map(async (id) => (await q.get(id))));
    const done = states.filter((t) => t.state === "done").length;
    const pending = states.filter((t) => t.state === "pending");
    assert.equal(done + pending.length, 12, "nothing lost or left leased");
    assert.ok(pending.every((t) => t.attempts === 0), "a released run is not charged");
    if (wantDone) {
      assert.equal(done, 4, "the 4 in flight finished");
      assert.equal(finished, 4);
    } else {
      assert.equal(done, 0, "released before finishing");
      assert.equal(pending.length, 12);
    }
    assert.equal((await q.counts()).workers, 0);
  }
});
