// Every call this client makes is checked against lua/manifest.json (names, order, bounds): each
// operation is exercised here against a private redis-server with the check on, and the check
// itself refuses drift. A script change the client was not updated for fails here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, mkdtempSync, cpSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue, Scripts, DEFAULTS, Claimed } from "../dist/index.js";
import { startRedis } from "./helpers.mjs";

const scripts = Scripts.load();

test("the check refuses a wrong name, a wrong order, an incomplete group and values out of bounds", () => {
  const ok = [["worker", "w"], ["n", 1], ["lease_ms", 1000], ["dead_ttl_ms", 1000]];
  scripts.check("claim", ok);
  assert.throws(() => scripts.check("claim", [["worker", "w"], ["count", 1], ["lease_ms", 1000], ["dead_ttl_ms", 1]]), /argument 2 is "n"/);
  assert.throws(() => scripts.check("claim", ok.slice(0, 3)), /not a complete call/);
  assert.throws(() => scripts.check("claim", [["worker", "w"], ["n", 1001], ["lease_ms", 1000], ["dead_ttl_ms", 1]]), /n = 1001 is outside 1..1000/);
  assert.throws(() => scripts.check("heartbeat", [["worker", "w"], ["lease_ms", 1], ["id", "a"]]), /not a complete call/);
  assert.throws(() => scripts.check("complete", [["worker", "w"], ["busy_ms", 0]]), /0 groups/);
  assert.throws(
    () => scripts.check("progress", [["worker", "w"], ["id", "a"], ["token", "1"], ["percent", 5], ["message", "x".repeat(201)]]),
    /201 bytes, the manifest allows 0..200/,
  );
  assert.throws(() => scripts.check("claim", [["worker", "w"], ["n", 1.5], ["lease_ms", 1000], ["dead_ttl_ms", 1]]), /must be an integer/);
});

test("every script of the manifest is loaded, and a vendored script that was edited is refused", () => {
  const names = Object.keys(scripts.manifest.scripts);
  assert.equal(scripts.bodies.size, names.length);
  for (const n of names) {
    assert.equal(createHash("sha1").update(scripts.bodies.get(n)).digest("hex"), scripts.manifest.scripts[n].sha1, n);
  }
  const dir = mkdtempSync(join(tmpdir(), "baton-node-"));
  cpSync(scripts.dir, dir, { recursive: true });
  writeFileSync(join(dir, "claim.lua"), readFileSync(join(dir, "claim.lua"), "utf8") + "-- edited\n");
  assert.throws(() => Scripts.load(dir), /claim.lua hashes to .* the manifest says/);
});

test("the package version is Baton's", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  const cargo = readFileSync(new URL("../../../Cargo.toml", import.meta.url), "utf8");
  assert.equal(pkg.version, /^version = "([^"]+)"/m.exec(cargo)[1]);
});

