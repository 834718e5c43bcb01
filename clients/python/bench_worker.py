#!/usr/bin/env python3
"""Throughput of the Python workers: drain N no-op tasks with Worker (threads) or AsyncWorker
(asyncio) at a given concurrency, on a private redis-server this script starts on a free port
and stops. Prints tasks/s and Redis CPU µs per task, like `cargo bench --bench core`.

    python3 clients/python/bench_worker.py [--tasks 5000] [--concurrency 50] [--mode thread|async]

Run from a Baton checkout (PYTHONPATH=clients/python, or with the package installed)."""
import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import redis  # noqa: E402
import redis.asyncio as aredis  # noqa: E402

import baton_client as baton  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_us(r):
    info = r.info("cpu")
    return (info["used_cpu_user"] + info["used_cpu_sys"]) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--mode", choices=["thread", "async"], default="thread")
    a = ap.parse_args()
    server = shutil.which("redis-server") or sys.exit("redis-server not found (scripts/ensure-redis installs it)")
    port, work = free_port(), tempfile.mkdtemp(prefix="baton-pybench-")
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", work], stdout=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        r = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        q = baton.Queue(r, "bench")
        for i in range(0, a.tasks, 1000):
            q.enqueue_batch([{"kind": "noop", "payload": b"x"} for _ in range(min(1000, a.tasks - i))])
        before, t0 = cpu_us(r), time.monotonic()
        if a.mode == "thread":
            done = baton.Worker(q, {"noop": lambda task: b""}, concurrency=a.concurrency).run(max_tasks=a.tasks)
        else:
            async def drain():
                aq = await baton.AsyncQueue.open(aredis.Redis.from_url(url), "bench")

                async def noop(task):
                    return b""
                return await baton.AsyncWorker(aq, {"noop": noop}, concurrency=a.concurrency).run(max_tasks=a.tasks)
            done = asyncio.run(drain())
        secs, cpu = time.monotonic() - t0, cpu_us(r) - before
        assert done == a.tasks and q.counts()["completed_total"] == a.tasks, (done, q.counts())
        print(f"python {a.mode} worker, concurrency {a.concurrency}: {a.tasks} no-op tasks in {secs:.2f} s: "
              f"{a.tasks / secs:.0f} tasks/s, {cpu / a.tasks:.1f} µs Redis CPU/task")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
