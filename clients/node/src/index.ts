/**
 * Baton for Node.js: enqueue, inspect, wait for and work Baton tasks.
 *
 * This client holds no queue logic of its own: every state change is one call of Baton's Lua
 * scripts (vendored by `baton scripts dump`), checked against their manifest before it is sent,
 * so Node, Python and Rust producers and workers share queues safely.
 */
export { BatonError, BadArgument, PayloadTooLarge, VersionMismatch, NoPermission, StaleLease, Fatal } from "./errors.js";
export { newId } from "./ids.js";
export { Scripts, fillPattern } from "./scripts.js";
export type { Manifest, ScriptSpec, ArgSpec, Arg, ArgValue } from "./scripts.js";
export { Queue, DEFAULTS, toBytes } from "./queue.js";
export type {
  QueueOptions, Claims, GroupInfo, Dependency, TaskSpec, Backoff, Enqueued, EnqueueStatus, Counts, LeaseRef, Completion, Outcome, HeartbeatStatus, Payload,
} from "./queue.js";
export { Claimed, parseRecord } from "./task.js";
export type { TaskRecord, TaskInfo, State, Progress, BatonEvent } from "./task.js";
export { Worker } from "./worker.js";
export type { Handler, WorkerOptions } from "./worker.js";
