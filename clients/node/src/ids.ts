import { randomBytes } from "node:crypto";

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** A ULID: 48 bits of milliseconds + 80 random bits, 26 characters (as the Rust and Python clients). */
export function newId(): string {
  let n = (BigInt(Date.now()) << 80n) | BigInt("0x" + randomBytes(10).toString("hex"));
  const out: string[] = new Array(26);
  for (let i = 25; i >= 0; i--) {
    out[i] = CROCKFORD[Number(n & 31n)];
    n >>= 5n;
  }
  return out.join("");
}
