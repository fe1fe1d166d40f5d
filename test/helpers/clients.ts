/**
 * One way to call userport's RPCs over every wire protocol it serves, so the same test can run
 * against each of them. Every call goes through a real socket and a real client library:
 *
 * - `grpc-js`: a raw `@grpc/grpc-js` client (binary protobuf over HTTP/2), reading the
 *   `grpc-status-details-bin` trailer itself;
 * - `connect-grpc`: Connect's gRPC transport;
 * - `connect-json-h1`: the Connect protocol with JSON over HTTP/1.1;
 * - `connect-binary-h2`: the Connect protocol with binary protobuf over HTTP/2;
 * - `grpc-web`: Connect's gRPC-Web transport over HTTP/1.1;
 * - `rest`: `fetch` against the grpc-gateway style REST routes ZITADEL documents.
 *
 * Requests are written and responses read as protojson (what REST carries), so one assertion
 * fits every transport. The REST routes below are ZITADEL's, written down from its API docs,
 * not read from userport.
 */
import {
  create,
  type DescMethodUnary,
  type DescService,
  fromBinary,
  fromJson,
  type JsonObject,
  type JsonValue,
  type Message,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { type Client, type Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { Health, type HealthCheckRequest, type HealthCheckResponse } from "../../gen/grpc/health/v1/health_pb.js";
import { AdminService } from "../../gen/zitadel/admin_pb.js";
import { ManagementService } from "../../gen/zitadel/management_pb.js";
import { CredentialsCheckErrorSchema, ErrorDetailSchema } from "../../gen/zitadel/message_pb.js";
import { SessionService } from "../../gen/zitadel/session/v2/session_service_pb.js";
import { UserService } from "../../gen/zitadel/user/v2/user_service_pb.js";

export const TRANSPORTS = ["grpc-js", "connect-grpc", "connect-json-h1", "connect-binary-h2", "grpc-web", "rest"] as const;
/**
 * The server's own handlers called without a socket (Connect's router transport): for tests about
 * the domain rather than the wire, which then run once instead of once per transport.
 */
export const IN_PROCESS = "in-process";
export type TransportName = (typeof TRANSPORTS)[number] | typeof IN_PROCESS;

/** The RPCs under test, by a short name. */
export const V1 = ManagementService.method;
export const V2 = UserService.method;
export const SESSIONS = SessionService.method;
export const ADMIN = AdminService.method;
export type UnaryMethod = DescMethodUnary;

export interface ErrorDetail {
  id: string;
  message: string;
}

/** An error as a client sees it, whatever the protocol. */
export interface WireError {
  code: Code;
  /** The status message: `grpc-message`, Connect's message or REST's `message`. */
  message: string;
  /** The `zitadel.v1.ErrorDetail`s among the status details. */
  details: ErrorDetail[];
  /** Types of all status details, e.g. "zitadel.v1.ErrorDetail". */
  detailTypes: string[];
  /** The `zitadel.v1.CredentialsCheckError`s among the status details (failed credential checks). */
  credentialChecks: CredentialsCheckDetail[];
  /**
   * grpc-js only: the message exactly as grpc-js hands it to applications. grpc-js undoes the
   * `grpc-message` percent-encoding with `decodeURI`, which leaves e.g. "%3A" for ":" in place
   * when a server encodes more than the gRPC spec requires; `message` is fully decoded.
   */
  clientMessage?: string;
  /** REST only. */
  httpStatus?: number;
  /** REST only: the parsed response body. */
  body?: unknown;
}

export interface CredentialsCheckDetail {
  id: string;
  message: string;
  failedAttempts: number;
}

export type CallResult = { ok: true; json: JsonObject; httpStatus?: number; rawBody?: string } | { ok: false; error: WireError; rawBody?: string };

export interface CallOptions {
  /** The bearer token; `null` sends no Authorization header. Defaults to the admin's token. */
  token?: string | null;
  /** Extra request headers, e.g. `x-zitadel-orgid`. */
  headers?: Record<string, string>;
}

export interface Caller {
  readonly name: TransportName;
  call(method: UnaryMethod, request: JsonObject, options?: CallOptions): Promise<CallResult>;
  close(): void;
}

/** ZITADEL's documented REST bindings of the RPCs under test. */
const REST_ROUTES: Record<string, { method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE"; path: string; pathField?: string }> = {
  "zitadel.management.v1.ManagementService.ImportHumanUser": { method: "POST", path: "/management/v1/users/human/_import" },
  "zitadel.management.v1.ManagementService.AddHumanUser": { method: "POST", path: "/management/v1/users/human" },
  "zitadel.management.v1.ManagementService.GetUserByID": { method: "GET", path: "/management/v1/users/{id}", pathField: "id" },
  "zitadel.management.v1.ManagementService.DeactivateUser": { method: "POST", path: "/management/v1/users/{id}/_deactivate", pathField: "id" },
  "zitadel.management.v1.ManagementService.ReactivateUser": { method: "POST", path: "/management/v1/users/{id}/_reactivate", pathField: "id" },
  "zitadel.management.v1.ManagementService.LockUser": { method: "POST", path: "/management/v1/users/{id}/_lock", pathField: "id" },
  "zitadel.management.v1.ManagementService.UnlockUser": { method: "POST", path: "/management/v1/users/{id}/_unlock", pathField: "id" },
  "zitadel.management.v1.ManagementService.RemoveUser": { method: "DELETE", path: "/management/v1/users/{id}", pathField: "id" },
  "zitadel.management.v1.ManagementService.ListUsers": { method: "POST", path: "/management/v1/users/_search" },
  "zitadel.management.v1.ManagementService.ListUserChanges": {
    method: "POST",
    path: "/management/v1/users/{userId}/changes/_search",
    pathField: "userId",
  },
  "zitadel.management.v1.ManagementService.IsUserUnique": { method: "GET", path: "/management/v1/users/_is_unique" },
  "zitadel.management.v1.ManagementService.AddMachineUser": { method: "POST", path: "/management/v1/users/machine" },
  "zitadel.management.v1.ManagementService.ListPersonalAccessTokens": { method: "POST", path: "/management/v1/users/{userId}/pats/_search" },
  "zitadel.management.v1.ManagementService.AddPersonalAccessToken": { method: "POST", path: "/management/v1/users/{userId}/pats" },
  "zitadel.management.v1.ManagementService.GenerateMachineSecret": { method: "PUT", path: "/management/v1/users/{userId}/secret" },
  "zitadel.management.v1.ManagementService.RemoveMachineSecret": { method: "DELETE", path: "/management/v1/users/{userId}/secret" },
  "zitadel.management.v1.ManagementService.RemovePersonalAccessToken": {
    method: "DELETE",
    path: "/management/v1/users/{userId}/pats/{tokenId}",
  },
  "zitadel.management.v1.ManagementService.GetMyOrg": { method: "GET", path: "/management/v1/orgs/me" },
  "zitadel.management.v1.ManagementService.AddOrg": { method: "POST", path: "/management/v1/orgs" },
  "zitadel.management.v1.ManagementService.AddOrgDomain": { method: "POST", path: "/management/v1/orgs/me/domains" },
  "zitadel.management.v1.ManagementService.ListOrgDomains": { method: "POST", path: "/management/v1/orgs/me/domains/_search" },
  "zitadel.management.v1.ManagementService.SetPrimaryOrgDomain": {
    method: "POST",
    path: "/management/v1/orgs/me/domains/{domain}/_set_primary",
  },
  "zitadel.management.v1.ManagementService.ListOrgMembers": { method: "POST", path: "/management/v1/orgs/me/members/_search" },
  "zitadel.management.v1.ManagementService.AddOrgMember": { method: "POST", path: "/management/v1/orgs/me/members" },
  "zitadel.management.v1.ManagementService.RemoveOrgMember": { method: "DELETE", path: "/management/v1/orgs/me/members/{userId}" },
  "zitadel.management.v1.ManagementService.RemoveOrgDomain": { method: "DELETE", path: "/management/v1/orgs/me/domains/{domain}" },
  "zitadel.management.v1.ManagementService.UpdateOrgMember": { method: "PUT", path: "/management/v1/orgs/me/members/{userId}" },
  "zitadel.management.v1.ManagementService.GetDomainPolicy": { method: "GET", path: "/management/v1/policies/domain" },
  "zitadel.admin.v1.AdminService.GetCustomDomainPolicy": { method: "GET", path: "/admin/v1/orgs/{orgId}/policies/domain" },
  "zitadel.admin.v1.AdminService.AddCustomDomainPolicy": { method: "POST", path: "/admin/v1/orgs/{orgId}/policies/domain" },
  "zitadel.admin.v1.AdminService.UpdateCustomDomainPolicy": { method: "PUT", path: "/admin/v1/orgs/{orgId}/policies/domain" },
  "zitadel.admin.v1.AdminService.ResetCustomDomainPolicyToDefault": {
    method: "DELETE",
    path: "/admin/v1/orgs/{orgId}/policies/domain",
  },
  // Lockout policy: the admin write's path differs from its read's in ZITADEL's admin.proto.
  "zitadel.management.v1.ManagementService.GetLockoutPolicy": { method: "GET", path: "/management/v1/policies/lockout" },
  "zitadel.management.v1.ManagementService.GetDefaultLockoutPolicy": { method: "GET", path: "/management/v1/policies/default/lockout" },
  "zitadel.management.v1.ManagementService.AddCustomLockoutPolicy": { method: "POST", path: "/management/v1/policies/lockout" },
  "zitadel.management.v1.ManagementService.UpdateCustomLockoutPolicy": { method: "PUT", path: "/management/v1/policies/lockout" },
  "zitadel.management.v1.ManagementService.ResetLockoutPolicyToDefault": { method: "DELETE", path: "/management/v1/policies/lockout" },
  "zitadel.admin.v1.AdminService.GetLockoutPolicy": { method: "GET", path: "/admin/v1/policies/lockout" },
  "zitadel.admin.v1.AdminService.UpdateLockoutPolicy": { method: "PUT", path: "/admin/v1/policies/password/lockout" },
  "zitadel.admin.v1.AdminService.ImportData": { method: "POST", path: "/admin/v1/import" },
  "zitadel.user.v2.UserService.AddHumanUser": { method: "POST", path: "/v2/users/human" },
  "zitadel.user.v2.UserService.GetUserByID": { method: "GET", path: "/v2/users/{userId}", pathField: "userId" },
  "zitadel.user.v2.UserService.DeactivateUser": { method: "POST", path: "/v2/users/{userId}/deactivate", pathField: "userId" },
  "zitadel.user.v2.UserService.ReactivateUser": { method: "POST", path: "/v2/users/{userId}/reactivate", pathField: "userId" },
  "zitadel.user.v2.UserService.LockUser": { method: "POST", path: "/v2/users/{userId}/lock", pathField: "userId" },
  "zitadel.user.v2.UserService.UnlockUser": { method: "POST", path: "/v2/users/{userId}/unlock", pathField: "userId" },
  "zitadel.user.v2.UserService.DeleteUser": { method: "DELETE", path: "/v2/users/{userId}", pathField: "userId" },
  "zitadel.user.v2.UserService.ListUsers": { method: "POST", path: "/v2/users" },
  "zitadel.user.v2.UserService.SetEmail": { method: "POST", path: "/v2/users/{userId}/email", pathField: "userId" },
  "zitadel.user.v2.UserService.ResendEmailCode": { method: "POST", path: "/v2/users/{userId}/email/resend", pathField: "userId" },
  "zitadel.user.v2.UserService.VerifyEmail": { method: "POST", path: "/v2/users/{userId}/email/verify", pathField: "userId" },
  "zitadel.user.v2.UserService.SetPhone": { method: "POST", path: "/v2/users/{userId}/phone", pathField: "userId" },
  "zitadel.user.v2.UserService.ResendPhoneCode": { method: "POST", path: "/v2/users/{userId}/phone/resend", pathField: "userId" },
  "zitadel.user.v2.UserService.VerifyPhone": { method: "POST", path: "/v2/users/{userId}/phone/verify", pathField: "userId" },
  "zitadel.management.v1.ManagementService.ResendHumanInitialization": {
    method: "POST",
    path: "/management/v1/users/{userId}/_resend_initialization",
  },
  "zitadel.management.v1.ManagementService.UpdateUserName": { method: "PUT", path: "/management/v1/users/{userId}/username" },
  "zitadel.user.v2.UserService.CreateUser": { method: "POST", path: "/v2/users/new" },
  "zitadel.management.v1.ManagementService.AddGenericOIDCProvider": { method: "POST", path: "/management/v1/idps/generic_oidc" },
  "zitadel.management.v1.ManagementService.ListProviders": { method: "POST", path: "/management/v1/idps/templates/_search" },
  "zitadel.management.v1.ManagementService.GetProviderByID": { method: "GET", path: "/management/v1/idps/templates/{id}" },
  "zitadel.management.v1.ManagementService.ListHumanLinkedIDPs": { method: "POST", path: "/management/v1/users/{userId}/idps/_search" },
  "zitadel.management.v1.ManagementService.RemoveHumanLinkedIDP": {
    method: "DELETE",
    path: "/management/v1/users/{userId}/idps/{idpId}/{linkedUserId}",
  },
  "zitadel.user.v2.UserService.AddIDPLink": { method: "POST", path: "/v2/users/{userId}/links" },
  "zitadel.user.v2.UserService.ListIDPLinks": { method: "POST", path: "/v2/users/{userId}/links/_search" },
  "zitadel.user.v2.UserService.RemoveIDPLink": { method: "DELETE", path: "/v2/users/{userId}/links/{idpId}/{linkedUserId}" },
  "zitadel.user.v2.UserService.RegisterPasskey": { method: "POST", path: "/v2/users/{userId}/passkeys" },
  "zitadel.user.v2.UserService.VerifyPasskeyRegistration": { method: "POST", path: "/v2/users/{userId}/passkeys/{passkeyId}" },
  "zitadel.user.v2.UserService.CreatePasskeyRegistrationLink": { method: "POST", path: "/v2/users/{userId}/passkeys/registration_link" },
  "zitadel.user.v2.UserService.ListPasskeys": { method: "POST", path: "/v2/users/{userId}/passkeys/_search" },
  "zitadel.user.v2.UserService.RemovePasskey": { method: "DELETE", path: "/v2/users/{userId}/passkeys/{passkeyId}" },
  "zitadel.management.v1.ManagementService.ListHumanPasswordless": { method: "POST", path: "/management/v1/users/{userId}/passwordless/_search" },
  "zitadel.management.v1.ManagementService.AddPasswordlessRegistration": { method: "POST", path: "/management/v1/users/{userId}/passwordless/_link" },
  "zitadel.management.v1.ManagementService.SendPasswordlessRegistration": { method: "POST", path: "/management/v1/users/{userId}/passwordless/_send_link" },
  "zitadel.management.v1.ManagementService.RemoveHumanPasswordless": { method: "DELETE", path: "/management/v1/users/{userId}/passwordless/{tokenId}" },
  "zitadel.management.v1.ManagementService.SetHumanInitialPassword": {
    method: "POST",
    path: "/management/v1/users/{userId}/password/_initialize",
    pathField: "userId",
  },
  "zitadel.management.v1.ManagementService.SetHumanPassword": { method: "POST", path: "/management/v1/users/{userId}/password", pathField: "userId" },
  "zitadel.user.v2.UserService.PasswordReset": { method: "POST", path: "/v2/users/{userId}/password_reset", pathField: "userId" },
  "zitadel.user.v2.UserService.SetPassword": { method: "POST", path: "/v2/users/{userId}/password", pathField: "userId" },
  "zitadel.session.v2.SessionService.CreateSession": { method: "POST", path: "/v2/sessions" },
  "zitadel.session.v2.SessionService.GetSession": { method: "GET", path: "/v2/sessions/{sessionId}", pathField: "sessionId" },
  "zitadel.session.v2.SessionService.SetSession": { method: "PATCH", path: "/v2/sessions/{sessionId}", pathField: "sessionId" },
  "zitadel.session.v2.SessionService.DeleteSession": { method: "DELETE", path: "/v2/sessions/{sessionId}", pathField: "sessionId" },
  "zitadel.session.v2.SessionService.ListSessions": { method: "POST", path: "/v2/sessions/search" },
  "zitadel.management.v1.ManagementService.SetUserMetadata": { method: "POST", path: "/management/v1/users/{id}/metadata/{key}" },
  "zitadel.management.v1.ManagementService.BulkSetUserMetadata": { method: "POST", path: "/management/v1/users/{id}/metadata/_bulk" },
  "zitadel.management.v1.ManagementService.ListUserMetadata": { method: "POST", path: "/management/v1/users/{id}/metadata/_search" },
  "zitadel.management.v1.ManagementService.GetUserMetadata": { method: "GET", path: "/management/v1/users/{id}/metadata/{key}" },
  "zitadel.management.v1.ManagementService.RemoveUserMetadata": { method: "DELETE", path: "/management/v1/users/{id}/metadata/{key}" },
  "zitadel.management.v1.ManagementService.BulkRemoveUserMetadata": { method: "DELETE", path: "/management/v1/users/{id}/metadata/_bulk" },
  // userport's own bulk migration service (proto/userport/migration/v1/migration.proto).
  "userport.migration.v1.MigrationService.CreateImportJob": { method: "POST", path: "/migration/v1/jobs" },
  "userport.migration.v1.MigrationService.GetImportJob": { method: "GET", path: "/migration/v1/jobs/{jobId}" },
  "userport.migration.v1.MigrationService.ListImportJobs": { method: "POST", path: "/migration/v1/jobs/_search" },
  "userport.migration.v1.MigrationService.ListImportJobResults": { method: "POST", path: "/migration/v1/jobs/{jobId}/results/_search" },
  "userport.migration.v1.MigrationService.CancelImportJob": { method: "POST", path: "/migration/v1/jobs/{jobId}/_cancel" },
};

function headersOf(token: string, options: CallOptions = {}): Record<string, string> {
  const headers: Record<string, string> = { ...options.headers };
  const bearer = options.token === undefined ? token : options.token;
  if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
  return headers;
}

/** Decodes a `google.rpc.Status` by hand: code = 1, message = 2, repeated Any details = 3. */
export function decodeRpcStatus(bytes: Uint8Array): { code: number; message: string; details: Any[] } {
  const reader = new BinaryReader(bytes);
  const status = { code: 0, message: "", details: [] as Any[] };
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === 1) status.code = reader.int32();
    else if (fieldNo === 2) status.message = reader.string();
    else if (fieldNo === 3) status.details.push(fromBinary(AnySchema, reader.bytes()));
    else reader.skip(wireType, fieldNo);
  }
  return status;
}

