import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Config, loadConfig } from "../../src/config.js";
import { type RunningServer, startServer } from "../../src/server.js";
import { dropTestDatabase, testDatabaseUrl } from "./database.js";

export interface TestServer extends RunningServer {
  /** The admin's bearer token, read from admin.pat as an operator would. */
  token: string;
  dataDir: string;
  /** Closes the server and deletes its data directory. */
  dispose(): Promise<void>;
}

/** The settings of a test server on `dataDir`: a free port, its own store, bcrypt at cost 4, quiet. */
export async function testConfig(dataDir: string): Promise<Config> {
  return {
    ...loadConfig([], {}),
    port: 0,
    host: "127.0.0.1",
    dataDir,
    databaseUrl: await testDatabaseUrl(dataDir),
    bcryptCost: 4,
    logLevel: "silent",
    // The rate limits count per wall-clock second: a suite on a loaded machine would meet them by
    // chance. test/rate-limits.test.ts turns them on with limits of its own.
    rateLimitPerSource: 0,
    rateLimitPerUser: 0,
  };
}

/**
 * Starts a real userport on a free port with its own data directory and store: SQLite, or a
 * fresh PostgreSQL database when USERPORT_TEST_DATABASE_URL is set. bcrypt runs at cost 4 so
 * tests stay quick; everything else is as `userport serve` runs it.
 */
export async function startTestServer(overrides: Partial<Config> = {}): Promise<TestServer> {
  const dataDir = overrides.dataDir ?? mkdtempSync(join(tmpdir(), "userport-test-"));
  const server = await startServer({ ...(await testConfig(dataDir)), ...overrides });
  return {
    ...server,
    token: readFileSync(server.adminTokenFile, "utf8").trim(),
    dataDir,
    async dispose() {
      await server.close();
      await dropTestDatabase(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
