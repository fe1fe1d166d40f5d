/**
 * The OpenAPI document at /openapi.json: valid OpenAPI 3.1, generated from the same descriptors
 * and google.api.http rules as the REST routes, and checked here against the routes the server
 * actually serves (both ways) and against real responses.
 */
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "./helpers/server.js";

let server: TestServer;
let doc: {
  openapi: string;
  paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown>; parameters: Array<{ name: string; in: string }> }>>;
};
beforeAll(async () => {
  server = await startTestServer();
  const response = await fetch(`${server.url}/openapi.json`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  doc = (await response.json()) as typeof doc;
});
afterAll(() => server?.dispose());

const METHODS = ["get", "post", "put", "patch", "delete"];

/** The routes served that are not the REST API: Connect's, probes, the document itself, the login page. */
function isRestApi(route: { method: string; url: string }): boolean {
  if (route.method === "HEAD" || route.method === "OPTIONS") return false;
  if (/^\/[\w.]+\.\w+\/\w+$/.test(route.url)) return false; // /package.Service/Method (gRPC, gRPC-Web, Connect)
  // Not from the descriptors: the login pages (HTML), PingOne's own API (its documents are PingOne's)
  // and the NDJSON upload of import jobs (a streamed body; README "Bulk migration").
  if (route.url.startsWith("/ui/login/") || route.url.startsWith("/v1/environments") || route.url === "/:envId/as/token") return false;
  if (route.url === "/migration/v1/jobs/:jobId/records") return false;
  return !["/healthz", "/readyz", "/metrics", "/openapi.json", "*"].includes(route.url);
}

describe("GET /openapi.json", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    const result = await new Validator().validate(doc as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe("3.1.0");
    // The validator does reject a broken document: a parameter "in" the body (OpenAPI 2's way).
    const broken = structuredClone(doc);
    broken.paths["/v2/users/{user_id}"]!.get!.parameters[0]!.in = "body";
    expect((await new Validator().validate(broken as never)).valid).toBe(false);
  });

  it("describes exactly the REST routes served", () => {
    const normalise = (path: string) =>
      path
        .replace(/\{[^}]+\}/g, "{}")
        .replace(/(?<!:):p\d+/g, "{}")
        .replaceAll("::", ":");
    const documented = Object.entries(doc.paths).flatMap(([path, operations]) =>
      Object.keys(operations)
        .filter((m) => METHODS.includes(m))
        .map((m) => `${m.toUpperCase()} ${normalise(path)}`),
    );
    const served = server.httpRoutes.filter(isRestApi).map((route) => `${route.method} ${normalise(route.url)}`);
    expect(new Set(documented).size).toBe(documented.length);
    expect([...documented].sort()).toEqual([...new Set(served)].sort());
    expect(documented.length).toBeGreaterThan(50);
  });

  it("every documented operation is answered by its RPC (401 without a token, never 404 or 405)", async () => {
    const failures: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const url = path.replace(/\{[^}]+\}/g, "1234");
        const response = await fetch(`${server.url}${url}`, {
          method: method.toUpperCase(),
          headers: method === "get" || method === "delete" ? {} : { "content-type": "application/json" },
          body: method === "get" || method === "delete" ? undefined : "{}",
        });
        const body = (await response.json()) as { code?: number };
        if (response.status !== 401 || body.code !== 16) failures.push(`${method.toUpperCase()} ${path} (${operation.operationId}): ${response.status}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it("states ZITADEL's success codes, path and query parameters", () => {
    expect(Object.keys(doc.paths["/v2/users/human"]!.post!.responses)).toContain("201");
    expect(doc.paths["/v2/users/{user_id}"]!.get!.parameters).toContainEqual(expect.objectContaining({ name: "user_id", in: "path" }));
    const unique = doc.paths["/management/v1/users/_is_unique"]!.get!.parameters.map((p) => `${p.in}:${p.name}`);
    expect(unique).toEqual(expect.arrayContaining(["query:user_name", "query:email"]));
  });

  it("describes the responses the server sends (a real response validates against its schema)", async () => {
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    ajv.addSchema(doc, "openapi");
    const headers = { authorization: `Bearer ${server.token}`, "content-type": "application/json" };
    const imported = await fetch(`${server.url}/management/v1/users/human/_import`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        userName: "openapi-user",
        profile: { firstName: "Ada", lastName: "Lovelace", gender: "GENDER_FEMALE" },
        email: { email: "openapi@example.com", isEmailVerified: true },
      }),
    });
    expect(imported.status).toBe(200);
    const { userId } = (await imported.json()) as { userId: string };
    const read = await (await fetch(`${server.url}/v2/users/${userId}`, { headers })).json();
    const validate = ajv.getSchema("openapi#/components/schemas/zitadel.user.v2.GetUserByIDResponse")!;
    expect(validate(read), JSON.stringify(validate.errors)).toBe(true);
    // And it can fail: a gender that is not one of the enum's names.
    const wrong = structuredClone(read) as { user: { human: { profile: { gender: string } } } };
    wrong.user.human.profile.gender = "GENDER_SOMETHING";
    expect(validate(wrong)).toBe(false);
    const error = await (await fetch(`${server.url}/v2/users/404`, { headers })).json();
    expect(ajv.getSchema("openapi#/components/schemas/userport.RestError")!(error)).toBe(true);
  });
});