const ERROR_DETAIL_URL = `type.googleapis.com/${ErrorDetailSchema.typeName}`;
const CREDENTIALS_CHECK_URL = `type.googleapis.com/${CredentialsCheckErrorSchema.typeName}`;

function fromConnectError(err: unknown): WireError {
  const error = ConnectError.from(err);
  return {
    code: error.code,
    message: error.rawMessage,
    details: error.findDetails(ErrorDetailSchema).map(({ id, message }) => ({ id, message })),
    detailTypes: error.details.map((d) => ("desc" in d ? d.desc.typeName : d.type)),
    credentialChecks: error.findDetails(CredentialsCheckErrorSchema).map(({ id, message, failedAttempts }) => ({ id, message, failedAttempts })),
  };
}

function connectCaller(name: TransportName, transport: Transport, token: string): Caller {
  const clients = new Map<DescService, Client<DescService>>();
  const clientOf = (service: DescService) => {
    let client = clients.get(service);
    if (!client) {
      client = createClient(service, transport);
      clients.set(service, client);
    }
    return client;
  };
  return {
    name,
    async call(method, request, options) {
      const client = clientOf(method.parent) as unknown as Record<string, (req: unknown, opts: unknown) => Promise<unknown>>;
      const input = fromJson(method.input, request);
      try {
        const output = await client[method.localName]!(input, { headers: headersOf(token, options) });
        return { ok: true, json: toJson(method.output, output as never) as JsonObject };
      } catch (err) {
        return { ok: false, error: fromConnectError(err) };
      }
    },
    close() {},
  };
}

