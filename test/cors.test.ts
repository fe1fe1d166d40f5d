/**
 * CORS as userport answers it on the wire (USERPORT_CORS_ORIGINS): preflights, the headers on
 * actual responses, refused origins and CORS switched off. browser.test.ts shows Chromium
 * enforcing the same.
 */
import { describe, expect, it } from "vitest";
import type { Config } from "../src/config.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

const ALLOWED = "http://app.example.com:3000";
const OTHER = "http://evil.example.net";
const RPC = "/zitadel.management.v1.ManagementService/ImportHumanUser";
const REST = "/management/v1/users/human/_import";

/** Every header a Connect, gRPC-Web or ZITADEL client sends from a browser. */
const REQUEST_HEADERS = [
  "authorization",
  "x-zitadel-orgid",
  "content-type",
  "connect-protocol-version",
  "connect-timeout-ms",
  "x-grpc-web",
  "x-user-agent",
  "grpc-timeout",
];
/** What a browser client must be able to read of a response. */
const EXPOSED = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

async function withServer(overrides: Partial<Config>, run: (server: TestServer) => Promise<void>): Promise<void> {
  const server = await startTestServer(overrides);
  try {
    await run(server);
  } finally {
    await server.dispose();
  }
}

/** fetch without keep-alive, so that no idle connection holds up the server's close. */
function call(server: TestServer, path: string, init: { method: string; headers?: Record<string, string>; body?: string }) {
  return fetch(`${server.url}${path}`, { ...init, headers: { connection: "close", ...init.headers } });
}

function preflight(server: TestServer, path: string, origin: string, method = "POST") {
  return call(server, path, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": method,
      "access-control-request-headers": REQUEST_HEADERS.join(","),
    },
  });
}

function importUser(server: TestServer, path: string, origin: string, userName: string, auth = true) {
  const body =
    path === RPC
      ? { userName, profile: { firstName: "Cors", lastName: "Test" }, email: { email: `${userName}@example.com` } }
      : { user_name: userName, profile: { first_name: "Cors", last_name: "Test" }, email: { email: `${userName}@example.com` } };
  return call(server, path, {
    method: "POST",
    headers: {
      origin,
      "content-type": "application/json",
      ...(path === RPC ? { "connect-protocol-version": "1" } : {}),
      ...(auth ? { authorization: `Bearer ${server.token}` } : {}),
    },
    body: JSON.stringify(body),
  });
}

/** A comma-separated header as a lower-cased list. */
function list(res: Response, name: string): string[] {
  return (res.headers.get(name) ?? "")
    .split(",")
    .map((item) => item.trim().toLowerCase())
    .filter(Boolean);
}

function corsHeaders(res: Response): string[] {
  return [...res.headers.keys()].filter((name) => name.startsWith("access-control-"));
}

