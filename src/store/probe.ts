import type { Db } from "./db.js";

/**
 * Whether the store answers a read of the instance table within `timeoutMs`: the readiness probe.
 * A table of the schema, not `SELECT 1`, so that a store without its schema is not ready either.
 */
export async function storeAnswers({ db }: Db, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([
      db
        .selectFrom("instances")
        .select("id")
        .limit(1)
        .execute()
        .then(
          () => true,
          () => false,
        ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
