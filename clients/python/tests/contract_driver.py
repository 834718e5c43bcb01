"""Python side of Baton's cross-language contract tests (driven by tests/contract_python.rs).

Usage: contract_driver.py COMMAND REDIS_URL QUEUE [ARGS...]
  enqueue N          enqueue N "reverse" tasks (payload "item-<i>"), print the ids
  enqueue-mixed N TAG  enqueue N "mix" tasks (payload "<TAG>-<i>") in batches of 100, print the ids
  work-mixed C MS    "mix" tasks (MS ms each) with concurrency C until SIGTERM (result: upper(payload)|python)
  results ID...      wait for each task, print "<state>:<value>" per line
  work N             process N tasks as a Python worker ("slow-upper": 1.5 s, longer than the lease)
  work-push N        process N tasks on a push queue ("slow-upper" as above, taken when assigned)
  stale              claim, let the lease expire, reclaim, claim again; show the zombie is refused
  version            expect a VERSION error from enqueue
  fair N             configure fair queueing, weight py-b 3, enqueue N tasks in py-a and N in py-b
  group-rate N       fair queueing, py-r limited to 2/s with burst 4: N tasks of cost 2 in py-r, N in py-f
  deps               enqueue py-a, then py-j after py-a (on_failure continue), in one batch; print states
  deps-read ID       print the task's dependencies as JSON (results as text)
"""
import json
import sys
import time

import redis

import baton_client as baton


