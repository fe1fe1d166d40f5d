import { createHash } from "node:crypto";
import { hostname } from "node:os";

/** Sonyflake's epoch as ZITADEL configures it: 2019-04-29T00:00:00Z. */
const EPOCH_MS = Date.UTC(2019, 3, 29);
const TIME_UNIT_MS = 10;
const SEQUENCE_BITS = 8n;
const MACHINE_BITS = 16n;
const MAX_SEQUENCE = (1 << Number(SEQUENCE_BITS)) - 1;

export type IdGenerator = () => string;

/**
 * Creates a Sonyflake-style id generator: 39 bits of 10 ms ticks since 2019-04-29, 8 bits of
 * sequence, 16 bits of machine id, rendered as a decimal string (about 18 digits), so ids look
 * like ZITADEL's and rise with time.
 *
 * When more than 256 ids are asked for within one tick, the generator moves on to the next tick
 * instead of sleeping as Sonyflake does: ids stay unique and increasing, and may run slightly
 * ahead of the clock during bursts.
 */
export function createIdGenerator(machineId = defaultMachineId(), now: () => number = Date.now): IdGenerator {
  const machine = BigInt(machineId & 0xffff);
  let lastTick = -1;
  let sequence = 0;
  return () => {
    const tick = Math.floor((now() - EPOCH_MS) / TIME_UNIT_MS);
    if (tick > lastTick) {
      lastTick = tick;
      sequence = 0;
    } else if (sequence < MAX_SEQUENCE) {
      sequence++;
    } else {
      lastTick++;
      sequence = 0;
    }
    const id = (BigInt(lastTick) << (SEQUENCE_BITS + MACHINE_BITS)) | (BigInt(sequence) << MACHINE_BITS) | machine;
    return id.toString();
  };
}

/** Host name and process id hashed to 16 bits, so replicas on one host get different ids. */
function defaultMachineId(): number {
  return createHash("sha256").update(`${hostname()}:${process.pid}`).digest().readUInt16BE(0);
}
