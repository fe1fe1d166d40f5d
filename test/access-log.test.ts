/**
 * The access log of `userport serve` at the default level: one JSON line per request with what
 * was called, how, the outcome, the duration, the request id and the caller, never a secret; the
 * request id taken from and returned in `x-request-id`, and carried by the request's error lines.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { createCallers, V1 } from "./helpers/clients.js";
import { dropTestDatabase, testDatabaseUrl } from "./helpers/database.js";
import { freePort, serveProcess } from "./helpers/process.js";

interface Line {
  level: number;
  msg: string;
  reqId?: string;
  [key: string]: unknown;
}

const lines = (output: string): Line[] =>
  output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Line);

describe("access log", () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it("logs one line per request with its id, RPC, protocol, code, duration and caller, and the id on its error lines", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "userport-access-"));
    cleanup.push(async () => {
      await dropTestDatabase(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    });
    const databaseUrl = await testDatabaseUrl(dataDir);
    const served = await serveProcess(await freePort(), {
      USERPORT_DATA_DIR: dataDir,
      ...(databaseUrl ? { USERPORT_DATABASE_URL: databaseUrl } : {}),
      USERPORT_BCRYPT_COST: "4",
      USERPORT_LOG_LEVEL: "info",
    });
    cleanup.push(() => served.child.kill("SIGKILL"));
    const token = readFileSync(join(dataDir, "admin.pat"), "utf8").trim();
    const password = "Acc3ss-Log-Secret!";
    const body = (userName: string, verified: boolean) =>
      JSON.stringify({
        userName,
        profile: { firstName: "Ada", lastName: "Lovelace" },
        email: { email: `${userName}@example.com`, isEmailVerified: verified },
        password,
      });
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };

    // REST, with a request id of the client's.
    const rest = await fetch(`${served.url}/management/v1/users/human/_import?sessionToken=not-to-be-logged`, {
      method: "POST",
      headers: { ...headers, "x-request-id": "client-chosen-id-1" },
      body: body("logged-rest", true),
    });
    expect(rest.status).toBe(200);
    expect(rest.headers.get("x-request-id")).toBe("client-chosen-id-1");
    const { userId } = (await rest.json()) as { userId: string };

    // Without one: a new id, returned.
    const generated = await fetch(`${served.url}/management/v1/users/${userId}`, { headers: { authorization: `Bearer ${token}` } });
    expect(generated.status).toBe(200);
    const generatedId = generated.headers.get("x-request-id");
    expect(generatedId).toMatch(/^[0-9a-f-]{36}$/);

    // gRPC, failing: ALREADY_EXISTS.
    const callers = createCallers(served.url, token);
    cleanup.push(() => {
      for (const caller of callers.values()) caller.close();
    });
    const grpc = await callers.get("grpc-js")!.call(V1.importHumanUser, JSON.parse(body("logged-rest", true)));
    expect("error" in grpc && grpc.error.code).toBe(6);

    // An unexpected store failure: its error line carries the request's id.
    await alterStore(dataDir, databaseUrl, "ALTER TABLE codes RENAME TO codes_elsewhere");
    const broken = await fetch(`${served.url}/management/v1/users/human/_import`, {
      method: "POST",
      headers: { ...headers, "x-request-id": "broken-request-7" },
      body: body("needs-a-code", false),
    });
    expect(broken.status).toBe(500);
    expect(broken.headers.get("x-request-id")).toBe("broken-request-7");
    // … and over gRPC: the error line carries the id the server gave the call.
    const brokenGrpc = await callers.get("grpc-js")!.call(V1.importHumanUser, JSON.parse(body("needs-a-code-grpc", false)));
    expect("error" in brokenGrpc && brokenGrpc.error.code).toBe(13);
    await alterStore(dataDir, databaseUrl, "ALTER TABLE codes_elsewhere RENAME TO codes");

    served.child.kill("SIGTERM");
    expect(await served.exited).toBe(0);
    const log = lines(served.output());
    const requests = log.filter((line) => line.msg === "request");

    const restLine = requests.find((line) => line.reqId === "client-chosen-id-1");
    expect(restLine).toMatchObject({
      level: 30,
      method: "POST",
      path: "/management/v1/users/human/_import",
      rpc: "zitadel.management.v1.ManagementService/ImportHumanUser",
      protocol: "rest",
      status: 200,
      code: "OK",
    });
    expect(typeof restLine!.durationMs).toBe("number");
    expect(restLine!.caller).toMatch(/^\d+$/);

    expect(requests.find((line) => line.reqId === generatedId)).toMatchObject({
      rpc: "zitadel.management.v1.ManagementService/GetUserByID",
      protocol: "rest",
      code: "OK",
      caller: restLine!.caller,
    });
    const grpcLine = requests.find((line) => line.protocol === "grpc");
    expect(grpcLine).toMatchObject({
      rpc: "zitadel.management.v1.ManagementService/ImportHumanUser",
      code: "ALREADY_EXISTS",
      status: 200,
      caller: restLine!.caller,
    });
    expect(grpcLine!.reqId).toMatch(/^[0-9a-f-]{36}$/);

    const brokenLines = log.filter((line) => line.reqId === "broken-request-7");
    expect(brokenLines.map((line) => line.msg)).toEqual(["request failed unexpectedly", "request"]);
    expect(brokenLines[0]!.level).toBe(50);
    expect(brokenLines[1]).toMatchObject({ code: "INTERNAL", status: 500 });
    const brokenGrpcLine = requests.find((line) => line.protocol === "grpc" && line.code === "INTERNAL");
    expect(brokenGrpcLine!.reqId).toMatch(/^[0-9a-f-]{36}$/);
    expect(log.filter((line) => line.reqId === brokenGrpcLine!.reqId).map((line) => line.msg)).toEqual(["request failed unexpectedly", "request"]);

    // Never a secret: not the token, not the password, not the query string.
    const output = served.output();
    expect(output).not.toContain(token);
    expect(output).not.toContain(password);
    expect(output).not.toContain("not-to-be-logged");
  });
});

async function alterStore(dataDir: string, databaseUrl: string | undefined, statement: string) {
  if (!databaseUrl) {
    const sqlite = new Database(join(dataDir, "userport.sqlite"));
    sqlite.exec(statement);
    sqlite.close();
    return;
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query(statement);
  await client.end();
}