def main():
    cmd, url, queue = sys.argv[1], sys.argv[2], sys.argv[3]
    rest = sys.argv[4:]
    r = redis.Redis.from_url(url)
    if cmd == "enqueue":
        q = baton.Queue(r, queue)
        out = q.enqueue_batch([{"kind": "reverse", "payload": f"item-{i}"} for i in range(int(rest[0]))])
        for task_id, created in out:
            assert created
            print(task_id)
    elif cmd == "enqueue-mixed":
        q = baton.Queue(r, queue)
        n, tag = int(rest[0]), rest[1]
        ids = []
        for i in range(0, n, 100):
            batch = [{"kind": "mix", "payload": f"{tag}-{k}"} for k in range(i, min(n, i + 100))]
            ids += [task_id for task_id, _ in q.enqueue_batch(batch)]
        print("\n".join(ids))
    elif cmd == "work-mixed":
        q = baton.Queue(r, queue, lease_ms=1000)

        def mix(task):
            time.sleep(int(rest[1]) / 1000)
            return task.payload.upper() + b"|python"

        w = baton.Worker(q, {"mix": mix}, heartbeat_ms=300, concurrency=int(rest[0]))
        print(f"processed {w.run()}", flush=True)  # until SIGTERM
    elif cmd == "results":
        q = baton.Queue(r, queue)
        for task_id in rest:
            state, value = q.wait(task_id, timeout=20)
            print(f"{state}:{value.decode() if isinstance(value, bytes) else value}")
    elif cmd == "work":
        q = baton.Queue(r, queue, lease_ms=1000)

        def slow_upper(task):
            task.progress(50, "py half")
            time.sleep(1.5)  # longer than the lease: only heartbeats keep it
            return task.payload.upper()

        n = baton.Worker(q, {"slow-upper": slow_upper}, heartbeat_ms=300).run(max_tasks=int(rest[0]))
        print(f"processed {n}")
    elif cmd == "work-concurrent":
        q = baton.Queue(r, queue, lease_ms=1000)

        def sleepy(task):
            time.sleep(1.0)
            return task.payload.upper()

        grace = float(rest[1]) if len(rest) > 1 else 30.0
        w = baton.Worker(q, {"sleepy": sleepy}, heartbeat_ms=300, concurrency=int(rest[0]), shutdown_grace_s=grace)
        print(f"processed {w.run()}", flush=True)  # until SIGTERM
    elif cmd == "work-async":
        import asyncio
        import redis.asyncio as aredis

        async def main_async():
            q = await baton.AsyncQueue.open(aredis.Redis.from_url(url), queue, lease_ms=1000)

            async def sleepy(task):
                await task.progress(10, "async")
                await asyncio.sleep(1.0)
                return task.payload.upper()

            grace = float(rest[1]) if len(rest) > 1 else 30.0
            w = baton.AsyncWorker(q, {"sleepy": sleepy}, heartbeat_ms=300, concurrency=int(rest[0]),
                                  shutdown_grace_s=grace)
            print(f"processed {await w.run()}", flush=True)  # until SIGTERM
        asyncio.run(main_async())
    elif cmd == "async-roundtrip":
        import asyncio
        import redis.asyncio as aredis

        async def main_async():
            q = await baton.AsyncQueue.open(aredis.Redis.from_url(url), queue, lease_ms=1000)
            ids = [i for i, _ in await q.enqueue_batch([{"kind": "upper", "payload": f"n{i}"} for i in range(3)])]

            async def upper(task):
                await task.progress(100, "uppercased")
                return task.payload.upper()
            w = baton.AsyncWorker(q, {"upper": upper}, concurrency=3)
            results = await asyncio.gather(w.run(max_tasks=3), *(q.wait(i, timeout=20) for i in ids))
            print(json.dumps({"processed": results[0], "ids": ids,
                              "results": [[s, v.decode()] for s, v in results[1:]],
                              "counts": (await q.counts())["completed_total"]}))
        asyncio.run(main_async())
    elif cmd == "work-push":
        q = baton.Queue(r, queue, lease_ms=1000)
        w = baton.Worker(q, {"slow-upper": lambda task: task.payload.upper()}, heartbeat_ms=300, push=True,
                         worker_id="py-push")
        print(f"processed {w.run(max_tasks=int(rest[0]))}")
    elif cmd == "stale":
        q = baton.Queue(r, queue, lease_ms=200)
        zombie = q.claim("py-zombie", 1)[0]
        q.start("py-zombie", zombie.token)  # its handler started, then the worker stalled
        time.sleep(0.4)
        assert q.reclaim() == (1, 0), "lease expired and reclaimed"
        fresh = q.claim("py-fresh", 1)[0]
        refused = []
        try:
            q.complete("py-zombie", zombie, b"zombie")
        except baton.StaleLease:
            refused.append("complete")
        try:
            q.fail("py-zombie", zombie, "zombie failure")
        except baton.StaleLease:
            refused.append("fail")
        _, statuses = q.heartbeat("py-zombie", [(zombie.id, zombie.token)])
        if statuses == ["lost"]:
            refused.append("heartbeat")
        try:
            q.progress("py-zombie", zombie, 99, "zombie progress")
        except baton.StaleLease:
            refused.append("progress")
        print(json.dumps({"id": zombie.id, "zombie_token": zombie.token, "fresh_token": fresh.token,
                          "fresh_attempt": fresh.attempt, "refused": refused}))
    elif cmd == "version":
        try:
            baton.Queue(r, queue)
            print("connected")
        except baton.VersionMismatch as e:
            print(f"VERSION {e.message}")
        q = baton.Queue(r, queue, check_version=False)  # the scripts refuse it too
        try:
            q.enqueue("k", {})
            print("accepted")
        except baton.VersionMismatch as e:
            print(f"VERSION {e.message}")
    elif cmd == "unique":
        q = baton.Queue(r, queue)
        task_id, created = q.enqueue("k", "from-python", unique_key=rest[0])
        print(f"{task_id} {int(created)}")
    elif cmd == "throttle":
        q = baton.Queue(r, queue)
        task_id, created = q.enqueue("k", "from-python", throttle_key=rest[0], throttle_ms=60000)
        print(f"{task_id} {int(created)}")
    elif cmd == "debounce":
        q = baton.Queue(r, queue)
        task_id, created = q.enqueue("k", "from-python", debounce_key=rest[0], debounce_ms=60000,
                                     max_wait_ms=120000)
        print(f"{task_id} {int(created)}")
    elif cmd == "aging":
        # turn aging on, enqueue a priority-0 task, then priority-10 tasks well past its bound
        q = baton.Queue(r, queue)
        q.configure(aging_ms=int(rest[0]))
        q.enqueue("k", "low", id="low")
        time.sleep(int(rest[0]) * 10 / 1000 + 0.05)
        q.enqueue_batch([{"kind": "k", "payload": "high", "priority": 10, "id": f"high-{i}"} for i in range(3)])
        print(q.counts()["aging_ms"])
    elif cmd == "fair":
        # a fair queue: N tasks in group py-a (weight 1) and N in py-b (weight 3)
        q = baton.Queue(r, queue)
        q.configure(fairness="fair")
        q.set_group_weight("py-b", 3)
        for g in ("py-a", "py-b"):
            q.enqueue_batch([{"kind": "k", "payload": f"{g}-{i}", "group": g, "id": f"{g}-{i}"}
                             for i in range(int(rest[0]))])
        print(json.dumps(q.groups()))
    elif cmd == "group-rate":
        q = baton.Queue(r, queue)
        q.configure(fairness="fair")
        assert q.set_group_rate("py-r", 500_000) is None
        assert q.set_group_burst("py-r", 4) is None
        n = int(rest[0])
        q.enqueue_batch([{"kind": "k", "payload": "r", "group": "py-r", "cost": 2, "id": f"py-r-{i}"} for i in range(n)])
        q.enqueue_batch([{"kind": "k", "payload": "f", "group": "py-f", "id": f"py-f-{i}"} for i in range(n)])
        print(json.dumps(q.groups()))
    elif cmd == "deps":
        q = baton.Queue(r, queue)
        q.enqueue_batch([{"kind": "k", "payload": "pa", "id": "py-a"},
                         {"kind": "k", "payload": "pj", "id": "py-j", "after": ["py-a"], "on_failure": "continue"}])
        print(q.get("py-a")["state"], q.get("py-j")["state"])
    elif cmd == "deps-read":
        q = baton.Queue(r, queue)
        deps = q.dependencies(rest[0])
        print(json.dumps([dict(d, result=d["result"].decode() if d["result"] is not None else None) for d in deps]))
    elif cmd == "flow":
        q = baton.Queue(r, queue)
        try:
            q.submit_flow([{"name": "a", "kind": "k", "payload": "x", "after": ["b"]},
                           {"name": "b", "kind": "k", "payload": "y", "after": ["a"]}])
            sys.exit("a cycle was accepted")
        except ValueError as e:
            assert "cycle" in str(e), e
        fid, ids = q.submit_flow([{"name": "a", "kind": "k", "payload": "fa"},
                                  {"name": "b", "kind": "k", "payload": "fb", "after": ["a"]}],
                                 flow_id="py-flow", callbacks={"on_complete": {"kind": "k", "payload": "fdone"}})
        bid = q.open_batch("py-batch", callbacks={"on_success": {"kind": "k", "payload": "bdone"}})
        q.add_to_batch(bid, [{"kind": "k", "payload": f"b{i}", "id": f"py-b{i}"} for i in range(5)])
        q.flow_seal(bid)
        st = q.flow_status(fid)
        print(st["state"], st["total"], ",".join(f"{t['name']}={t['state']}" for t in st["tasks"]))
    elif cmd == "flow-read":
        q = baton.Queue(r, queue)
        for f in rest:
            st = q.flow_status(f)
            print(f, st["state"], st["done"], ",".join(sorted(st["callbacks"].values())))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
