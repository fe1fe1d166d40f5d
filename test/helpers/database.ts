import { randomBytes } from "node:crypto";
import pg from "pg";

/**
 * The PostgreSQL server the suite runs against, when USERPORT_TEST_DATABASE_URL names one
 * (`.ci/run` sets it for the suite's second pass); otherwise every test server uses SQLite.
 */
export const testPostgresUrl = process.env.USERPORT_TEST_DATABASE_URL || undefined;

/** Databases created for data directories: a server restarted on its directory finds its data. */
const databases = new Map<string, string>();

/**
 * The USERPORT_DATABASE_URL for a test server on `dataDir`: a fresh PostgreSQL database of its
 * own (created on first use, with `createOptions` appended to its CREATE DATABASE), or undefined
 * for SQLite. Fails, never skips, when the server named by USERPORT_TEST_DATABASE_URL cannot be
 * reached.
 */
export async function testDatabaseUrl(dataDir: string, createOptions = ""): Promise<string | undefined> {
  if (!testPostgresUrl) return undefined;
  const existing = databases.get(dataDir);
  if (existing) return existing;
  const name = `userport_test_${randomBytes(6).toString("hex")}`;
  await withAdmin((client) => client.query(`CREATE DATABASE ${name} ${createOptions}`));
  const url = new URL(testPostgresUrl);
  url.pathname = `/${name}`;
  databases.set(dataDir, url.toString());
  return url.toString();
}

/** Drops the database of `dataDir`, if it has one (on PostgreSQL). */
export async function dropTestDatabase(dataDir: string): Promise<void> {
  const url = databases.get(dataDir);
  if (!url) return;
  databases.delete(dataDir);
  const name = new URL(url).pathname.slice(1);
  // Without FORCE: that would also try to end the autovacuum worker busy with a database just
  // filled, which only a superuser may. DROP DATABASE ends autovacuum itself; what else is still
  // connected (a server process that was killed, say) gets a moment to go.
  await withAdmin(async (client) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await client.query(`DROP DATABASE IF EXISTS ${name}`);
      } catch (err) {
        if ((err as { code?: string }).code !== OBJECT_IN_USE || attempt >= 25) throw err;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  });
}

const OBJECT_IN_USE = "55006";

async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: testPostgresUrl });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`USERPORT_TEST_DATABASE_URL is set but PostgreSQL cannot be reached: ${(err as Error).message}`);
  }
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
