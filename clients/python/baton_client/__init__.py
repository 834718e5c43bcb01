"""Baton for Python: enqueue, inspect, wait for and process Baton tasks.

This client holds no queue logic of its own: every state change is one call of Baton's Lua
scripts, exactly as the Rust library makes it, so Python and Rust producers and workers share
queues safely. It needs only ``redis`` (redis-py >= 5) and the scripts, either from a Baton
source tree (``lua/``) or from ``baton scripts dump DIR``. The contract (key layout, record
format, arguments, replies, error codes) is ``lua/manifest.json``, and every call made here is
checked against it before it is sent.

    import redis, baton_client as baton
    q = baton.Queue(redis.Redis(), "emails")
    task_id, created = q.enqueue("send", {"to": "a@example.com"}, priority=5)
    state, value = q.wait(task_id, timeout=30)

    def send(task):                      # task.payload is bytes
        return b"sent"                   # becomes the result; raise to fail the attempt
    baton.Worker(q, {"send": send}).run()
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import re
import os
import random
import signal
import socket
import threading
import time

import redis

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

if TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    P = ParamSpec("P")

R = TypeVar("R")
#: a payload or result: bytes as they are, str as UTF-8, anything else as JSON
Payload = Any
#: a lease as acknowledged: (task id, token)
Lease = Tuple[str, str]
#: one script call as a queue operation describes it: script, [(argument, value)], extra keys, reply parser
_CallOf = Tuple[str, List[Tuple[str, Any]], Sequence[str], Callable[[Any], R]]

__all__ = [
    "Scripts", "Queue", "Worker", "Claimed", "Claims", "BatonError", "BadArgument", "PayloadTooLarge",
    "VersionMismatch", "StaleLease", "Fatal", "new_id",
]

_HERE = os.path.dirname(os.path.abspath(__file__))


class BatonError(Exception):
    """A script refused a call; ``code`` is the contract's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class BadArgument(BatonError):
    """BADARG: an argument is missing or out of range; nothing was written."""


class PayloadTooLarge(BatonError):
    """TOOLARGE: a payload is over the queue's limit; nothing was written."""


class VersionMismatch(BatonError):
    """VERSION: the queue's data schema differs from these scripts'; nothing was written."""


class StaleLease(Exception):
    """The lease is not held any more (reclaimed, cancelled or already acknowledged)."""


class Fatal(Exception):
    """Raise from a handler to send the task to the dead-letter set without retrying."""


_ERRORS = {"BADARG": BadArgument, "TOOLARGE": PayloadTooLarge, "VERSION": VersionMismatch}


def _script_error(e: Exception) -> Exception:
    text = str(e)
    code, _, rest = text.partition(" ")
    cls = _ERRORS.get(code)
    if cls is None:
        return e
    return cls(code, rest.split(" script: ")[0])


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A ULID: 48 bits of milliseconds + 80 random bits, 26 characters (like the Rust client)."""
    n = (int(time.time() * 1000) << 80) | random.getrandbits(80)
    return "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in reversed(range(26)))


def _default_scripts_dir() -> str:
    # $BATON_SCRIPTS, else the scripts an installed package carries (built in by setup.py), else
    # the lua/ of the Baton tree this module sits in
    for candidate in (os.environ.get("BATON_SCRIPTS"), os.path.join(_HERE, "scripts"),
                      os.path.join(_HERE, "..", "..", "..", "lua")):
        if candidate and os.path.exists(os.path.join(candidate, "manifest.json")):
            return os.path.abspath(candidate)
    raise FileNotFoundError(
        "no Baton scripts found: pass Scripts(path) with a Baton lua/ directory or the output of "
        "`baton scripts dump DIR`, or set BATON_SCRIPTS")


class Scripts:
    """The Lua scripts and their manifest, registered on a Redis connection."""

    def __init__(self, path: Optional[str] = None) -> None:
        path = path or _default_scripts_dir()
        with open(os.path.join(path, "manifest.json")) as f:
            self.manifest = json.load(f)
        self.bodies = {}
        for name, spec in self.manifest["scripts"].items():
            self.bodies[name] = self._flatten(path, spec["file"])

    @staticmethod
    def _flatten(path: str, file: str) -> str:
        """The script with its includes inlined exactly as Baton's loader does (docs/contract.md):
        an include's own includes first, each include once per script, no nesting."""
        def include_name(line: str) -> Optional[str]:
            return line[len("--@include "):].strip() if line.startswith("--@include ") else None

        def read(rel: str) -> str:
            with open(os.path.join(path, rel)) as f:
                return f.read()

        out, done = [], []

        def inline(name: str, opened: List[str]) -> None:
            if name in done:
                return
            if name in opened:
                raise ValueError("include cycle in lua/include: " + " -> ".join(opened + [name]))
            text = read(os.path.join("include", name + ".lua"))
            for dep in filter(None, map(include_name, text.splitlines())):
                inline(dep, opened + [name])
            out.append(f"-- begin include/{name}.lua\n")
            out.extend(l + "\n" for l in text.splitlines() if include_name(l) is None)
            out.append(f"-- end include/{name}.lua\n")
            done.append(name)

        for line in read(file).splitlines():
            name = include_name(line)
            if name is None:
                out.append(line + "\n")
            else:
                inline(name, [])
        return Scripts._prune_unused("".join(out))

    @staticmethod
    def _prune_unused(body: str) -> str:
        """Drop the functions the script never calls, as Baton's loader does (docs/contract.md):
        a block runs from a line starting ``local function NAME(`` to the next line that is
        exactly ``end``; it goes when NAME is a whole word nowhere else; repeat until stable."""
        lines = body.split("\n")[:-1]
        words = lambda line: [w for w in re.split(r"[^A-Za-z0-9_]", line) if w]
        total = collections.Counter(w for l in lines for w in words(l))
        while True:
            unused = []
            for start, line in enumerate(lines):
                if line.startswith("local function "):
                    name = line[len("local function "):].split("(")[0].strip()
                    end = lines.index("end", start + 1)
                    inside = sum(words(l).count(name) for l in lines[start:end + 1])
                    if total[name] == inside:
                        unused.append((start, end))
            if not unused:
                return "\n".join(lines) + "\n"
            for start, end in reversed(unused):
                total.subtract(w for l in lines[start:end + 1] for w in words(l))
                del lines[start:end + 1]

    def check(self, name: str, args: Sequence[Tuple[str, Any]]) -> None:
        """Raise ValueError unless ``args`` (a list of (name, value)) fits the manifest."""
        spec = self.manifest["scripts"][name]
        fixed = spec["argv"]
        fields = spec.get("repeat", {}).get("fields", [])
        for pos, (arg, _) in enumerate(args):
            if pos < len(fixed):
                want = fixed[pos]["name"]
            elif fields:
                want = fields[(pos - len(fixed)) % len(fields)]["name"]
            else:
                want = None
            if arg != want:
                raise ValueError(f"{name}: argument {pos + 1} is {want!r} in the manifest, got {arg!r}")
        rest = len(args) - len(fixed)
        if rest < 0 or (fields and rest % len(fields)) or (not fields and rest):
            raise ValueError(f"{name}: {len(args)} arguments is not a complete call")


