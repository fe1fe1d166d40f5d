/**
 * Authentication, organisation context and health, through every transport (ZITADEL's internal/api/authz/,
 * internal/api/grpc/gerrors/zitadel_errors.go). ZITADEL's interceptor chain runs authorisation (token, organisation, permission) before
 * PGV validation, so a caller without access learns nothing about its request's shape.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { grpcJsHealthCheck, TRANSPORTS, type UnaryMethod, V1, V2 } from "./helpers/clients.js";
import { expectCode, expectOk, expectZitadelError } from "./helpers/expectations.js";
import { useUserport, v1AddBody, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";

const up = useUserport();
/** An organisation id that does not exist. */
const UNKNOWN_ORG = "123456789012345678";

/** Every RPC under test with a request that would succeed for the admin. */
const RPCS: Array<[string, UnaryMethod, () => JsonObject]> = [
  ["v1 ImportHumanUser", V1.importHumanUser, () => v1ImportBody()],
  ["v1 AddHumanUser", V1.addHumanUser, () => v1AddBody()],
  ["v1 GetUserByID", V1.getUserByID, () => ({ id: "123" })],
  ["v2 AddHumanUser", V2.addHumanUser, () => v2AddBody()],
  ["v2 GetUserByID", V2.getUserByID, () => ({ userId: "123" })],
];

describe.each(TRANSPORTS)("access over %s", (transport) => {
  const t = () => up.caller(transport);

  it.each(RPCS)("%s without an Authorization header is UNAUTHENTICATED", async (_, method, body) => {
    expectCode(await t().call(method, body(), { token: null }), Code.Unauthenticated);
  });

  it.each(RPCS)("%s with an unknown bearer token is UNAUTHENTICATED", async (_, method, body) => {
    expectCode(await t().call(method, body(), { token: "not-a-token-userport-issued" }), Code.Unauthenticated);
  });

  it("rejects the admin token under another scheme as UNAUTHENTICATED", async () => {
    expectCode(
      await t().call(V1.importHumanUser, v1ImportBody(), { token: null, headers: { authorization: `Basic ${up.server.token}` } }),
      Code.Unauthenticated,
    );
  });

  it("authenticates before validating: an invalid request without a token is UNAUTHENTICATED", async () => {
    expectCode(await t().call(V1.importHumanUser, v1ImportBody({ userName: "" }), { token: null }), Code.Unauthenticated);
    expectCode(await t().call(V2.getUserByID, { userId: "" }, { token: null }), Code.Unauthenticated);
  });

  it("does not tell an unauthenticated caller whether a user exists", async () => {
    const userId = expectOk(await t().call(V2.addHumanUser, v2AddBody())).userId as string;
    expectCode(await t().call(V2.getUserByID, { userId }, { token: null }), Code.Unauthenticated);
    expectCode(await t().call(V1.getUserByID, { id: userId }, { token: null }), Code.Unauthenticated);
  });

  it.each(RPCS.filter(([name]) => name.startsWith("v1")))("%s with an unknown x-zitadel-orgid is PERMISSION_DENIED AUTH-Bs7Ds", async (_, method, body) => {
    expectZitadelError(
      await t().call(method, body(), { headers: { "x-zitadel-orgid": UNKNOWN_ORG } }),
      Code.PermissionDenied,
      "AUTH-Bs7Ds",
      "Organisation doesn't exist",
    );
  });

  it("checks the organisation before validating the request (authorisation runs before PGV)", async () => {
    expectZitadelError(
      await t().call(V1.importHumanUser, v1ImportBody({ userName: "" }), { headers: { "x-zitadel-orgid": UNKNOWN_ORG } }),
      Code.PermissionDenied,
      "AUTH-Bs7Ds",
      "Organisation doesn't exist",
    );
    expectZitadelError(
      await t().call(V2.addHumanUser, v2AddBody({ organization: { orgId: UNKNOWN_ORG }, profile: { givenName: "", familyName: "" } })),
      Code.PermissionDenied,
      "AUTH-Bs7Ds",
      "Organisation doesn't exist",
    );
  });

  it("creates in the organisation named by x-zitadel-orgid, and in the caller's own without it", async () => {
    const withHeader = expectOk(await t().call(V1.importHumanUser, v1ImportBody(), { headers: { "x-zitadel-orgid": up.defaultOrgId } }));
    expect((withHeader.details as JsonObject).resourceOwner).toBe(up.defaultOrgId);
    const found = expectOk(await t().call(V1.getUserByID, { id: withHeader.userId as string }, { headers: { "x-zitadel-orgid": up.defaultOrgId } }));
    expect((found.user as JsonObject).id).toBe(withHeader.userId);
  });

  it("v2 AddHumanUser with an unknown organization.orgId is PERMISSION_DENIED AUTH-Bs7Ds", async () => {
    expectZitadelError(
      await t().call(V2.addHumanUser, v2AddBody({ organization: { orgId: UNKNOWN_ORG } })),
      Code.PermissionDenied,
      "AUTH-Bs7Ds",
      "Organisation doesn't exist",
    );
  });

  it("v2 AddHumanUser with an unknown organization.orgDomain is PERMISSION_DENIED AUTH-Bs7Ds", async () => {
    expectZitadelError(
      await t().call(V2.addHumanUser, v2AddBody({ organization: { orgDomain: "nowhere.example.com" } })),
      Code.PermissionDenied,
      "AUTH-Bs7Ds",
      "Organisation doesn't exist",
    );
  });

  it("v2 organization takes precedence over x-zitadel-orgid", async () => {
    const res = expectOk(
      await t().call(V2.addHumanUser, v2AddBody({ organization: { orgId: up.defaultOrgId } }), {
        headers: { "x-zitadel-orgid": UNKNOWN_ORG },
      }),
    );
    expect((res.details as JsonObject).resourceOwner).toBe(up.defaultOrgId);
  });

  it("v2 AddHumanUser without organization falls back to x-zitadel-orgid", async () => {
    expectZitadelError(
      await t().call(V2.addHumanUser, v2AddBody(), { headers: { "x-zitadel-orgid": UNKNOWN_ORG } }),
      Code.PermissionDenied,
      "AUTH-Bs7Ds",
      "Organisation doesn't exist",
    );
  });

  it.each([
    ["v1", V1.getUserByID, { id: "404000000000000404" }],
    ["v2", V2.getUserByID, { userId: "404000000000000404" }],
  ] as const)("%s GetUserByID of a nonexistent id is NOT_FOUND QUERY-Dfbg2", async (_, method, body) => {
    expectZitadelError(await t().call(method, { ...body }), Code.NotFound, "QUERY-Dfbg2", "User could not be found");
  });
});

describe("grpc.health.v1.Health", () => {
  it("answers SERVING for the server and its services over grpc-js, without a token", async () => {
    for (const service of ["", "zitadel.management.v1.ManagementService", "zitadel.user.v2.UserService"]) {
      expect(await grpcJsHealthCheck(up.server.url, service)).toEqual({ status: HealthCheckResponse_ServingStatus.SERVING });
    }
  });

  it("answers NOT_FOUND for an unknown service over grpc-js", async () => {
    expect(await grpcJsHealthCheck(up.server.url, "no.such.Service")).toEqual({ code: Code.NotFound });
  });

  it("answers SERVING over Connect's gRPC transport", async () => {
    const client = createClient(Health, createGrpcTransport({ baseUrl: up.server.url }));
    expect((await client.check({ service: "" })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  it("GET /healthz answers 200 without a token", async () => {
    const response = await fetch(`${up.server.url}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "SERVING" });
  });
});