describe("CORS for an allowed origin", () => {
  it("answers the preflight of RPC and REST calls with the headers browser clients send", async () => {
    await withServer({ corsOrigins: [ALLOWED] }, async (server) => {
      for (const [path, method] of [
        [RPC, "POST"],
        [REST, "POST"],
        ["/management/v1/users/123", "GET"],
      ] as const) {
        const res = await preflight(server, path, ALLOWED, method);
        expect(res.status, path).toBe(204);
        expect(res.headers.get("access-control-allow-origin"), path).toBe(ALLOWED);
        expect(list(res, "access-control-allow-headers"), path).toEqual(expect.arrayContaining(REQUEST_HEADERS));
        expect(list(res, "access-control-allow-methods"), path).toEqual(expect.arrayContaining(["get", "post", "put", "patch", "delete"]));
        expect(list(res, "access-control-expose-headers"), path).toEqual(expect.arrayContaining(EXPOSED));
        expect(res.headers.get("access-control-max-age"), path).toBe("7200");
        expect(list(res, "vary"), path).toContain("origin");
        // Bearer tokens, not cookies: credentials are never allowed.
        expect(res.headers.get("access-control-allow-credentials"), path).toBeNull();
      }
    });
  });

  it("exposes the gRPC status headers on actual responses, successes and errors alike", async () => {
    await withServer({ corsOrigins: [ALLOWED] }, async (server) => {
      const responses = {
        "Connect, created": await importUser(server, RPC, ALLOWED, "cors-alice"),
        "Connect, AlreadyExists": await importUser(server, RPC, ALLOWED, "cors-alice"),
        "Connect, Unauthenticated": await importUser(server, RPC, ALLOWED, "cors-bob", false),
        "REST, created": await importUser(server, REST, ALLOWED, "cors-carol"),
        "REST, AlreadyExists": await importUser(server, REST, ALLOWED, "cors-carol"),
        "not found": await call(server, "/no/such/path", { method: "GET", headers: { origin: ALLOWED } }),
      };
      expect(Object.fromEntries(Object.entries(responses).map(([name, res]) => [name, res.status]))).toEqual({
        "Connect, created": 200,
        "Connect, AlreadyExists": 409,
        "Connect, Unauthenticated": 401,
        "REST, created": 200,
        "REST, AlreadyExists": 409,
        "not found": 404,
      });
      for (const [name, res] of Object.entries(responses)) {
        expect(res.headers.get("access-control-allow-origin"), name).toBe(ALLOWED);
        expect(list(res, "access-control-expose-headers"), name).toEqual(expect.arrayContaining(EXPOSED));
        expect(list(res, "vary"), name).toContain("origin");
        expect(res.headers.get("access-control-allow-credentials"), name).toBeNull();
      }
    });
  });

  it("allows any origin with *", async () => {
    await withServer({ corsOrigins: ["*"] }, async (server) => {
      const pre = await preflight(server, RPC, OTHER);
      expect(pre.headers.get("access-control-allow-origin")).toMatch(new RegExp(`^(\\*|${OTHER.replace(/\./g, "\\.")})$`));
      expect(list(pre, "access-control-allow-headers")).toEqual(expect.arrayContaining(REQUEST_HEADERS));
      const res = await importUser(server, RPC, OTHER, "cors-anyone");
      expect(res.status).toBe(200);
      expect(res.headers.get("access-control-allow-origin")).toMatch(new RegExp(`^(\\*|${OTHER.replace(/\./g, "\\.")})$`));
      expect(list(res, "access-control-expose-headers")).toEqual(expect.arrayContaining(EXPOSED));
    });
  });
});

describe("CORS for other origins", () => {
  it("gives an origin not in the list no Access-Control-Allow-Origin", async () => {
    await withServer({ corsOrigins: [ALLOWED] }, async (server) => {
      const origins = [OTHER, "http://app.example.com:3001", "https://app.example.com:3000", "null"];
      for (const [i, origin] of origins.entries()) {
        const pre = await preflight(server, RPC, origin);
        expect(pre.headers.get("access-control-allow-origin"), origin).toBeNull();
        const res = await importUser(server, RPC, origin, `cors-other-${i}`);
        expect(res.headers.get("access-control-allow-origin"), origin).toBeNull();
      }
    });
  });

  it("sends no CORS headers at all when no origins are configured", async () => {
    await withServer({ corsOrigins: [] }, async (server) => {
      const pre = await preflight(server, RPC, ALLOWED);
      expect(corsHeaders(pre)).toEqual([]);
      const restPre = await preflight(server, REST, ALLOWED);
      expect(corsHeaders(restPre)).toEqual([]);
      const res = await importUser(server, RPC, ALLOWED, "cors-dave");
      expect(res.status).toBe(200);
      expect(corsHeaders(res)).toEqual([]);
      const failed = await importUser(server, RPC, ALLOWED, "cors-dave");
      expect(failed.status).toBe(409);
      expect(corsHeaders(failed)).toEqual([]);
    });
  });
});