class Claimed:
    """A task held under a lease."""

    __slots__ = ("id", "token", "deadline_ms", "attempt", "run", "kind", "priority", "max_attempts",
                 "timeout_ms", "result_ttl_ms", "created_ms", "payload", "_reporter")
    id: str
    token: str
    deadline_ms: int
    attempt: int
    run: int
    kind: str
    priority: int
    max_attempts: int
    timeout_ms: int
    result_ttl_ms: int
    created_ms: int
    payload: bytes

    def __init__(self, task_id: str, token: str, deadline_ms: int, record: bytes) -> None:
        self.id, self.token, self.deadline_ms = task_id, token, deadline_ms
        rec = _parse_record(record)
        self.attempt = rec["used"] - rec["base"] + 1  # of max_attempts, since the last requeue
        self.run = rec["used"] + 1  # never reset: tells runs apart (events name runs by it)
        for k in ("kind", "priority", "max_attempts", "timeout_ms", "result_ttl_ms", "created_ms", "payload"):
            setattr(self, k, rec[k])
        self._reporter: Optional[Callable[..., Any]] = None

    def json(self) -> Any:
        return json.loads(self.payload)

    def progress(self, percent: float, message: str = "") -> Any:
        """From a handler run by Worker (AsyncWorker: `await` it): report how far this run got (0-100, and a short note).
        Raises StaleLease when the run lost its lease or the task was cancelled: stop then."""
        if self._reporter is None:
            raise RuntimeError("progress is reported by the Worker running this task; use Queue.progress otherwise")
        return self._reporter(percent, message)  # a coroutine under AsyncWorker: await it


def _parse_record(raw: bytes) -> Dict[str, Any]:
    parts = raw.split(b"|", 14)
    names = ["used", "base", "strays", "expires_ms", "kind", "priority", "max_attempts", "backoff", "backoff_base_ms", "backoff_cap_ms",
             "jitter_pct", "timeout_ms", "result_ttl_ms", "created_ms", "payload"]
    rec: Dict[str, Any] = dict(zip(names, parts))
    for k in names:
        if k == "payload":
            continue
        rec[k] = rec[k].decode()
        if k not in ("kind", "backoff"):
            rec[k] = int(rec[k])
    return rec


def _parse_task(task_id: str, reply: Any) -> Optional[Dict[str, Any]]:
    if not reply:
        return None
    state, record, attempts, lease, score, error, result, progress = reply
    task = _parse_record(record)
    task.update(id=task_id, state=state.decode(), attempts=int(attempts), lease=lease.decode() or None)
    task["error"] = error.split(b"|", 2)[2].decode(errors="replace") if error else None
    task["result"] = result if state == b"done" else None
    task["progress"] = None
    if progress:
        token, pct, at_ms, _event_ms, message = progress.split(b"|", 4)
        task["progress"] = {"percent": int(pct), "message": message.decode(errors="replace"), "at_ms": int(at_ms),
                            "current_run": task["lease"] is not None and task["lease"].split("|")[0] == token.decode()}
    return task


class Claims(List[Claimed]):
    """The tasks a claim (or take) handed out. ``wait_ms`` says whether the queue's limits held
    the call back while tasks were pending: None (they did not), ms until the rate limit admits
    more, or -1 when the concurrency cap is full (the end of a lease wakes workers on the wake
    channel)."""

    wait_ms: Optional[int] = None

    def nap(self, poll_s: float) -> float:
        """How long an idle claim loop should wait for a wake-up before claiming again."""
        if self.wait_ms is not None and self.wait_ms > 0:
            return min(poll_s, self.wait_ms / 1000)
        return poll_s


def _parse_claimed(reply: Any) -> Claims:
    reply = list(reply)
    out = Claims()
    if len(reply) % 4 == 1:  # the queue's limits held the call back: the wait ends the reply
        out.wait_ms = int(reply.pop())
    out.extend(Claimed(reply[i].decode(), reply[i + 1].decode(), int(reply[i + 2]), reply[i + 3])
               for i in range(0, len(reply), 4))
    return out


def _task_options(t: Mapping[str, Any], unique_ttl_ms: int, debounce: Optional[str]) -> str:
    """The enqueue ``options`` argument: the rarer settings as "name=value,...", "" when none."""
    o = []
    if unique_ttl_ms:
        o.append(f"unique_ttl_ms={int(t.get('unique_ttl_ms', unique_ttl_ms))}")
    if debounce:
        o.append(f"debounce_ms={int(t['debounce_ms'])},max_wait_ms={int(t.get('max_wait_ms', t['debounce_ms']))}")
    if t.get("expires_in_ms"):
        o.append(f"expires_in_ms={int(t['expires_in_ms'])}")
    if t.get("group"):
        o.append(f"group={t['group']}")
    if t.get("cost") not in (None, 1):
        o.append(f"cost={int(t['cost'])}")
    if t.get("after"):
        o.append(f"after={'+'.join(t['after'])},on_failure={t.get('on_failure', 'fail')}")
    if t.get("flow"):
        o.append(f"flow={t['flow']}")
    if t.get("name"):
        o.append(f"name={t['name']}")
    if t.get("spawned_by"):
        o.append(f"spawned_by={t['spawned_by']}")
    return ",".join(o)


