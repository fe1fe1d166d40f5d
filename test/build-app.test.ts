/**
 * The composition root in parts (src/server.ts): buildDeps opens the store and builds the domain,
 * buildApp wires the edge and services into a fastify app without listening or starting workers.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { buildApp, buildDeps } from "../src/server.js";
import { dropTestDatabase } from "./helpers/database.js";
import { testConfig } from "./helpers/server.js";

describe("buildApp", () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it("returns an app that answers every kind of route without listening", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "userport-build-app-"));
    cleanup.push(async () => {
      await dropTestDatabase(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    });
    const deps = await buildDeps(await testConfig(dataDir));
    cleanup.push(() => deps.store.close());
    const { app, rpcPaths, restRoutes } = await buildApp(deps);
    cleanup.push(() => app.close());
    expect(app.server.listening).toBe(false);
    expect(rpcPaths).toContain("/zitadel.management.v1.ManagementService/ImportHumanUser");
    expect(restRoutes).toContainEqual({ method: "POST", url: "/management/v1/users/human/_import" });

    const token = readFileSync(join(dataDir, "admin.pat"), "utf8").trim();
    const imported = await app.inject({
      method: "POST",
      url: "/management/v1/users/human/_import",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      payload: { userName: "built", profile: { firstName: "B", lastName: "A" }, email: { email: "built@example.com" } },
    });
    expect(imported.statusCode).toBe(200);
    expect(JSON.parse(imported.body).userId).toMatch(/\S/);
    const health = await app.inject({
      method: "POST",
      url: "/grpc.health.v1.Health/Check",
      headers: { "content-type": "application/json" },
      payload: {},
    });
    expect(health.statusCode).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: "SERVING" });
  });
});
