#!/usr/bin/env node
// Throughput of the Node worker: drain N no-op tasks at a given concurrency on a private
// redis-server this script starts on a free port and stops. Prints tasks/s and Redis CPU µs per
// task, like `cargo bench --bench core` and clients/python/bench_worker.py.
//
//   node clients/node/bench_worker.mjs [--tasks 20000] [--concurrency 50]
//
// Run after `npm install` (or `npm run build`) in clients/node.
import { Redis } from "ioredis";
import { Queue, Worker } from "./dist/index.js";
import { startRedis } from "./test/helpers.mjs";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const tasks = arg("tasks", 20000);
const concurrency = arg("concurrency", 50);

const cpuUs = async (r) => {
  const info = await r.info("cpu");
  const f = (k) => Number(new RegExp(`^${k}:([\\d.]+)`, "m").exec(info)[1]);
  return (f("used_cpu_user") + f("used_cpu_sys")) * 1e6;
};

const server = await startRedis();
try {
  const redis = new Redis(server.url);
  const q = await Queue.open(redis, "bench");
  for (let i = 0; i < tasks; i += 1000) {
    await q.enqueueBatch(Array.from({ length: Math.min(1000, tasks - i) }, () => ({ kind: "noop", payload: "x" })));
  }
  const before = await cpuUs(redis);
  const t0 = process.hrtime.bigint();
  const done = await new Worker(q, { noop: () => "" }, { concurrency, handleSignals: false }).run({ maxTasks: tasks });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = (await cpuUs(redis)) - before;
  const completed = (await q.counts()).completedTotal;
  if (done !== tasks || completed !== tasks) throw new Error(`finished ${done}, completed ${completed} of ${tasks}`);
  console.log(`node worker, concurrency ${concurrency}: ${tasks} no-op tasks in ${secs.toFixed(2)} s: ${(tasks / secs).toFixed(0)} tasks/s, ${(cpu / tasks).toFixed(1)} µs Redis CPU/task`);
  redis.disconnect();
} finally {
  await server.stop();
}