def _flow_order(tasks: Sequence[Mapping[str, Any]], limit: int) -> List[int]:
    """Check a flow (names unique, every ``after`` a name of the flow, no cycle, at most ``limit``
    tasks) without writing anything; the order to store it in (dependencies first)."""
    if not tasks:
        raise ValueError("a flow needs at least one task")
    if len(tasks) > limit:
        raise ValueError(f"a flow takes at most {limit} tasks, got {len(tasks)}: split it into several flows")
    index: Dict[str, int] = {}
    for i, t in enumerate(tasks):
        if t["name"] in index:
            raise ValueError(f"the flow names two tasks {t['name']}: names must be unique")
        index[t["name"]] = i
    indeg = [0] * len(tasks)
    out: List[List[int]] = [[] for _ in tasks]
    for i, t in enumerate(tasks):
        for d in t.get("after", ()):
            if d not in index:
                raise ValueError(f"flow task {t['name']}: after names {d}, which is not a task of the flow")
            indeg[i] += 1
            out[index[d]].append(i)
    import heapq
    ready = [i for i in range(len(tasks)) if indeg[i] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in out[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(ready, j)
    if len(order) < len(tasks):
        left = [tasks[i]["name"] for i in range(len(tasks)) if indeg[i] > 0]
        raise ValueError("the flow has a cycle among: " + ", ".join(left[:10]))
    return order


def _b(v: Payload) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    return json.dumps(v, separators=(",", ":")).encode()


def _op(build: Callable[Concatenate[Any, P], _CallOf[R]]) -> Callable[Concatenate[Any, P], R]:
    """A queue operation of one script call: ``build(self, ...)`` returns (script, args,
    extra_keys, parse). Queue runs it with a blocking call; AsyncQueue awaits the same call, so
    both speak the contract through one description of it."""
    @functools.wraps(build)
    def run(self: Any, *a: Any, **kw: Any) -> Any:
        name, args, extra, parse = build(self, *a, **kw)
        return parse(self._call(name, args, extra))
    run.build = build  # type: ignore[attr-defined]
    return run


class Queue:
    """One Baton queue on a redis-py connection. Defaults mirror config/baton.toml's."""

    def __init__(self, r: Any, name: str, prefix: str = "baton", scripts: Optional[Scripts] = None,
                 lease_ms: int = 4000, max_attempts: int = 5,
                 backoff: Tuple[str, int, int, int] = ("e", 1000, 600000, 20), timeout_ms: int = 1800000,
                 result_ttl_ms: int = 3600000, dead_ttl_ms: int = 7 * 86400000,
                 idempotency_ttl_ms: int = 86400000, max_payload: int = 1 << 20,
                 unique_ttl_ms: int = 86400000, check_version: bool = True) -> None:
        self.r, self.name, self.prefix = r, name, prefix
        self.scripts = scripts or Scripts()
        m = self.scripts.manifest
        self.keys = [m["key_pattern"].format(prefix=prefix, queue=name, role=role) for role in m["keyset"]]
        self.fin_channel = m["channels"]["fin"].format(prefix=prefix, queue=name)
        self.wake_channel = m["channels"]["wake"].format(prefix=prefix, queue=name)
        self.lease_ms, self.max_attempts, self.backoff = lease_ms, max_attempts, backoff
        self.timeout_ms, self.result_ttl_ms, self.dead_ttl_ms = timeout_ms, result_ttl_ms, dead_ttl_ms
        self.idempotency_ttl_ms, self.max_payload = idempotency_ttl_ms, max_payload
        self.unique_ttl_ms = unique_ttl_ms
        self._registered = {n: r.register_script(body) for n, body in self.scripts.bodies.items()}
        if check_version:
            self.check_version()

    def check_version(self) -> Any:
        """Raise VersionMismatch when the queue holds data of another schema version than these
        scripts (a queue not created yet passes). Done by the constructor; every script checks
        again, so a queue migrated later is refused too."""
        self._check_schema(self.r.hget(self.keys[0], "v"))

    def _check_schema(self, have: Optional[bytes]) -> None:
        want = self.scripts.manifest["schema_version"]
        if have is not None and have.decode() != want:
            raise VersionMismatch("VERSION", f"queue {self.keys[0]} has data schema v{have.decode()} but these "
                                             f"scripts are v{want}; run a baton release whose scripts match the "
                                             "queue (see docs/contract.md)")

    def _call(self, name: str, args: List[Tuple[str, Any]], extra_keys: Sequence[str] = ()) -> Any:
        self.scripts.check(name, args)
        try:
            return self._registered[name](keys=self.keys + list(extra_keys), args=[v for _, v in args])
        except redis.exceptions.ResponseError as e:
            raise _script_error(e) from None

    # ---- producer ----

    def enqueue(self, kind: str, payload: Payload, **opts: Any) -> Tuple[str, bool]:
        """Enqueue one task; returns (id, created). ``payload``: bytes, str, or JSON-able."""
        return self.enqueue_batch([dict(opts, kind=kind, payload=payload)])[0]

    @_op
    def enqueue_batch(self, tasks: Sequence[Mapping[str, Any]]) -> _CallOf[List[Tuple[str, bool]]]:
        """Enqueue 1..1000 tasks atomically (all or none); returns [(id, created)]. A task may
        carry ``idempotency_key``, ``unique_key`` (unique while active: an enqueue while the
        task holding the key is pending, delayed or running returns that task's id) and
        ``debounce_key`` with ``debounce_ms`` and ``max_wait_ms``; ``throttle_key`` with
        ``throttle_ms`` (at most one task per key per window: later enqueues in the window return
        the first one's id — the idempotency key ``throttle:<key>``, as Rust's TaskSpec::throttle);
        ``expires_in_ms``: no run starts later than this after now (the task goes to the
        dead-letter set unrun); ``group``: the task's group (tenant, customer, API key; on a
        fair queue the groups that have work share the workers by weight); ``cost``: what the
        task counts for under the rate limits of its queue and group (default 1); ``after``:
        ids of tasks of this queue (or earlier in the batch) it waits for, with ``on_failure``
        ("fail", "continue" or "ignore") for a dependency that ended dead or cancelled."""
        args: List[Tuple[str, Any]] = [("max_payload", self.max_payload), ("n", len(tasks))]
        idem = []
        for t in tasks:
            if t.get("throttle_key") is not None:
                if "idempotency_key" in t or not t.get("throttle_ms"):
                    raise ValueError("throttle_key needs throttle_ms (> 0) and no idempotency_key: it is one")
                t = dict(t, idempotency_key="throttle:" + t["throttle_key"], idempotency_ttl_ms=t["throttle_ms"])
            bo = t.get("backoff", self.backoff)
            key, ukey = t.get("idempotency_key"), t.get("unique_key")
            extra = self.scripts.manifest["scripts"]["enqueue"]["extra_keys"]
            if key is not None:
                idem.append(extra["pattern"].format(prefix=self.prefix, queue=self.name, key=key))
            if ukey is not None:
                idem.append(extra["unique_pattern"].format(prefix=self.prefix, queue=self.name, key=ukey))
            dkey = t.get("debounce_key")
            if dkey is not None:
                idem.append(extra["debounce_pattern"].format(prefix=self.prefix, queue=self.name, key=dkey))
            args += [("id", t.get("id") or new_id()), ("kind", t["kind"]), ("payload", _b(t["payload"])),
                     ("priority", t.get("priority", 0)), ("delay_ms", int(t.get("delay_ms", 0))),
                     ("max_attempts", t.get("max_attempts", self.max_attempts)), ("backoff", bo[0]),
                     ("backoff_base_ms", bo[1]), ("backoff_cap_ms", bo[2]), ("jitter_pct", bo[3]),
                     ("timeout_ms", t.get("timeout_ms", self.timeout_ms)),
                     ("result_ttl_ms", t.get("result_ttl_ms", self.result_ttl_ms)),
                     ("idem_ttl_ms", t.get("idempotency_ttl_ms", self.idempotency_ttl_ms) if key else 0),
                     ("options", _task_options(t, self.unique_ttl_ms if ukey else 0, dkey))]
        return "enqueue", args, idem, lambda reply: [(reply[i].decode(), reply[i + 1] == 1)
                                                    for i in range(0, len(reply), 2)]

    @_op
    def dependencies(self, task_id: str) -> _CallOf[List[Dict[str, Any]]]:
        """A task's dependencies in one call: dicts of id, state ("done", "dead", "cancelled",
        "waiting"), result (bytes, when done) and error (str, when dead or cancelled)."""
        def parse(reply: Any) -> List[Dict[str, Any]]:
            out = []
            for i in range(0, len(reply), 3):
                state, val = reply[i + 1].decode(), reply[i + 2]
                err = val.decode("utf-8", "replace").split("|", 2)[-1] if state in ("dead", "cancelled") and val else None
                out.append({"id": reply[i].decode(), "state": state,
                            "result": val if state == "done" else None, "error": err})
            return out
        return "dependencies", [("id", task_id)], (), parse

    # ---- flows and batches (lua/include/flows.lua; docs/workflows.md) ----

    def _callback_args(self, callbacks: Mapping[str, Mapping[str, Any]]) -> List[Tuple[str, Any]]:
        args: List[Tuple[str, Any]] = []
        for event, c in callbacks.items():
            bo = c.get("backoff", self.backoff)
            args += [("event", event), ("kind", c["kind"]), ("payload", _b(c.get("payload", b""))),
                     ("priority", c.get("priority", 0)), ("max_attempts", c.get("max_attempts", self.max_attempts)),
                     ("backoff", bo[0]), ("backoff_base_ms", bo[1]), ("backoff_cap_ms", bo[2]),
                     ("jitter_pct", bo[3]), ("timeout_ms", c.get("timeout_ms", self.timeout_ms)),
                     ("result_ttl_ms", c.get("result_ttl_ms", self.result_ttl_ms)), ("group", c.get("group", ""))]
        return args

    @_op
    def flow_open(self, flow_id: str, gated: bool = False, size: int = 0, ttl_ms: int = 7 * 86400000,
                  callbacks: Optional[Mapping[str, Mapping[str, Any]]] = None) -> _CallOf[bool]:
        """Open a flow (gated: its first tasks wait for the seal) or a batch; ``callbacks`` maps
        "on_success" / "on_complete" / "on_death" to a task dict (kind, payload, ...). True when
        opened, False when it existed."""
        args = [("flow", flow_id), ("gated", 1 if gated else 0), ("size", size), ("ttl_ms", ttl_ms)]
        return "flow_open", args + self._callback_args(callbacks or {}), (), lambda r: r == 1

    @_op
    def flow_seal(self, flow_id: str, cancel: bool = False) -> _CallOf[Tuple[str, str]]:
        """Seal (or cancel) a flow or batch; (state before, state after)."""
        return "flow_seal", [("flow", flow_id), ("mode", "cancel" if cancel else "seal")], (), \
            lambda r: (r[0].decode(), r[1].decode())

    @_op
    def flow_status(self, flow_id: str, start: int = 0, count: int = 1000) -> _CallOf[Optional[Dict[str, Any]]]:
        """A flow's state, counts, callbacks fired and a page of its members (id, name, state)."""
        def parse(r: Any) -> Optional[Dict[str, Any]]:
            if not r:
                return None
            d = lambda v: v.decode() if isinstance(v, bytes) else v
            events = ("on_success", "on_complete", "on_death")
            return {"state": d(r[0]), "gated": r[1] == 1, "total": r[2], "done": r[3], "dead": r[4],
                    "cancelled": r[5], "created_ms": int(d(r[6])), "ended_ms": int(d(r[7])),
                    "first_death": d(r[8]) or None,
                    "callbacks": {e: d(v) for e, v in zip(events, r[9:12]) if d(v)},
                    "tasks": [{"id": d(r[i]), "name": d(r[i + 1]) or None, "state": d(r[i + 2]) or None}
                              for i in range(12, len(r), 3)]}
        return "flow_status", [("flow", flow_id), ("start", start), ("count", count)], (), parse

    def submit_flow(self, tasks: Sequence[Mapping[str, Any]], flow_id: Optional[str] = None,
                    callbacks: Optional[Mapping[str, Mapping[str, Any]]] = None) -> Tuple[str, Dict[str, str]]:
        """Submit a whole flow, as Rust's Queue::flow: ``tasks`` are dicts with ``name``,
        ``kind``, ``payload`` and optionally ``after`` (names of other tasks of the flow),
        ``on_failure`` and the enqueue settings. Checked first (nothing written on an error),
        stored in dependency order while its first tasks wait, then sealed. Returns (flow id,
        {name: task id}); task ids are "<flow id>:<name>"."""
        limit = self._arg_max("flow_open", "size")
        order = _flow_order(tasks, limit)
        fid = flow_id or new_id()
        ids = {t["name"]: f"{fid}:{t['name']}" for t in tasks}
        self.flow_open(fid, gated=True, size=len(tasks), callbacks=callbacks)
        specs = []
        for i in order:
            t = dict(tasks[i])
            t.update(id=ids[t["name"]], flow=fid, after=[ids[a] for a in t.get("after", ())])
            specs.append(t)
        for s in range(0, len(specs), 1000):
            self.enqueue_batch(specs[s:s + 1000])
        self.flow_seal(fid)
        return fid, ids

    def open_batch(self, batch_id: Optional[str] = None,
                   callbacks: Optional[Mapping[str, Mapping[str, Any]]] = None) -> str:
        """Open a batch: add tasks with ``add_to_batch``, then ``flow_seal(batch_id)``."""
        bid = batch_id or new_id()
        self.flow_open(bid, gated=False, callbacks=callbacks)
        return bid

    def add_to_batch(self, batch_id: str, tasks: Sequence[Mapping[str, Any]]) -> List[Tuple[str, bool]]:
        """Enqueue tasks into an open batch (counted in it in the call that stores them)."""
        out: List[Tuple[str, bool]] = []
        for s in range(0, len(tasks), 1000):
            out += self.enqueue_batch([dict(t, flow=batch_id) for t in tasks[s:s + 1000]])
        return out

    @_op
    def get(self, task_id: str) -> _CallOf[Optional[Dict[str, Any]]]:
        """The task as a dict (state, attempts, record fields, error, result, progress), or None."""
        return "get", [("id", task_id)], (), lambda reply: _parse_task(task_id, reply)


    def wait(self, task_id: str, timeout: float = 30.0) -> Tuple[str, Any]:
        """Wait until the task finishes: ("done", result bytes) | ("dead", error) | ("cancelled", None).
        Raises TimeoutError, or KeyError for an unknown task."""
        deadline = time.monotonic() + timeout
        pubsub = self.r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.fin_channel)
        try:
            while True:
                t = self.get(task_id)
                if t is None:
                    raise KeyError(f"no task {task_id} on queue {self.name}")
                if t["state"] == "done":
                    return "done", t["result"]
                if t["state"] == "dead":
                    return "dead", t["error"]
                if t["state"] == "cancelled":
                    return "cancelled", None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"task {task_id} still {t['state']} after {timeout}s")
                end = time.monotonic() + min(left, 1.0)
                while time.monotonic() < end:
                    msg = pubsub.get_message(timeout=max(0.0, end - time.monotonic()))
                    if msg and task_id.encode() in msg["data"].split(b","):
                        break
        finally:
            pubsub.close()

    @_op
    def reclaim(self, limit: int = 100) -> _CallOf[Tuple[int, int]]:
        """Take back expired leases (maintenance); returns (requeued, dead)."""
        return "reclaim", [("limit", limit), ("dead_ttl_ms", self.dead_ttl_ms),
                           ("worker_ttl_ms", self.lease_ms * 3)], (), lambda reply: (reply[0], reply[1])

    @_op
    def cancel(self, *task_ids: str) -> _CallOf[List[Optional[str]]]:
        """Cancel tasks; returns the state each was in ("pending", "delayed", "leased"), or None."""
        return "cancel", [("ttl_ms", self.dead_ttl_ms)] + [("id", i) for i in task_ids], (), \
            lambda reply: [s.decode() or None for s in reply]

    @_op
    def configure(self, events_max_len: int = 10000, dispatch: str = "pull", aging_ms: int = 0,
                  rate_interval_us: int = 0, burst: int = 1, concurrency: int = 0,
                  fairness: str = "fifo", group_concurrency: int = 0, group_rate_interval_us: int = 0,
                  group_burst: int = 1) -> _CallOf[str]:
        """Store the queue settings the scripts read (as baton-worker/-scheduler do at start from
        [queues.Q]): events stream cap, dispatch mode, priority aging in ms per priority step,
        the rate limit (µs between two tasks, 0 = none; 200/s = 5000) with its burst, and the
        concurrency cap (0 = none), fairness ("fifo", or "fair": weighted fair queueing across
        task groups) and, on a fair queue, the cap per group (0 = none) and the rate limit per
        group (µs between two of its tasks, 0 = none) with its burst. Returns the dispatch mode
        stored before ("" for a new queue)."""
        args = [("events_max_len", events_max_len), ("dispatch", dispatch), ("aging_ms", aging_ms),
                ("rate_interval_us", rate_interval_us), ("burst", burst), ("concurrency", concurrency),
                ("fairness", fairness), ("group_concurrency", group_concurrency),
                ("group_rate_interval_us", group_rate_interval_us), ("group_burst", group_burst)]
        return "configure", args, (), lambda reply: reply.decode()

    @_op
    def counts(self) -> _CallOf[Dict[str, int]]:
        """Tasks per state set and the queue's totals, as a dict."""
        names = ["pending", "delayed", "leased", "done", "dead", "cancelled", "paused", "workers",
                 "completed_total", "failed_total", "dead_total", "expired_total", "enqueued_total",
                 "retried_total", "aging_ms", "lapsed_total", "rate_interval_us", "burst", "concurrency",
                 "running", "held", "held_rate_total", "held_concurrency_total",
                 "held_group_rate_total", "held_group_concurrency_total", "group_concurrency",
                 "group_rate_interval_us", "group_burst"]
        return "counts", [], (), lambda reply: dict(zip(names, reply))

    @_op
    def set_group_weight(self, group: str, weight: int) -> _CallOf[int]:
        """A group's weight under fair queueing (1..10000), at run time. Returns the weight it
        had."""
        return "group_set", [("group", group), ("field", "weight"), ("value", weight)], (), lambda r: int(r[0])

    @_op
    def set_group_concurrency(self, group: str, cap: int) -> _CallOf[Optional[int]]:
        """A group's own cap on running tasks (0 = none, even under the queue's
        group_concurrency), at run time. Returns its own cap before (None: it had none)."""
        return ("group_set", [("group", group), ("field", "concurrency"), ("value", cap)], (),
                lambda r: int(r[1]) if int(r[1]) >= 0 else None)

    @_op
    def set_group_rate(self, group: str, interval_us: int) -> _CallOf[Optional[int]]:
        """A group's own rate limit as µs between two of its tasks (0 = none, even under the
        queue's group_rate; 10/s = 100000), at run time (its burst: set_group_burst). Returns
        its own rate before (None: it had none)."""
        return ("group_set", [("group", group), ("field", "rate"), ("value", interval_us)], (),
                lambda r: int(r[2]) if int(r[2]) >= 0 else None)

    @_op
    def set_group_burst(self, group: str, burst: int) -> _CallOf[Optional[int]]:
        """The burst of a group's own rate limit (1..1000000). Returns its own burst before
        (None: it had none)."""
        return ("group_set", [("group", group), ("field", "burst"), ("value", burst)], (),
                lambda r: int(r[3]) if int(r[3]) >= 0 else None)

    @_op
    def reset_group(self, group: str) -> _CallOf[None]:
        """Put a group back to weight 1 and the queue's group_concurrency, group_rate and
        group_burst."""
        return "group_set", [("group", group), ("field", "reset"), ("value", 0)], (), lambda r: None

    @_op
    def groups(self, limit: int = 50) -> _CallOf[List[Dict[str, Any]]]:
        """The queue's groups: those with pending tasks (fair queues; next served first), then
        those parked by a limit of their own, then those with settings: dicts of name, backlog,
        weight, virtual_time (None when not ready), concurrency (None: no cap), running,
        parked_until_ms (None: not parked), rate_interval_us (None: no rate limit), burst,
        held_by ("group_rate" or "group_concurrency" while parked, else None)."""
        def parse(reply: Any) -> List[Dict[str, Any]]:
            return [{"name": reply[i].decode(), "backlog": int(reply[i + 1]), "weight": int(reply[i + 2]),
                     "virtual_time": float(reply[i + 3]) if reply[i + 3] else None,
                     "concurrency": int(reply[i + 4]) if int(reply[i + 4]) >= 0 else None,
                     "running": int(reply[i + 5]),
                     "parked_until_ms": int(reply[i + 6]) or None,
                     "rate_interval_us": int(reply[i + 7]) or None, "burst": int(reply[i + 8]),
                     "held_by": reply[i + 9].decode() or None}
                    for i in range(0, len(reply), 10)]
        return "groups", [("limit", limit)], (), parse

    # ---- worker ----

    @_op
    def register(self, worker: str, info: Mapping[str, Any]) -> _CallOf[None]:
        """Enter the queue's worker registry with a JSON-able description."""
        return "register", [("worker", worker), ("info", json.dumps(info))], (), lambda reply: None

    def leave(self, worker: str) -> None:
        """Shutdown begins: no more push assignments; untaken ones go back to pending."""
        while self._call("deregister", [("worker", worker), ("mode", "leave")]) >= 1000:
            pass

    def release(self, worker: str, leases: Sequence[Lease]) -> int:
        """Give leases back unrun (shutdown): ``leases`` is [(id, token)]; they go back to pending
        without charging an attempt. Returns how many were released."""
        return sum(self._release_chunk(worker, leases[i:i + 1000]) for i in range(0, len(leases), 1000))

    @_op
    def _release_chunk(self, worker: str, leases: Sequence[Lease]) -> _CallOf[int]:
        args = [("worker", worker)]
        for task_id, token in leases:
            args += [("id", task_id), ("token", token)]
        return "release", args, (), lambda reply: sum(1 for s in reply if s == 1)

    @_op
    def deregister(self, worker: str) -> _CallOf[None]:
        """Remove the worker from the registry (after its last lease ended)."""
        return "deregister", [("worker", worker), ("mode", "final")], (), lambda reply: None

    @_op
    def claim(self, worker: str, n: int = 1) -> _CallOf[Claims]:
        """Claim up to n pending tasks under a lease; returns [Claimed] (a Claims list, whose
        wait_ms says whether the queue's rate limit or concurrency cap held the call back)."""
        return "claim", [("worker", worker), ("n", n), ("lease_ms", self.lease_ms),
                         ("dead_ttl_ms", self.dead_ttl_ms)], (), _parse_claimed

    @_op
    def take(self, worker: str, n: int = 1) -> _CallOf[Claims]:
        """Push queues: take up to n tasks the dispatcher assigned to ``worker``."""
        return "take", [("worker", worker), ("n", n), ("lease_ms", self.lease_ms),
                        ("dead_ttl_ms", self.dead_ttl_ms)], (), _parse_claimed

    @_op
    def heartbeat(self, worker: str, leases: Sequence[Lease]) -> _CallOf[Tuple[bool, List[str]]]:
        """Renew leases [(id, token)]; returns (registered, ["renewed"|"lost"|"cancelled", ...])."""
        args = [("worker", worker), ("lease_ms", self.lease_ms)]
        for task_id, token in leases:
            args += [("id", task_id), ("token", token)]
        names = {1: "renewed", 2: "cancelled"}
        return "heartbeat", args, (), lambda reply: (reply[0] == 1, [names.get(s, "lost") for s in reply[1:]])

    @_op
    def start(self, worker: str, token: Union[int, str]) -> _CallOf[int]:
        """Mark the runs of every lease ``worker`` holds with a token up to ``token`` as started;
        until then an expired lease of such a run is a stray (back to pending, not charged)."""
        return "start", [("worker", worker), ("token", int(token))], (), lambda reply: reply

    def _arg_max(self, script: str, arg: str) -> int:
        """The manifest's upper bound of one script argument."""
        return next(a["max"] for a in self.scripts.manifest["scripts"][script]["argv"] if a["name"] == arg)

    @_op
    def progress(self, worker: str, task: Claimed, percent: float, message: str = "") -> _CallOf[str]:
        """Report a running task's progress under its lease: ``percent`` 0-100 and a short note
        (at most 200 bytes). Returns "stored" or "cancelled"; raises StaleLease if the lease is
        gone. A ``progress`` event announces it (at most one per task per 500 ms)."""
        note = _b(message)[:self._arg_max("progress", "message")]
        def parse(reply: Any) -> Any:
            if reply == 0:
                raise StaleLease(f"task {task.id}: the lease is not held by {worker} any more")
            return "stored" if reply == 1 else "cancelled"
        return "progress", [("worker", worker), ("id", task.id), ("token", task.token),
                            ("percent", max(0, min(100, int(round(percent))))), ("message", note)], (), parse

    @_op
    def complete(self, worker: str, task: Claimed, result: Payload = b"", busy_ms: float = 0) -> _CallOf[None]:
        """Acknowledge a claimed task with its result; raises StaleLease if the lease is gone.
        ``busy_ms`` (the handler's run time) feeds the worker statistics."""
        def parse(reply: Any) -> Any:
            if reply[0] != 1:
                raise StaleLease(f"task {task.id}: the lease is not held by {worker} any more")
        return "complete", [("worker", worker), ("busy_ms", int(busy_ms)), ("id", task.id), ("token", task.token),
                            ("result_ttl_ms", task.result_ttl_ms), ("result", _b(result))], (), parse

    @_op
    def complete_many(self, worker: str, done: Sequence[Tuple[Claimed, Payload]], busy_ms: float = 0) -> _CallOf[List[bool]]:
        """Acknowledge 1..1000 claimed tasks with their results in one call: per task True
        (completed) or False (stale: the lease was gone and the result refused). ``busy_ms`` is
        the handlers' run time, summed."""
        args: List[Tuple[str, Any]] = [("worker", worker), ("busy_ms", int(busy_ms))]
        for task, result in done:
            args += [("id", task.id), ("token", task.token), ("result_ttl_ms", task.result_ttl_ms), ("result", _b(result))]
        return "complete", args, (), lambda reply: [s == 1 for s in reply]

    @_op
    def fail(self, worker: str, task: Claimed, error: Any, retry: bool = True, busy_ms: float = 0) -> _CallOf[str]:
        """Report a failed attempt: returns "retrying" or "dead"; raises StaleLease."""
        mode = f"r:{random.random():.6f}" if retry else "final"
        def parse(reply: Any) -> Any:
            if reply[0] == 0:
                raise StaleLease(f"task {task.id}: the lease is not held by {worker} any more")
            return "retrying" if reply[0] == 1 else "dead"
        return "fail", [("worker", worker), ("dead_ttl_ms", self.dead_ttl_ms), ("busy_ms", int(busy_ms)),
                        ("id", task.id), ("token", task.token), ("error", str(error)[:8192]), ("mode", mode)], (), parse


