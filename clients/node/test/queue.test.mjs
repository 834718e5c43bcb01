// The producer side and the lease rules, against a private redis-server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Queue, BadArgument, PayloadTooLarge, VersionMismatch, StaleLease } from "../dist/index.js";
import { startRedis, sleep } from "./helpers.mjs";

let redis;
let n = 0;
before(async () => (redis = await startRedis()));
after(() => redis.stop());
const fresh = (opts = {}) => Queue.open(redis.client(), `q${++n}`, opts);

test("a batch is enqueued whole, payload bytes kept exactly", async () => {
  const q = await fresh();
  const bytes = Buffer.from([0, 1, 124, 255, 10]);
  const out = await q.enqueueBatch([
    { kind: "a", payload: bytes, priority: 7 },
    { kind: "b", payload: { x: [1, 2] }, delayMs: 60_000 },
    { kind: "c", payload: "text|with|bars" },
  ]);
  assert.equal(out.length, 3);
  const [a, b, c] = await Promise.all(out.map((e) => q.get(e.id)));
  assert.deepEqual(a.payload, bytes);
  assert.equal(a.priority, 7);
  assert.equal(a.state, "pending");
  assert.equal(b.state, "delayed");
  assert.deepEqual(JSON.parse(b.payload.toString()), { x: [1, 2] });
  assert.equal(c.payload.toString(), "text|with|bars");
  assert.equal(await q.get("no-such-task"), null);
});

test("bad input is refused with the contract's errors and nothing is written", async () => {
  const q = await fresh({ maxPayload: 10 });
  await assert.rejects(
    q.enqueueBatch([{ kind: "ok", payload: "fine" }, { kind: "big", payload: "x".repeat(11) }]),
    (e) => e instanceof PayloadTooLarge && e.code === "TOOLARGE",
  );
  await assert.rejects(q.enqueue("", "p"), (e) => e instanceof BadArgument && /kind/.test(e.message));
  assert.equal((await q.counts()).enqueuedTotal, 0);
  assert.equal((await q.counts()).pending, 0);
  // out of the manifest's bounds: refused before it is sent
  await assert.rejects(q.enqueue("k", "p", { priority: 1001 }), /priority = 1001 is outside/);
});

test("a stale token is refused for complete, fail, heartbeat and progress; the new run keeps its lease", async () => {
  const q = await fresh({ leaseMs: 100 });
  const { id } = await q.enqueue("k", "x");
  const [zombie] = await q.claim("w-old", 1);
  await q.start("w-old", zombie.token);
  await sleep(150);
  assert.deepEqual(await q.reclaim(10), [1, 0]);
  const [fresh2] = await q.claim("w-new", 1);
  assert.equal(fresh2.id, id);
  assert.equal(fresh2.attempt, 2);
  await assert.rejects(q.complete("w-old", zombie, "zombie"), StaleLease);
  await assert.rejects(q.fail("w-old", zombie, "zombie"), StaleLease);
  await assert.rejects(q.progress("w-old", zombie, 99), StaleLease);
  // the old token under the new worker's name is stale too
  await assert.rejects(q.complete("w-new", zombie, "zombie"), StaleLease);
  assert.deepEqual((await q.heartbeat("w-old", [zombie])).statuses, ["lost"]);
  const t = await q.get(id);
  assert.equal(t.state, "leased");
  assert.equal(t.lease.worker, "w-new");
  assert.equal(t.progress, null);
  await q.complete("w-new", fresh2, "right");
  assert.deepEqual(await q.wait(id, 1000), { state: "done", result: Buffer.from("right") });
  await q.close();
});

test("a group's own rate and the tasks' costs bind a claim", async () => {
  const q = await fresh();
  await q.configure({ fairness: "fair" });
  await q.setGroupRate("metered", 500_000); // 2/s
  await q.setGroupBurst("metered", 4);
  await q.enqueueBatch(Array.from({ length: 5 }, (_, i) => ({ kind: "k", payload: `m${i}`, group: "metered", cost: 2 })));
  await q.enqueueBatch(Array.from({ length: 5 }, (_, i) => ({ kind: "k", payload: `o${i}`, group: "other" })));
  const got = await q.claim("w", 10);
  const metered = got.filter((c) => c.payload.toString().startsWith("m")).length;
  // a burst of 4 units: two tasks of cost 2, then the group is parked; the other group goes on
  assert.deepEqual([metered, got.length - metered], [2, 5]);
  const g = (await q.groups(10)).find((x) => x.name === "metered");
  assert.equal(g.heldBy, "group_rate");
  assert.equal((await q.counts()).heldGroupRateTotal, 1);
});

