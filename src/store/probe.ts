import { sql } from "kysely";
import type { Db } from "./db.js";
import { prepare } from "./prepared.js";

/**
 * The readiness probe: whether the store answers a read of the instance table within
 * `timeoutMs`. A table of the schema, not `SELECT 1`, so that a store without its schema is not
 * ready either. The read is prepared once: a gRPC Health/Check runs one per call.
 */
export function createStoreProbe(store: Db): (timeoutMs: number) => Promise<boolean> {
  const read = prepare<Record<string, never>>(store.db.selectFrom("instances").select("id").limit(sql.lit(1))).bind({});
  // SQLite reads on this thread: the read is over before any timer could fire, so it gets none.
  if (store.dialect === "sqlite") {
    return () =>
      store.read(read).then(
        () => true,
        () => false,
      );
  }
  return async (timeoutMs) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([
        store.read(read).then(
          () => true,
          () => false,
        ),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
}
