// Node side of Baton's cross-language tests (driven by tests/contract_node.rs and
// tests/mixed_clients.rs). Not a test file of its own.
//
// Usage: node test/driver.mjs COMMAND REDIS_URL QUEUE [ARGS...]
//   enqueue N              enqueue N "reverse" tasks (payload "item-<i>"), print the ids
//   enqueue-mixed N TAG    enqueue N "mix" tasks (payload "<TAG>-<i>") in batches of 100, print the ids
//   results ID...          wait for each task, print "<state>:<value>" per line
//   work N                 process N "slow-upper" tasks (1.5 s each, longer than the 1 s lease)
//   work-concurrent C G    "sleepy" tasks (1 s) with concurrency C and G seconds of grace, until SIGTERM
//   work-mixed C MS        "mix" tasks (MS ms each) with concurrency C until SIGTERM (result: upper(payload)|node)
//   work-push N            take N assigned "slow-upper" tasks on a push queue
//   stale                  claim, let the lease expire, reclaim, claim again; show the zombie is refused
//   version                expect VERSION at open and from a script
import { Redis } from "ioredis";
import { Queue, Worker, StaleLease, VersionMismatch } from "../dist/index.js";

const [cmd, url, queue, ...rest] = process.argv.slice(2);
const redis = new Redis(url);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  switch (cmd) {
    case "enqueue": {
      const q = await Queue.open(redis, queue);
      const out = await q.enqueueBatch(Array.from({ length: Number(rest[0]) }, (_, i) => ({ kind: "reverse", payload: `item-${i}` })));
      for (const e of out) console.log(e.id);
      break;
    }
    case "enqueue-mixed": {
      const q = await Queue.open(redis, queue);
      const [n, tag] = [Number(rest[0]), rest[1]];
      const lines = [];
      for (let i = 0; i < n; i += 100) {
        const batch = Array.from({ length: Math.min(100, n - i) }, (_, k) => ({ kind: "mix", payload: `${tag}-${i + k}` }));
        for (const e of await q.enqueueBatch(batch)) lines.push(e.id);
      }
      console.log(lines.join("\n"));
      break;
    }
    case "results": {
      const q = await Queue.open(redis, queue);
      for (const id of rest) {
        const o = await q.wait(id, 20_000);
        console.log(`${o.state}:${o.state === "done" ? o.result.toString() : o.state === "dead" ? o.error : ""}`);
      }
      await q.close();
      break;
    }
    case "work": {
      const q = await Queue.open(redis, queue, { leaseMs: 1000 });
      const w = new Worker(q, {
        "slow-upper": async (task) => {
          await task.progress(50, "node half");
          await sleep(1500); // longer than the lease: only heartbeats keep it
          return task.text().toUpperCase();
        },
      }, { heartbeatMs: 300, pollMs: 200 });
      console.log(`processed ${await w.run({ maxTasks: Number(rest[0]) })}`);
      break;
    }
    case "work-concurrent": {
      const q = await Queue.open(redis, queue, { leaseMs: 1000 });
      const w = new Worker(q, { sleepy: async (task) => { await sleep(1000); return task.text().toUpperCase(); } }, {
        heartbeatMs: 300, concurrency: Number(rest[0]), shutdownGraceMs: Number(rest[1] ?? 30) * 1000,
      });
      console.log(`processed ${await w.run()}`); // until SIGTERM
      break;
    }
    case "work-mixed": {
      const q = await Queue.open(redis, queue, { leaseMs: 1000 });
      const w = new Worker(q, { mix: async (task) => { await sleep(Number(rest[1] ?? 20)); return `${task.text().toUpperCase()}|node`; } }, {
        heartbeatMs: 300, concurrency: Number(rest[0]),
      });
      console.log(`processed ${await w.run()}`);
      break;
    }
    case "work-push": {
      const q = await Queue.open(redis, queue, { leaseMs: 1000 });
      const w = new Worker(q, { "slow-upper": (task) => task.text().toUpperCase() }, { heartbeatMs: 300, push: true, workerId: "node-push", pollMs: 200 });
      console.log(`processed ${await w.run({ maxTasks: Number(rest[0]) })}`);
      break;
    }
    case "stale": {
      const q = await Queue.open(redis, queue, { leaseMs: 200 });
      const [zombie] = await q.claim("node-zombie", 1);
      await q.start("node-zombie", zombie.token); // its handler started, then the worker stalled
      await sleep(400);
      const [requeued] = await q.reclaim();
      if (requeued !== 1) throw new Error("the lease should have expired and been reclaimed");
      const [fresh] = await q.claim("node-fresh", 1);
      const refused = [];
      const stale = async (name, p) => p.then(() => {}, (e) => { if (e instanceof StaleLease) refused.push(name); else throw e; });
      await stale("complete", q.complete("node-zombie", zombie, "zombie"));
      await stale("fail", q.fail("node-zombie", zombie, "zombie failure"));
      if ((await q.heartbeat("node-zombie", [zombie])).statuses[0] === "lost") refused.push("heartbeat");
      await stale("progress", q.progress("node-zombie", zombie, 99, "zombie progress"));
      console.log(JSON.stringify({ id: zombie.id, zombie_token: zombie.token, fresh_token: fresh.token, fresh_attempt: fresh.attempt, refused }));
      break;
    }
    case "version": {
      const report = (e) => {
        if (!(e instanceof VersionMismatch)) throw e;
        console.log(`VERSION ${e.detail}`);
      };
      await Queue.open(redis, queue).then(() => console.log("connected"), report);
      await new Queue(redis, queue).enqueue("k", {}).then(() => console.log("accepted"), report); // the scripts refuse it too
      break;
    }
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

main().then(
  // stdout to a pipe is written asynchronously: exit only once it is flushed (a forced exit cut
  // a large id list at the pipe's 64 KB)
  () => redis.quit().then(() => process.stdout.write("", () => process.exit(0))),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
