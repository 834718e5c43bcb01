// A private redis-server per test file, on a free loopback port, stopped by its PID.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { Redis } from "ioredis";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function startRedis() {
  const port = await freePort();
  const bin = process.env.BATON_REDIS_SERVER ?? "redis-server";
  const proc = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  proc.on("error", (e) => {
    throw new Error(`cannot start ${bin} (${e.message}): the README's test command installs redis-server`);
  });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on("error", () => {}); // not listening yet: retried below
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      break;
    } catch (e) {
      probe.disconnect();
      if (i > 100) throw new Error(`redis-server on ${port} did not answer: ${e.message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const clients = [];
  return {
    url,
    port,
    client() {
      const c = new Redis(url);
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.disconnect();
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once("exit", r)));
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function eventually(what, f, withinMs = 10_000) {
  const end = Date.now() + withinMs;
  for (;;) {
    if (await f()) return;
    if (Date.now() > end) throw new Error(`not within ${withinMs} ms: ${what}`);
    await sleep(20);
  }
}
