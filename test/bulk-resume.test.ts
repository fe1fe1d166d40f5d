/**
 * Crash and resume of a bulk import: a real `userport serve` process is killed with SIGKILL in
 * the middle of an ImportUsers stream, started again on the same store, and the job is resumed
 * where the store says it stopped. Every record acknowledged before the crash is stored exactly
 * once (same user id), the rest are imported, no username is claimed twice. On SQLite, and on
 * PostgreSQL when USERPORT_TEST_DATABASE_URL is set.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { PIPELINE } from "../src/services/migration-service.js";
import { dropTestDatabase, testDatabaseUrl } from "./helpers/database.js";
import { bcryptHash, GOOD_PASSWORD } from "./helpers/fixtures.js";
import { openImport, runImport } from "./helpers/import-stream.js";
import { freePort, type Served, serveProcess } from "./helpers/process.js";

async function serve(dataDir: string, port: number): Promise<Served> {
  const databaseUrl = await testDatabaseUrl(dataDir);
  return serveProcess(port, {
    USERPORT_DATA_DIR: dataDir,
    ...(databaseUrl ? { USERPORT_DATABASE_URL: databaseUrl } : {}),
    USERPORT_BCRYPT_COST: "4",
    USERPORT_LOG_LEVEL: "warn",
  });
}

const BATCH = 250;
const BATCHES = 12;

describe("bulk import across a crash", () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it("kill -9 mid-job, restart, resume: every acknowledged key stored exactly once, the rest imported", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "userport-resume-"));
    cleanup.push(async () => {
      await dropTestDatabase(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    });
    const port = await freePort();
    const first = await serve(dataDir, port);
    cleanup.push(() => first.child.kill("SIGKILL"));
    const token = readFileSync(join(dataDir, "admin.pat"), "utf8").trim();

    const hash = bcryptHash(GOOD_PASSWORD, 4);
    const prefix = `crash-${Date.now().toString(36)}-`;
    const records: JsonObject[] = Array.from({ length: BATCH * BATCHES }, (_, i) => ({
      key: `src-${i}`,
      human: {
        username: `${prefix}${i}`,
        profile: { givenName: "Crash", familyName: `Test ${i}` },
        email: { email: `${prefix}${i}@example.com`, isVerified: true },
        hashedPassword: { hash },
      },
    }));

    const call = openImport(first.url, token, "grpc-js");
    call.send({ options: { expectedRecords: String(records.length) } });
    const job = (await call.next())!.job as JsonObject;
    const acknowledged = new Map<string, string>();
    const take = (response: JsonObject | undefined) => {
      for (const result of (response?.results ?? []) as JsonObject[]) acknowledged.set(String(result.key), String(result.userId));
    };
    // Three batches acknowledged, then the rest sent, and the server killed while it works on them.
    for (let b = 0; b < 3; b++) {
      call.send({ records: { records: records.slice(b * BATCH, (b + 1) * BATCH) } });
      take(await call.next());
    }
    for (let b = 3; b < BATCHES; b++) call.send({ records: { records: records.slice(b * BATCH, (b + 1) * BATCH) } });
    take(await call.next());
    first.child.kill("SIGKILL");
    await first.exited;
    await call.next().then(take, () => undefined);
    call.cancel();
    expect(acknowledged.size).toBeGreaterThanOrEqual(4 * BATCH);
    expect(acknowledged.size).toBeLessThan(records.length);

    const second = await serve(dataDir, port);
    cleanup.push(() => second.child.kill("SIGKILL"));
    const headers = { authorization: `Bearer ${token}` };
    const stored = (await (await fetch(`${second.url}/migration/v1/jobs/${job.id}`, { headers })).json()) as { job: JsonObject };
    // The store, not the client, says where to go on. The job row's index lags the results: it
    // is written with a later batch's transaction, and the batch committing when the server died
    // was prepared while the batches before it, up to the stream's PIPELINE, were still under way
    // (one such run stored 750 with 1,250 acknowledged). A client starting there re-sends records
    // the job already imported, which are answered from their stored results (checked below).
    const nextIndex = Number(stored.job.nextIndex ?? 0);
    expect(nextIndex).toBeGreaterThanOrEqual(acknowledged.size - PIPELINE * BATCH);

    const resumed = await runImport(second.url, token, "grpc-js", { jobId: String(job.id) }, chunk(records.slice(nextIndex), BATCH));
    expect(resumed.error).toBeUndefined();
    // The first answer says where the resumed stream numbers from: past every result the store
    // holds (the job row's index may lag them after the crash), so a client starting there sends nothing twice.
    expect(Number(resumed.job.nextIndex ?? 0)).toBeGreaterThanOrEqual(Math.max(nextIndex, acknowledged.size));

    // Every key has one result, and its user is the one acknowledged before the crash.
    const all: JsonObject[] = [];
    for (let offset = 0; ; offset += 1000) {
      const page = (await (
        await fetch(`${second.url}/migration/v1/jobs/${job.id}/results/_search`, {
          method: "POST",
          headers: { ...headers, "content-type": "application/json" },
          body: JSON.stringify({ offset: String(offset), limit: 1000 }),
        })
      ).json()) as { result?: JsonObject[] };
      all.push(...(page.result ?? []));
      if ((page.result ?? []).length < 1000) break;
    }
    expect(all.length).toBe(records.length);
    expect(new Set(all.map((r) => r.key)).size).toBe(records.length);
    expect(all.every((r) => r.outcome === "IMPORT_OUTCOME_CREATED")).toBe(true);
    const userOf = new Map(all.map((r) => [String(r.key), String(r.userId)]));
    for (const [key, userId] of acknowledged) expect(userOf.get(key), key).toBe(userId);

    // Exactly one user per username of the import, and no other user of it.
    const search = (await (
      await fetch(`${second.url}/v2/users`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify({ query: { limit: 1 }, queries: [{ userNameQuery: { userName: prefix, method: "TEXT_QUERY_METHOD_STARTS_WITH" } }] }),
      })
    ).json()) as { details: { totalResult: string } };
    expect(search.details.totalResult).toBe(String(records.length));
    const finished = (await (await fetch(`${second.url}/migration/v1/jobs/${job.id}`, { headers })).json()) as { job: JsonObject };
    expect(finished.job).toMatchObject({ state: "IMPORT_JOB_STATE_COMPLETED", created: String(records.length), nextIndex: String(records.length) });
  });
});

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
