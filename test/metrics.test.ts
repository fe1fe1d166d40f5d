/**
 * Operators' view of a running server: `/metrics` in Prometheus' text format (read with a
 * parser of that format, not by string matching), values that move as requests are made, and
 * readiness that follows the store.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CallResult, createCallers, grpcJsHealthCheck, SESSIONS, V1 } from "./helpers/clients.js";
import { testDatabaseUrl } from "./helpers/database.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ maxPasswordAttempts: 2 });
});
afterAll(() => server?.dispose());

type Families = ReturnType<typeof parsePrometheusTextFormat> & { text: string };

/** Scrapes /metrics; the parser throws on any line that is not Prometheus' text format. */
async function scrape(): Promise<Families> {
  const response = await fetch(`${server.url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  return Object.assign(parsePrometheusTextFormat(text), { text });
}

/** The value of a counter or gauge sample whose labels include `labels` (0 when absent). */
function value(families: Families, name: string, labels: Record<string, string> = {}): number {
  const family = families.find((f) => f.name === name);
  const sample = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return Number(sample?.value ?? sample?.count ?? 0);
}

/**
 * The sample count of a histogram (its `_count` line with exactly these labels, in prom-client's
 * order). The parser checks the format, but merges the series of a labelled histogram, so the
 * count is read from the line itself.
 */
function count(families: Families, name: string, labels: Record<string, string> = {}): number {
  expect(families.find((f) => f.name === name)?.type, `${name} is a histogram`).toBe("HISTOGRAM");
  const selector = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",");
  const line = `${name}_count${selector ? `{${selector}}` : ""} `;
  const found = families.text.split("\n").find((l) => l.startsWith(line));
  return found ? Number(found.slice(line.length)) : 0;
}

const errorOf = (result: CallResult) => ("error" in result ? result.error : undefined);

const importRequest = (userName: string) => ({
  userName,
  profile: { firstName: "Ada", lastName: "Lovelace" },
  email: { email: `${userName}@example.com`, isEmailVerified: true },
  password: "Secr3t-Passw0rd!",
});

describe("GET /metrics", () => {
  it("counts requests by RPC, protocol and code, with latency histograms, commit batches and the store pool", async () => {
    const before = await scrape();
    for (const name of [
      "userport_requests_total",
      "userport_request_duration_seconds",
      "userport_commit_batch_size",
      "userport_commit_duration_seconds",
      "userport_outbox_unsent",
      "userport_mail_deliveries_total",
      "userport_sign_in_checks_total",
      "userport_lockouts_total",
      "userport_store_connections",
      "userport_commit_queue_waiting",
      "process_cpu_user_seconds_total",
      "nodejs_eventloop_lag_seconds",
    ]) {
      expect(
        before.map((f) => f.name),
        name,
      ).toContain(name);
    }
    const callers = createCallers(server.url, server.token);
    const rest = callers.get("rest")!;
    const grpc = callers.get("grpc-js")!;
    const grpcWeb = callers.get("grpc-web")!;
    try {
      expect(errorOf(await rest.call(V1.importHumanUser, importRequest("metrics-rest")))).toBeUndefined();
      expect(errorOf(await grpc.call(V1.importHumanUser, importRequest("metrics-grpc")))).toBeUndefined();
      expect(errorOf(await grpc.call(V1.importHumanUser, importRequest("metrics-grpc")))?.code).toBe(6);
      expect(errorOf(await grpcWeb.call(V1.getUserByID, { id: "404" }))?.code).toBe(5);
    } finally {
      for (const caller of callers.values()) caller.close();
    }
    const after = await scrape();
    const rpc = "zitadel.management.v1.ManagementService/ImportHumanUser";
    expect(value(after, "userport_requests_total", { rpc, protocol: "rest", code: "OK" })).toBe(
      value(before, "userport_requests_total", { rpc, protocol: "rest", code: "OK" }) + 1,
    );
    expect(value(after, "userport_requests_total", { rpc, protocol: "grpc", code: "OK" })).toBe(1);
    expect(value(after, "userport_requests_total", { rpc, protocol: "grpc", code: "ALREADY_EXISTS" })).toBe(1);
    expect(
      value(after, "userport_requests_total", { rpc: "zitadel.management.v1.ManagementService/GetUserByID", protocol: "grpc-web", code: "NOT_FOUND" }),
    ).toBe(1);
    expect(count(after, "userport_request_duration_seconds", { rpc, protocol: "grpc" })).toBe(2);
    expect(count(after, "userport_commit_batch_size")).toBeGreaterThan(count(before, "userport_commit_batch_size"));
    expect(count(after, "userport_commit_duration_seconds")).toBeGreaterThan(count(before, "userport_commit_duration_seconds"));
    expect(value(after, "userport_store_connections", { state: "open" })).toBeGreaterThan(0);
    // The metrics endpoint itself is counted too, as plain HTTP.
    expect(value(after, "userport_requests_total", { rpc: "GET /metrics", protocol: "http", code: "200" })).toBeGreaterThanOrEqual(1);
  });

  it("counts sign-in checks and lockouts as they commit", async () => {
    const callers = createCallers(server.url, server.token);
    const rest = callers.get("rest")!;
    try {
      expect(errorOf(await rest.call(V1.importHumanUser, importRequest("metrics-signin")))).toBeUndefined();
      const before = await scrape();
      const check = (password: string) => rest.call(SESSIONS.createSession, { checks: { user: { loginName: "metrics-signin" }, password: { password } } });
      expect(errorOf(await check("Secr3t-Passw0rd!"))).toBeUndefined();
      expect(errorOf(await check("wrong-1"))?.code).toBe(3);
      expect(errorOf(await check("wrong-2"))?.code).toBe(3); // the second failure locks (maxPasswordAttempts 2)
      const after = await scrape();
      const checks = (outcome: string, families: Families) => value(families, "userport_sign_in_checks_total", { factor: "password", outcome });
      expect(checks("succeeded", after)).toBe(checks("succeeded", before) + 1);
      expect(checks("failed", after)).toBe(checks("failed", before) + 2);
      expect(value(after, "userport_lockouts_total")).toBe(value(before, "userport_lockouts_total") + 1);
      // The v1 import of an unverified email leaves a code in the outbox (no SMTP configured).
      expect(errorOf(await rest.call(V1.importHumanUser, { ...importRequest("metrics-outbox"), email: { email: "o@example.com" } }))).toBeUndefined();
      expect(value(await scrape(), "userport_outbox_unsent")).toBe(value(after, "userport_outbox_unsent") + 1);
    } finally {
      for (const caller of callers.values()) caller.close();
    }
  });
});

/** Renames a table of the running server's store underneath it, whichever store it is. */
async function renameTable(from: string, to: string) {
  const databaseUrl = await testDatabaseUrl(server.dataDir);
  if (!databaseUrl) {
    const sqlite = new Database(join(server.dataDir, "userport.sqlite"));
    sqlite.exec(`ALTER TABLE ${from} RENAME TO ${to}`);
    sqlite.close();
    return;
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query(`ALTER TABLE ${from} RENAME TO ${to}`);
  await client.end();
}

describe("readiness", () => {
  it("/readyz and gRPC health say NOT_SERVING while the store does not answer, /healthz stays up", async () => {
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    expect(await grpcJsHealthCheck(server.url)).toEqual({ status: 1 });
    await renameTable("instances", "instances_away");
    try {
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: "NOT_SERVING", reason: "the store does not answer" });
      expect(await grpcJsHealthCheck(server.url)).toEqual({ status: 2 });
      expect(await grpcJsHealthCheck(server.url, "zitadel.management.v1.ManagementService")).toEqual({ status: 2 });
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      const metrics = await scrape();
      expect(value(metrics, "userport_ready")).toBe(0);
    } finally {
      await renameTable("instances_away", "instances");
    }
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    expect(await grpcJsHealthCheck(server.url)).toEqual({ status: 1 });
  });
});
