// The errors of the script contract (lua/manifest.json "errors"), as classes.

/** A script refused a call; `code` is the contract's error code. Nothing was written. */
export class BatonError extends Error {
  readonly code: string;
  readonly detail: string;
  constructor(code: string, detail: string) {
    super(`${code} ${detail}`);
    this.name = new.target.name;
    this.code = code;
    this.detail = detail;
  }
}

/** BADARG: an argument is missing or out of range; the message names it. */
export class BadArgument extends BatonError {}

/** TOOLARGE: a payload is over the queue's `maxPayload`. */
export class PayloadTooLarge extends BatonError {}

/** VERSION: the queue's data schema differs from these scripts'. */
export class VersionMismatch extends BatonError {}

/** NOPERM: the Redis user may not run this transition (ACL). */
export class NoPermission extends BatonError {}

/** The lease is not held any more (reclaimed, cancelled, released or already acknowledged). */
export class StaleLease extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StaleLease";
  }
}

/** Throw from a handler to send the task to the dead-letter set without retrying. */
export class Fatal extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Fatal";
  }
}

const CODES: Record<string, new (code: string, detail: string) => BatonError> = {
  BADARG: BadArgument,
  TOOLARGE: PayloadTooLarge,
  VERSION: VersionMismatch,
  NOPERM: NoPermission,
};

/** The contract error a Redis error reply stands for, or the error itself when it is not one. */
export function scriptError(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const text = e.message;
  const space = text.indexOf(" ");
  const code = space < 0 ? text : text.slice(0, space);
  const cls = CODES[code];
  if (!cls) return e;
  // Redis may append where in the script the error was raised
  return new cls(code, text.slice(space + 1).split(" script: ")[0]);
}