test("every queue operation passes the manifest check against a real server", async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const seen = new Set();
  const q = await Queue.open(redis.client(), "contract", { scripts, leaseMs: 200 });
  const original = scripts.check.bind(scripts);
  scripts.check = (name, args) => {
    seen.add(name);
    original(name, args);
  };
  try {
    assert.equal(await q.configure({ eventsMaxLen: 100 }), "");
    await q.register("w1", { language: "node" });
    const [a, b, c] = await q.enqueueBatch([
      { kind: "k", payload: { n: 1 }, priority: 3, idempotencyKey: "i1", uniqueKey: "u1", expiresInMs: 60_000 },
      { kind: "k", payload: "two", debounceKey: "d1", debounceMs: 60_000, maxWaitMs: 120_000 },
      { kind: "k", payload: Buffer.from([0, 255]) },
    ]);
    assert.deepEqual([a.status, b.status, c.status], ["created", "created", "created"]);
    assert.equal((await q.enqueue("k", "two again", { debounceKey: "d1", debounceMs: 60_000 })).status, "debounced");
    assert.equal((await q.get(b.id)).payload.toString(), "two again");
    assert.equal((await q.enqueue("k", "again", { idempotencyKey: "i1" })).id, a.id);
    assert.equal((await q.enqueue("k", "t", { throttleKey: "t1", throttleMs: 1000 })).status, "created");
    const [c1] = await q.claim("w1", 1);
    assert.equal(c1.id, a.id);
    assert.ok(c1 instanceof Claimed);
    assert.ok((await q.start("w1", c1.token)) >= Number(c1.token));
    assert.equal(await q.progress("w1", c1, 50, "half"), "stored");
    assert.deepEqual((await q.heartbeat("w1", [c1])).statuses, ["renewed"]);
    await q.complete("w1", c1, "ok");
    const [c2] = await q.claim("w1", 1);
    assert.equal(await q.fail("w1", c2, "boom", { retry: false }), "dead");
    const [c3] = await q.claim("w1", 1);
    assert.equal(await q.release("w1", [c3]), 1);
    assert.deepEqual(await q.reclaim(10), [0, 0]);
    assert.deepEqual(await q.cancel(c3.id, "nope"), ["pending", null]);
    // a task after another: waiting, and its dependencies read in one call
    const dep = await q.enqueue("k", "d", { after: [a.id], onFailure: "continue" });
    assert.equal((await q.get(dep.id)).state, "pending"); // a is done already
    assert.deepEqual(
      (await q.dependencies(dep.id)).map((d) => [d.id, d.state, d.result && d.result.toString()]),
      [[a.id, "done", "ok"]],
    );
    assert.equal(await q.cancel(dep.id).then((r) => r[0]), "pending");
    assert.equal(await q.setGroupWeight("acme", 3), 1);
    assert.equal(await q.setGroupConcurrency("acme", 2), null);
    assert.equal(await q.setGroupRate("acme", 100_000), null);
    assert.equal(await q.setGroupBurst("acme", 5), null);
    assert.deepEqual(await q.groups(10), [
      {
        name: "acme", backlog: 0, weight: 3, virtualTime: null, concurrency: 2, running: 0, parkedUntilMs: null,
        rateIntervalUs: 100_000, burst: 5, heldBy: null,
      },
    ]);
    await q.take("w1", 1);
    const counts = await q.counts();
    assert.equal(counts.done, 1);
    assert.equal(counts.dead, 1);
    assert.equal(counts.cancelled, 2);
    assert.equal((await q.get(a.id)).state, "done");
    await q.leave("w1");
    assert.equal(await q.deregister("w1"), true);
  } finally {
    scripts.check = original;
    await q.close();
  }
  const used = [...seen].sort();
  const driven = ["cancel", "claim", "complete", "configure", "counts", "dependencies", "deregister", "enqueue", "fail", "get", "group_set",
    "groups", "heartbeat", "progress", "reclaim", "register", "release", "start", "take"];
  assert.deepEqual(used, driven);
  // the scripts this client does not call: the operators', the maintenance loops' (outbox and
  // deliver carry dependencies across queues), and flows and batches (submitted from Rust,
  // Python or the CLI; see README.md)
  const notCalled = Object.keys(scripts.manifest.scripts).filter((n) => !driven.includes(n)).sort();
  assert.deepEqual(notCalled, ["deliver", "dispatch", "flow_join", "flow_open", "flow_seal", "flow_status", "outbox", "pause", "promote", "purge", "requeue", "trim", "workers"]);
});

test("the defaults are Baton's (config/baton.toml)", () => {
  const toml = readFileSync(new URL("../../../config/baton.toml", import.meta.url), "utf8");
  const val = (key) => /^\s*KEY\s*=\s*(\S+)/m.exec(toml.replace("KEY", key)) ?? new RegExp(`^\\s*${key}\\s*=\\s*("[^"]*"|\\S+)`, "m").exec(toml)[1];
  void val;
  const get = (key) => new RegExp(`^\\s*${key}\\s*=\\s*("[^"]*"|[^\\s#]+)`, "m").exec(toml)[1].replace(/"/g, "");
  assert.equal(get("lease"), "4s");
  assert.equal(DEFAULTS.leaseMs, 4000);
  assert.equal(Number(get("max_attempts")), DEFAULTS.maxAttempts);
  assert.equal(Number(get("max_payload")), DEFAULTS.maxPayload);
  assert.equal(get("backoff_base"), "1s");
  assert.equal(DEFAULTS.backoff.baseMs, 1000);
  assert.equal(get("backoff_cap"), "10m");
  assert.equal(DEFAULTS.backoff.capMs, 600_000);
  assert.equal(Number(get("backoff_jitter")) * 100, DEFAULTS.backoff.jitterPct);
  assert.equal(get("timeout"), "30m");
  assert.equal(DEFAULTS.timeoutMs, 30 * 60_000);
  assert.equal(get("result_ttl"), "1h");
  assert.equal(DEFAULTS.resultTtlMs, 3_600_000);
  assert.equal(get("dead_ttl"), "7d");
  assert.equal(get("idempotency_ttl"), "24h");
  assert.equal(get("unique_ttl"), "24h");
  assert.equal(DEFAULTS.idempotencyTtlMs, 86_400_000);
  assert.equal(DEFAULTS.uniqueTtlMs, 86_400_000);
});
