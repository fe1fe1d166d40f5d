import { availableParallelism } from "node:os";
import Tinypool from "tinypool";

/** The tasks of digest-worker.cjs and what each one takes; each resolves to the final digest. */
export interface DigestTasks {
  md5Crypt: { password: string; salt: string };
  shaCrypt: { algorithm: "sha256" | "sha512"; password: string; salt: string; rounds: number };
  iteratedDigest: { algorithm: "md5" | "sha512"; password: string; salt: string; log2: number };
}

let pool: Tinypool | undefined;

/**
 * The worker threads that run the hand-written iterated digests (tinypool over node:worker_threads).
 * Started on first use, so a server that never sees such a hash starts no thread. One thread per
 * core: the work is CPU-bound. Idle threads are unreferenced (they never keep the process alive)
 * and end after a minute; the next task starts one again.
 */
export function digestPool(): Tinypool {
  pool ??= new Tinypool({
    filename: new URL("./digest-worker.cjs", import.meta.url).href,
    minThreads: 0,
    maxThreads: availableParallelism(),
    idleTimeout: 60_000,
  });
  return pool;
}

/** Runs one task of digest-worker.cjs on the pool. */
export async function runDigest<Name extends keyof DigestTasks>(name: Name, task: DigestTasks[Name]): Promise<Buffer> {
  const digest = (await digestPool().run(task, { name })) as Uint8Array;
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength);
}
