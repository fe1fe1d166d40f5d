/**
 * gRPC server reflection, v1 and v1alpha, as an operator uses it: `buf curl` (a dev dependency;
 * grpcurl works the same way) lists the services and calls RPCs without any proto file.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "./helpers/server.js";

const run = promisify(execFile);
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server?.dispose());

/** `buf curl` over gRPC (HTTP/2 cleartext), reflecting with `reflect` (v1 by default). */
async function bufCurl(args: string[], reflect: "grpc-v1" | "grpc-v1alpha" = "grpc-v1") {
  return run("node_modules/.bin/buf", ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect-protocol", reflect, ...args], {
    timeout: 60_000,
  });
}

describe("gRPC server reflection", () => {
  it("lists every service served, over v1 and v1alpha", async () => {
    const expected = [
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "userport.migration.v1.MigrationService",
      "zitadel.admin.v1.AdminService",
      "zitadel.management.v1.ManagementService",
      "zitadel.session.v2.SessionService",
      "zitadel.user.v2.UserService",
    ];
    for (const reflect of ["grpc-v1", "grpc-v1alpha"] as const) {
      const { stdout } = await bufCurl(["--list-services", server.url], reflect);
      expect(stdout.trim().split("\n").sort()).toEqual(expected);
    }
  });

  it("lets buf curl call RPCs with request and response types it learnt from the server", async () => {
    const { stdout: methods } = await bufCurl(["--list-methods", server.url]);
    expect(methods).toContain("zitadel.management.v1.ManagementService/ImportHumanUser");
    expect(methods).toContain("zitadel.user.v2.UserService/AddHumanUser");

    const headers = ["-H", `authorization: Bearer ${server.token}`];
    const { stdout: org } = await bufCurl([...headers, "-d", "{}", `${server.url}/zitadel.management.v1.ManagementService/GetMyOrg`]);
    expect(JSON.parse(org)).toMatchObject({ org: { name: "Default", state: "ORG_STATE_ACTIVE" } });

    // Nested messages, enums and well-known types (google.protobuf.Timestamp) from the reflected files.
    const request = JSON.stringify({
      username: "reflected",
      profile: { givenName: "Ada", familyName: "Lovelace", gender: "GENDER_FEMALE" },
      email: { email: "reflected@example.com", isVerified: true },
    });
    const { stdout: added } = await bufCurl([...headers, "-d", request, `${server.url}/zitadel.user.v2.UserService/AddHumanUser`], "grpc-v1alpha");
    const { userId } = JSON.parse(added) as { userId: string };
    expect(userId).toMatch(/^\d+$/);
    const { stdout: read } = await bufCurl([...headers, "-d", JSON.stringify({ userId }), `${server.url}/zitadel.user.v2.UserService/GetUserByID`]);
    expect(JSON.parse(read)).toMatchObject({ user: { userId, username: "reflected", human: { profile: { gender: "GENDER_FEMALE" } } } });
    expect(JSON.parse(read).details.changeDate).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it("says what it does not know", async () => {
    const failed = await bufCurl(["-d", "{}", `${server.url}/zitadel.management.v1.ManagementService/NoSuchMethod`]).then(
      () => undefined,
      (err: { stderr: string }) => err.stderr,
    );
    expect(failed).toMatch(/NoSuchMethod/);
  });
});