class _Acks:
    """Acknowledgements sent in batches: the handler thread that finds no call in flight sends
    every result queued meanwhile in one ``complete`` call (no added latency when idle, one call
    for many results under load); the others wait for their status."""

    def __init__(self, q: Queue, worker: str) -> None:
        self.q, self.worker = q, worker
        self._lock = threading.Lock()
        self._queued: List[List[Any]] = []  # [task, result, busy_ms, done Event, status]
        self._sending = False

    def complete(self, task: Claimed, result: bytes, busy_ms: float) -> bool:
        item: List[Any] = [task, result, busy_ms, threading.Event(), None]
        with self._lock:
            self._queued.append(item)
            lead, self._sending = not self._sending, True
        if lead:
            self._send()
        item[3].wait()
        if isinstance(item[4], Exception):
            raise item[4]
        return bool(item[4])

    def _send(self) -> None:
        while True:
            with self._lock:
                batch, self._queued = self._queued[:1000], self._queued[1000:]
                if not batch:
                    self._sending = False
                    return
            statuses: List[Any]
            try:
                statuses = list(self.q.complete_many(self.worker, [(i[0], i[1]) for i in batch],
                                                     busy_ms=sum(i[2] for i in batch)))
            except Exception as e:  # noqa: BLE001 — each waiting handler thread gets it
                statuses = [e] * len(batch)
            for item, status in zip(batch, statuses):
                item[4] = status
                item[3].set()