function grpcJsCaller(url: string, token: string): Caller {
  const client = new grpc.Client(new URL(url).host, grpc.credentials.createInsecure());
  return {
    name: "grpc-js",
    call(method, request, options) {
      const metadata = new grpc.Metadata();
      for (const [key, value] of Object.entries(headersOf(token, options))) metadata.set(key, value);
      return new Promise((resolve) => {
        client.makeUnaryRequest<Message, Message>(
          `/${method.parent.typeName}/${method.name}`,
          (message) => Buffer.from(toBinary(method.input, message)),
          (bytes: Buffer) => fromBinary(method.output, bytes),
          fromJson(method.input, request),
          metadata,
          { deadline: Date.now() + 20_000 },
          (err, output) => {
            if (!err) return resolve({ ok: true, json: toJson(method.output, output as never) as JsonObject });
            resolve({ ok: false, error: fromGrpcJsError(err) });
          },
        );
      });
    },
    close: () => client.close(),
  };
}

/** Reads code and message from the status and the ErrorDetails from `grpc-status-details-bin`. */
function fromGrpcJsError(err: grpc.ServiceError): WireError {
  let message = err.details;
  try {
    message = decodeURIComponent(err.details);
  } catch {
    // not percent-encoded after all
  }
  const error: WireError = {
    code: err.code as number as Code,
    message,
    clientMessage: err.details,
    details: [],
    detailTypes: [],
    credentialChecks: [],
  };
  const [bin] = err.metadata.get("grpc-status-details-bin");
  if (bin === undefined) return error;
  const status = decodeRpcStatus(typeof bin === "string" ? Buffer.from(bin, "base64") : bin);
  // The trailer repeats the status; a client may rely on either, so they must agree.
  if (status.code !== err.code || status.message !== message) {
    throw new Error(`grpc-status-details-bin disagrees with the status: ${status.code} "${status.message}" vs ${err.code} "${message}"`);
  }
  for (const any of status.details) {
    error.detailTypes.push(any.typeUrl.replace(/^type\.googleapis\.com\//, ""));
    if (any.typeUrl === ERROR_DETAIL_URL) {
      const detail = fromBinary(ErrorDetailSchema, any.value);
      error.details.push({ id: detail.id, message: detail.message });
    }
    if (any.typeUrl === CREDENTIALS_CHECK_URL) {
      const detail = fromBinary(CredentialsCheckErrorSchema, any.value);
      error.credentialChecks.push({ id: detail.id, message: detail.message, failedAttempts: detail.failedAttempts });
    }
  }
  return error;
}

function restCaller(url: string, token: string): Caller {
  return {
    name: "rest",
    async call(method, request, options) {
      const route = REST_ROUTES[`${method.parent.typeName}.${method.name}`];
      if (!route) throw new Error(`no REST route for ${method.parent.typeName}.${method.name}`);
      let path = route.path;
      const body: JsonObject = { ...request };
      // Every {field} of the path template takes the request field of that JSON name.
      for (const [, field] of route.path.matchAll(/\{(\w+)\}/g)) {
        path = path.replace(`{${field!}}`, encodeURIComponent(String(request[field!] ?? "")));
        delete body[field!];
      }
      // A GET carries the fields that are not in the path as query parameters, as the gateway reads them.
      if (route.method === "GET" && Object.keys(body).length > 0) {
        path += `?${new URLSearchParams(Object.entries(body).map(([key, value]): [string, string] => [key, String(value)]))}`;
      }
      // POST, PUT and PATCH carry the rest as the body; DELETE only when there is something left.
      const hasBody =
        route.method === "POST" || route.method === "PUT" || route.method === "PATCH" || (route.method === "DELETE" && Object.keys(body).length > 0);
      const response = await fetch(url + path, {
        method: route.method,
        headers: { ...headersOf(token, options), ...(hasBody ? { "content-type": "application/json" } : {}) },
        ...(hasBody ? { body: JSON.stringify(body) } : {}),
      });
      return parseRestResponse(response);
    },
    close() {},
  };
}

/** A REST response as a {@link CallResult}: 2xx is success, anything else the gateway's error body. */
export async function parseRestResponse(response: Response): Promise<CallResult> {
  const rawBody = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(rawBody);
  } catch {
    throw new Error(`REST answered ${response.status} with a body that is not JSON: ${rawBody}`);
  }
  if (response.ok) return { ok: true, json: parsed as JsonObject, httpStatus: response.status, rawBody };
  const body = parsed as { code: number; message: string; details?: Array<Record<string, JsonValue>> };
  const details = body.details ?? [];
  return {
    ok: false,
    rawBody,
    error: {
      code: body.code as Code,
      message: body.message,
      details: details.filter((d) => d["@type"] === ERROR_DETAIL_URL).map((d) => ({ id: String(d.id ?? ""), message: String(d.message ?? "") })),
      detailTypes: details.map((d) => String(d["@type"]).replace(/^type\.googleapis\.com\//, "")),
      credentialChecks: details
        .filter((d) => d["@type"] === CREDENTIALS_CHECK_URL)
        .map((d) => ({ id: String(d.id ?? ""), message: String(d.message ?? ""), failedAttempts: Number(d.failedAttempts ?? 0) })),
      httpStatus: response.status,
      body,
    },
  };
}

/** Creates a caller of each transport for one server. */
export function createCallers(url: string, token: string, inProcess?: Transport): Map<TransportName, Caller> {
  const callers: Caller[] = [
    ...(inProcess ? [connectCaller(IN_PROCESS, inProcess, token)] : []),
    grpcJsCaller(url, token),
    connectCaller("connect-grpc", createGrpcTransport({ baseUrl: url }), token),
    connectCaller("connect-json-h1", createConnectTransport({ baseUrl: url, httpVersion: "1.1" }), token),
    connectCaller("connect-binary-h2", createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: true }), token),
    connectCaller("grpc-web", createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" }), token),
    restCaller(url, token),
  ];
  return new Map(callers.map((caller) => [caller.name, caller]));
}

/** `grpc.health.v1.Health/Check` through a raw grpc-js client. */
export async function grpcJsHealthCheck(url: string, service = ""): Promise<{ status?: number; code?: number }> {
  const client = new grpc.Client(new URL(url).host, grpc.credentials.createInsecure());
  const method = Health.method.check;
  try {
    return await new Promise((resolve) => {
      client.makeUnaryRequest<HealthCheckRequest, HealthCheckResponse>(
        `/${Health.typeName}/${method.name}`,
        (message) => Buffer.from(toBinary(method.input, message)),
        (bytes: Buffer) => fromBinary(method.output, bytes),
        create(method.input, { service }),
        new grpc.Metadata(),
        { deadline: Date.now() + 10_000 },
        (err, output) => resolve(err ? { code: err.code } : { status: output!.status }),
      );
    });
  } finally {
    client.close();
  }
}