test("a version mismatch is refused at open and by every script", async () => {
  const q = await fresh();
  await q.enqueue("k", "x");
  await q.redis.hset(q.keys[0], "v", "99");
  await assert.rejects(Queue.open(q.redis, q.name), (e) => e instanceof VersionMismatch && /has data schema v99 but these scripts are v/.test(e.message));
  await assert.rejects(q.enqueue("k", "y"), (e) => e instanceof VersionMismatch && e.code === "VERSION");
  await assert.rejects(q.counts(), VersionMismatch);
});

test("wait is woken by the fin channel, reports dead and cancelled, and times out", async () => {
  const q = await fresh();
  const { id } = await q.enqueue("k", "x");
  const waiting = q.wait(id, 5000);
  const [c] = await q.claim("w", 1);
  const t0 = Date.now();
  await q.complete("w", c, "r");
  assert.deepEqual(await waiting, { state: "done", result: Buffer.from("r") });
  assert.ok(Date.now() - t0 < 500, "woken at once, not by the 1 s re-read");
  const dead = await q.enqueue("k", "x", { maxAttempts: 1 });
  const [d] = await q.claim("w", 1);
  await q.fail("w", d, "it broke");
  assert.deepEqual(await q.wait(dead.id, 1000), { state: "dead", error: "it broke" });
  const cancelled = await q.enqueue("k", "x", { delayMs: 60_000 });
  await q.cancel(cancelled.id);
  assert.deepEqual(await q.wait(cancelled.id, 1000), { state: "cancelled" });
  const pending = await q.enqueue("k", "x");
  await assert.rejects(q.wait(pending.id, 100), /still pending after 100 ms/);
  await assert.rejects(q.wait("unknown", 100), /no task unknown/);
  await q.close();
});

test("a script flushed from the cache is loaded again (NOSCRIPT)", async () => {
  const q = await fresh();
  await q.enqueue("k", "x");
  await q.redis.script("FLUSH");
  assert.equal((await q.counts()).pending, 1);
});

test("idempotency, unique, throttle and expiry behave as the contract says", async () => {
  const q = await fresh();
  const first = await q.enqueue("k", "1", { idempotencyKey: "order-1" });
  assert.deepEqual(await q.enqueue("k", "2", { idempotencyKey: "order-1" }), { id: first.id, created: false, status: "duplicate" });
  const u = await q.enqueue("k", "1", { uniqueKey: "report" });
  assert.equal((await q.enqueue("k", "2", { uniqueKey: "report" })).status, "unique");
  const t = await q.enqueue("k", "1", { throttleKey: "mail", throttleMs: 60_000 });
  assert.equal((await q.enqueue("k", "2", { throttleKey: "mail", throttleMs: 60_000 })).id, t.id);
  await q.cancel(u.id);
  assert.equal((await q.enqueue("k", "3", { uniqueKey: "report" })).status, "created", "the key is free once its task ended");
  const e = await q.enqueue("k", "x", { expiresInMs: 1, priority: 1000 });
  await sleep(5);
  await q.claim("w", 1);
  const dead = await q.get(e.id);
  assert.equal(dead.state, "dead");
  assert.match(dead.error, /expired/);
});

test("events are read from the stream with their tasks, runs and details", async () => {
  const q = await fresh();
  const { id } = await q.enqueue("k", "x");
  const [c] = await q.claim("w", 1);
  await q.progress("w", c, 40, "resizing");
  await q.complete("w", c, "");
  const stop = new AbortController();
  const seen = [];
  for await (const ev of q.events({ after: "0", signal: stop.signal, blockMs: 100 })) {
    seen.push(ev);
    if (ev.type === "completed") stop.abort();
  }
  assert.deepEqual(seen.map((e) => e.type), ["enqueued", "claimed", "progress", "completed"]);
  assert.deepEqual(seen[1].tasks, [{ id, run: 1 }]);
  assert.equal(seen[1].worker, "w");
  assert.equal(seen[2].detail, "40|resizing");
  assert.ok(seen[3].atMs >= seen[0].atMs);
});