class Worker:
    """A worker loop: claims tasks for up to ``concurrency`` handler threads, heartbeats every
    lease it holds from a thread, completes or fails each task. Handlers take a Claimed and
    return the result (bytes/str/JSON-able); raising Fatal sends the task to the dead-letter set,
    any other exception retries it; ``task.progress(percent, message)`` reports progress.
    ``push=True`` for a queue with ``dispatch = "push"``: take assigned tasks instead of claiming.
    On SIGTERM or SIGINT (when run from the main thread) it stops claiming, gives the tasks in
    flight ``shutdown_grace_s`` to finish, and releases the leases of any still running (they run
    again elsewhere, not charged), like the Rust worker."""

    def __init__(self, queue: Queue, handlers: Mapping[str, Callable[[Claimed], Payload]], heartbeat_ms: int = 1000,
                 poll_s: float = 1.0, worker_id: Optional[str] = None, push: bool = False,
                 concurrency: int = 1, shutdown_grace_s: float = 30.0) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.q, self.handlers, self.push = queue, handlers, push
        self.heartbeat_ms, self.poll_s = heartbeat_ms, poll_s
        self.concurrency, self.shutdown_grace_s = concurrency, shutdown_grace_s
        self.id = worker_id or f"py-{os.getpid()}-{new_id()}"
        self._held: Dict[str, str] = {}
        self._acks = _Acks(queue, self.id)
        self._lock = threading.Lock()
        self._lost: set = set()
        self._done = 0

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_ms / 1000.0):
            with self._lock:
                held = list(self._held.items())
            registered, statuses = self.q.heartbeat(self.id, held)
            if not registered:
                self.q.register(self.id, self._info())
            with self._lock:
                for (task_id, _), status in zip(held, statuses):
                    if status != "renewed":
                        self._lost.add(task_id)

    def _info(self) -> Dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "concurrency": self.concurrency,
                "capacity": self.concurrency, "weight": 1, "kinds": sorted(self.handlers), "language": "python"}

    @staticmethod
    def _trap_signals(stop: threading.Event) -> Dict[int, Any]:
        """SIGTERM/SIGINT set ``stop`` (main thread only); returns the handlers to restore."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        old: Dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, lambda *_: stop.set())
        return old

    def run(self, stop: Optional[threading.Event] = None, max_tasks: Optional[int] = None) -> int:
        """Process tasks until ``stop`` (a threading.Event) is set, SIGTERM/SIGINT arrives, or
        ``max_tasks`` have been taken and finished; returns how many tasks it finished."""
        stop = stop or threading.Event()
        restore = self._trap_signals(stop)
        hb_stop = threading.Event()
        self.q.register(self.id, self._info())
        hb = threading.Thread(target=self._heartbeat_loop, args=(hb_stop,), daemon=True)
        hb.start()
        pubsub = self.q.r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.q.wake_channel)
        free = threading.Semaphore(self.concurrency)
        taken = 0
        try:
            while not stop.is_set() and (max_tasks is None or taken < max_tasks):
                if not free.acquire(timeout=0.2):
                    continue
                want = 1
                while want < self.concurrency and (max_tasks is None or taken + want < max_tasks) \
                        and free.acquire(blocking=False):
                    want += 1
                tasks = self.q.take(self.id, want) if self.push else self.q.claim(self.id, want)
                for _ in range(want - len(tasks)):
                    free.release()
                if not tasks:
                    pubsub.get_message(timeout=tasks.nap(self.poll_s))  # woken at once when work arrives
                    continue
                with self._lock:
                    for task in tasks:
                        self._held[task.id] = task.token
                self._mark_started(tasks)
                for task in tasks:
                    taken += 1
                    threading.Thread(target=self._slot, args=(task, free), daemon=True).start()
        finally:
            self.q.leave(self.id)  # no more push assignments
            self._drain(free, self.shutdown_grace_s if max_tasks is None or stop.is_set() else None)
            hb_stop.set()
            hb.join()
            pubsub.close()
            self.q.deregister(self.id)
            for sig, h in restore.items():
                signal.signal(sig, h)
        return self._done

    def _drain(self, free: threading.Semaphore, grace_s: Optional[float]) -> None:
        """Wait for the tasks in flight (up to ``grace_s``; None = for all of them), then release
        the leases of any still running."""
        deadline = None if grace_s is None else time.monotonic() + grace_s
        for _ in range(self.concurrency):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not free.acquire(timeout=left):
                break
        with self._lock:
            running = list(self._held.items())
        if running:
            self.q.release(self.id, running)

    def _slot(self, task: Claimed, free: threading.Semaphore) -> None:
        try:
            self._run_one(task)
        finally:
            free.release()

    def _mark_started(self, tasks: Sequence[Claimed]) -> None:
        """Every task of this claim reply starts now: one mark (the highest token) covers them
        all (docs/contract.md, "Start marks"). Without it an expired lease of these runs is a
        stray, not charged: the safe side."""
        try:
            self.q.start(self.id, max(int(t.token) for t in tasks))
        except redis.exceptions.RedisError:
            pass

    def _run_one(self, task: Claimed) -> None:
        def report(percent: float, message: str = "") -> None:
            if self.q.progress(self.id, task, percent, message) == "cancelled":
                raise StaleLease(f"task {task.id} was cancelled")
        task._reporter = report
        started = time.monotonic()
        busy = lambda: (time.monotonic() - started) * 1000  # noqa: E731
        try:
            handler = self.handlers.get(task.kind)
            if handler is None:
                raise RuntimeError(f"no handler for task kind {task.kind!r} on worker {self.id}")
            result = handler(task)
            self._acks.complete(task, _b(result if result is not None else b""), busy())  # False: stale, refused
        except StaleLease:
            pass  # reclaimed or cancelled meanwhile: the result is refused, as it must be
        except Fatal as e:
            self._fail(task, e, retry=False, busy_ms=busy())
        except Exception as e:  # noqa: BLE001 — any handler error is a failed attempt
            self._fail(task, f"{type(e).__name__}: {e}", retry=True, busy_ms=busy())
        finally:
            with self._lock:
                self._held.pop(task.id, None)
                self._lost.discard(task.id)
                self._done += 1

    def _fail(self, task: Claimed, error: Any, retry: bool, busy_ms: float = 0) -> None:
        try:
            self.q.fail(self.id, task, error, retry=retry, busy_ms=busy_ms)
        except StaleLease:
            pass


# ---- asyncio ----

def _async_op(build: Callable[..., _CallOf[Any]]) -> Callable[..., Any]:
    @functools.wraps(build)
    async def run(self: Any, *a: Any, **kw: Any) -> Any:
        name, args, extra, parse = build(self, *a, **kw)
        return parse(await self._call(name, args, extra))
    run.build = build  # type: ignore[attr-defined]
    return run


class AsyncQueue(Queue):
    """Queue on redis-py's asyncio client (``redis.asyncio.Redis``): the same operations, each a
    coroutine. Make one with ``await AsyncQueue.open(r, name, ...)``, which also checks the
    queue's schema version (the constructor cannot await)."""

    def __init__(self, r: Any, name: str, **opts: Any) -> None:
        opts["check_version"] = False
        super().__init__(r, name, **opts)

    @classmethod
    async def open(cls, r: Any, name: str, check_version: bool = True, **opts: Any) -> "AsyncQueue":
        q = cls(r, name, **opts)
        if check_version:
            await q.check_version()
        return q

    if TYPE_CHECKING:  # the operations below are Queue's, made coroutines by _async_op
        async def enqueue_batch(self, tasks: Sequence[Mapping[str, Any]]) -> List[Tuple[str, bool]]: ...  # type: ignore[override]  # noqa: E704
        async def get(self, task_id: str) -> Optional[Dict[str, Any]]: ...  # type: ignore[override]  # noqa: E704
        async def dependencies(self, task_id: str) -> List[Dict[str, Any]]: ...  # type: ignore[override]  # noqa: E704
        async def reclaim(self, limit: int = 100) -> Tuple[int, int]: ...  # type: ignore[override]  # noqa: E704
        async def cancel(self, *task_ids: str) -> List[Optional[str]]: ...  # type: ignore[override]  # noqa: E704
        async def configure(self, events_max_len: int = 10000, dispatch: str = "pull", aging_ms: int = 0,  # type: ignore[override]  # noqa: E501
                            rate_interval_us: int = 0, burst: int = 1, concurrency: int = 0,
                            fairness: str = "fifo", group_concurrency: int = 0,
                            group_rate_interval_us: int = 0, group_burst: int = 1) -> str: ...  # noqa: E704
        async def counts(self) -> Dict[str, int]: ...  # type: ignore[override]  # noqa: E704
        async def set_group_weight(self, group: str, weight: int) -> int: ...  # type: ignore[override]  # noqa: E704
        async def set_group_concurrency(self, group: str, cap: int) -> Optional[int]: ...  # type: ignore[override]  # noqa: E704,E501
        async def set_group_rate(self, group: str, interval_us: int) -> Optional[int]: ...  # type: ignore[override]  # noqa: E704,E501
        async def set_group_burst(self, group: str, burst: int) -> Optional[int]: ...  # type: ignore[override]  # noqa: E704,E501
        async def reset_group(self, group: str) -> None: ...  # type: ignore[override]  # noqa: E704
        async def groups(self, limit: int = 50) -> List[Dict[str, Any]]: ...  # type: ignore[override]  # noqa: E704
        async def register(self, worker: str, info: Mapping[str, Any]) -> None: ...  # type: ignore[override]  # noqa: E704
        async def _release_chunk(self, worker: str, leases: Sequence[Lease]) -> int: ...  # type: ignore[override]  # noqa: E704
        async def deregister(self, worker: str) -> None: ...  # type: ignore[override]  # noqa: E704
        async def claim(self, worker: str, n: int = 1) -> Claims: ...  # type: ignore[override]  # noqa: E704
        async def take(self, worker: str, n: int = 1) -> Claims: ...  # type: ignore[override]  # noqa: E704
        async def heartbeat(self, worker: str, leases: Sequence[Lease]) -> Tuple[bool, List[str]]: ...  # type: ignore[override]  # noqa: E704,E501
        async def start(self, worker: str, token: Union[int, str]) -> int: ...  # type: ignore[override]  # noqa: E704
        async def progress(self, worker: str, task: Claimed, percent: float, message: str = "") -> str: ...  # type: ignore[override]  # noqa: E704,E501
        async def complete(self, worker: str, task: Claimed, result: Payload = b"", busy_ms: float = 0) -> None: ...  # type: ignore[override]  # noqa: E704,E501
        async def complete_many(self, worker: str, done: Sequence[Tuple[Claimed, Payload]], busy_ms: float = 0) -> List[bool]: ...  # type: ignore[override]  # noqa: E704,E501
        async def fail(self, worker: str, task: Claimed, error: Any, retry: bool = True, busy_ms: float = 0) -> str: ...  # type: ignore[override]  # noqa: E704,E501

    async def _call(self, name: str, args: List[Tuple[str, Any]], extra_keys: Sequence[str] = ()) -> Any:  # type: ignore[override]
        self.scripts.check(name, args)
        try:
            return await self._registered[name](keys=self.keys + list(extra_keys), args=[v for _, v in args])
        except redis.exceptions.ResponseError as e:
            raise _script_error(e) from None

    async def check_version(self) -> None:
        self._check_schema(await self.r.hget(self.keys[0], "v"))

    async def enqueue(self, kind: str, payload: Payload, **opts: Any) -> Tuple[str, bool]:  # type: ignore[override]
        return (await self.enqueue_batch([dict(opts, kind=kind, payload=payload)]))[0]

    async def wait(self, task_id: str, timeout: float = 30.0) -> Tuple[str, Any]:  # type: ignore[override]
        """As Queue.wait, without blocking the event loop."""
        deadline = time.monotonic() + timeout
        pubsub = self.r.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.fin_channel)
        try:
            while True:
                t = await self.get(task_id)
                if t is None:
                    raise KeyError(f"no task {task_id} on queue {self.name}")
                if t["state"] in ("done", "dead", "cancelled"):
                    return t["state"], {"done": t["result"], "dead": t["error"]}.get(t["state"])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"task {task_id} still {t['state']} after {timeout}s")
                end = time.monotonic() + min(left, 1.0)
                while time.monotonic() < end:
                    msg = await pubsub.get_message(timeout=max(0.0, end - time.monotonic()))
                    if msg and task_id.encode() in msg["data"].split(b","):
                        break
        finally:
            await pubsub.aclose()

    async def leave(self, worker: str) -> None:  # type: ignore[override]
        while await self._call("deregister", [("worker", worker), ("mode", "leave")]) >= 1000:
            pass

    async def release(self, worker: str, leases: Sequence[Lease]) -> int:  # type: ignore[override]
        return sum([await self._release_chunk(worker, leases[i:i + 1000]) for i in range(0, len(leases), 1000)])


for _name, _method in list(vars(Queue).items()):
    if hasattr(_method, "build"):
        setattr(AsyncQueue, _name, _async_op(_method.build))


class AsyncWorker:
    """Worker for asyncio handlers (``async def handler(task)``): up to ``concurrency`` tasks run
    at once as asyncio tasks; otherwise as Worker — heartbeats, start marks, results, progress
    (``await task.progress(...)``), wake-ups on pub/sub, and on SIGTERM/SIGINT (or ``stop``) no
    more claims, ``shutdown_grace_s`` for the tasks in flight, then their leases released. Unlike
    Worker it cancels a handler whose lease was lost or whose task was cancelled."""

    def __init__(self, queue: AsyncQueue, handlers: Mapping[str, Callable[[Claimed], Any]], concurrency: int = 10,
                 heartbeat_ms: int = 1000, poll_s: float = 1.0, worker_id: Optional[str] = None,
                 push=False, shutdown_grace_s=30.0):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.q, self.handlers, self.push = queue, handlers, push
        self.concurrency, self.heartbeat_ms, self.poll_s = concurrency, heartbeat_ms, poll_s
        self.shutdown_grace_s = shutdown_grace_s
        self.id = worker_id or f"py-{os.getpid()}-{new_id()}"
        self._held: Dict[str, Tuple[str, Any]] = {}  # id -> (token, asyncio task)
        self._acks: List[Tuple[Claimed, bytes, float, Any]] = []  # results waiting for the next complete call
        self._acking = False
        self._done = 0

    def _info(self) -> Dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "concurrency": self.concurrency,
                "capacity": self.concurrency, "weight": 1, "kinds": sorted(self.handlers), "language": "python"}

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(stop.wait(), self.heartbeat_ms / 1000.0)
                return
            except asyncio.TimeoutError:
                pass
            held = [(i, tok) for i, (tok, _) in self._held.items()]
            registered, statuses = await self.q.heartbeat(self.id, held)
            if not registered:
                await self.q.register(self.id, self._info())
            for (task_id, token), status in zip(held, statuses):
                entry = self._held.get(task_id)
                if status != "renewed" and entry and entry[0] == token:
                    entry[1].cancel()  # lost or cancelled: its result would be refused anyway

    async def run(self, stop: Optional[asyncio.Event] = None, max_tasks: Optional[int] = None) -> int:
        """Process tasks until ``stop`` (an asyncio.Event) is set, SIGTERM/SIGINT arrives, or
        ``max_tasks`` have been taken and finished; returns how many tasks it finished."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        trapped = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
                trapped.append(sig)
        hb_stop = asyncio.Event()
        await self.q.register(self.id, self._info())
        hb = asyncio.ensure_future(self._heartbeat_loop(hb_stop))
        pubsub = self.q.r.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.q.wake_channel)
        free = asyncio.Semaphore(self.concurrency)
        taken = 0
        try:
            while not stop.is_set() and (max_tasks is None or taken < max_tasks):
                try:
                    await asyncio.wait_for(free.acquire(), 0.2)
                except asyncio.TimeoutError:
                    continue
                want = 1
                while want < self.concurrency and (max_tasks is None or taken + want < max_tasks) \
                        and not free.locked():
                    await free.acquire()
                    want += 1
                tasks = await (self.q.take(self.id, want) if self.push else self.q.claim(self.id, want))
                for _ in range(want - len(tasks)):
                    free.release()
                if not tasks:
                    await pubsub.get_message(timeout=tasks.nap(self.poll_s))  # woken at once when work arrives
                    continue
                try:  # every task of this reply starts now: one mark covers them all
                    await self.q.start(self.id, max(int(t.token) for t in tasks))
                except redis.exceptions.RedisError:
                    pass  # unmarked runs whose lease expires are strays, not charged
                for task in tasks:
                    taken += 1
                    run = asyncio.ensure_future(self._run_one(task, free))
                    self._held[task.id] = (task.token, run)
        finally:
            await self.q.leave(self.id)
            running = [run for _, run in self._held.values()]
            if running:
                grace = self.shutdown_grace_s if max_tasks is None or stop.is_set() else None
                await asyncio.wait(running, timeout=grace)
            left = [(i, tok) for i, (tok, run) in self._held.items()]
            for _, run in list(self._held.values()):
                run.cancel()
            if left:
                await self.q.release(self.id, left)
            hb_stop.set()
            await hb
            await pubsub.aclose()
            await self.q.deregister(self.id)
            for sig in trapped:
                loop.remove_signal_handler(sig)
        return self._done

    async def _run_one(self, task: Claimed, free: asyncio.Semaphore) -> None:
        started = time.monotonic()
        busy = lambda: (time.monotonic() - started) * 1000  # noqa: E731

        async def report(percent: float, message: str = "") -> None:
            if await self.q.progress(self.id, task, percent, message) == "cancelled":
                raise StaleLease(f"task {task.id} was cancelled")
        task._reporter = report
        try:
            handler = self.handlers.get(task.kind)
            if handler is None:
                raise RuntimeError(f"no handler for task kind {task.kind!r} on worker {self.id}")
            result = await handler(task)
            if await self._complete(task, _b(result if result is not None else b""), busy()):
                self._done += 1
        except (StaleLease, asyncio.CancelledError):
            pass  # lost, cancelled or released: another run owns the task now
        except Fatal as e:
            await self._fail(task, e, False, busy())
        except Exception as e:  # noqa: BLE001 — any handler error is a failed attempt
            await self._fail(task, f"{type(e).__name__}: {e}", True, busy())
        finally:
            entry = self._held.get(task.id)
            if entry and entry[0] == task.token:
                del self._held[task.id]
            free.release()

    async def _complete(self, task: Claimed, result: bytes, busy_ms: float) -> bool:
        """Results finishing while a complete call is in flight go together in the next one,
        sent by a task of its own (a handler cancelled meanwhile cannot strand the others')."""
        done = asyncio.get_running_loop().create_future()
        self._acks.append((task, result, busy_ms, done))
        if not self._acking:
            self._acking = True
            asyncio.ensure_future(self._send_acks())
        return bool(await done)

    async def _send_acks(self) -> None:
        try:
            while self._acks:
                batch, self._acks = self._acks[:1000], self._acks[1000:]
                try:
                    statuses: List[Any] = list(await self.q.complete_many(
                        self.id, [(t, r) for t, r, _, _ in batch], busy_ms=sum(b for _, _, b, _ in batch)))
                except Exception as e:  # noqa: BLE001 — each waiting handler gets it
                    statuses = [e] * len(batch)
                for (_, _, _, fut), status in zip(batch, statuses):
                    if fut.done():
                        continue  # its handler was cancelled meanwhile
                    if isinstance(status, Exception):
                        fut.set_exception(status)
                    else:
                        fut.set_result(status)
        finally:
            self._acking = False

    async def _fail(self, task: Claimed, error: Any, retry: bool, busy_ms: float) -> None:
        try:
            await self.q.fail(self.id, task, error, retry=retry, busy_ms=busy_ms)
            self._done += 1
        except StaleLease:
            pass
