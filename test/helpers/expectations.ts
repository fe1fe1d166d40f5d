/**
 * Assertions on what a client sees, the same for every transport. Expected values come from
 * ZITADEL's behaviour (its source and docs, named in each test), never from userport's code.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { expect } from "vitest";
import type { CallResult, WireError } from "./clients.js";

/** grpc-gateway's HTTP status for a gRPC code (grpc-gateway's DefaultHTTPErrorHandler, used by ZITADEL's internal/api/grpc/server/gateway.go): FailedPrecondition is 400. */
export const GATEWAY_HTTP_STATUS: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.FailedPrecondition]: 400,
  [Code.OutOfRange]: 400,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.Aborted]: 409,
  [Code.PermissionDenied]: 403,
  [Code.Unauthenticated]: 401,
  [Code.ResourceExhausted]: 429,
  [Code.Unimplemented]: 501,
  [Code.Unavailable]: 503,
  [Code.DeadlineExceeded]: 504,
  [Code.Internal]: 500,
  [Code.Unknown]: 500,
};

function describeResult(result: CallResult): string {
  return result.ok ? `success ${JSON.stringify(result.json)}` : `error ${JSON.stringify(result.error)}`;
}

/** The response JSON of a successful call; fails the test with the error otherwise. */
export function expectOk(result: CallResult, httpStatus?: number): JsonObject {
  if (!result.ok) expect.fail(`expected success, got ${describeResult(result)}`);
  if (httpStatus !== undefined && result.httpStatus !== undefined) expect(result.httpStatus).toBe(httpStatus);
  return result.json;
}

/** The error of a failed call, with the code checked (and, over REST, the gateway's HTTP status). */
export function expectCode(result: CallResult, code: Code): WireError {
  if (result.ok) expect.fail(`expected ${Code[code]}, got ${describeResult(result)}`);
  const { error } = result;
  expect(Code[error.code], `code of ${error.message}`).toBe(Code[code]);
  if (error.httpStatus !== undefined) {
    expect(error.httpStatus).toBe(GATEWAY_HTTP_STATUS[code]);
    expect(error.body).toEqual({ code, message: error.message, details: expect.any(Array) });
  }
  return error;
}

/**
 * A ZITADEL error: the code, the message "<text> (<id>)" and exactly one `zitadel.v1.ErrorDetail`
 * carrying the id and the text.
 */
export function expectZitadelError(result: CallResult, code: Code, id: string, text: string): WireError {
  const error = expectCode(result, code);
  expect(error.message).toBe(`${text} (${id})`);
  expect(error.details).toEqual([{ id, message: text }]);
  expect(error.detailTypes).toEqual(["zitadel.v1.ErrorDetail"]);
  return error;
}

/** A ZITADEL error of which only the id is pinned (the text is checked to carry it). */
export function expectErrorId(result: CallResult, code: Code, id: string): WireError {
  const error = expectCode(result, code);
  expect(error.details.map((d) => d.id)).toEqual([id]);
  expect(error.message).toBe(`${error.details[0]!.message} (${id})`);
  return error;
}

/** A protoc-gen-validate failure: InvalidArgument with PGV's text and no ZITADEL id (§1.1, §10.1). */
export function expectPgvError(result: CallResult, message: string): WireError {
  const error = expectCode(result, Code.InvalidArgument);
  expect(error.message).toBe(message);
  expect(error.details).toEqual([]);
  return error;
}

/** PGV's text for a string length rule. */
export function pgvLength(field: string, min: number, max: number): string {
  return min === 0
    ? `invalid ${field}: value length must be at most ${max} runes`
    : `invalid ${field}: value length must be between ${min} and ${max} runes, inclusive`;
}

/**
 * PGV's text when a field of an embedded message fails: the outer message names the field that
 * holds it, then " | caused by: " and the inner failure (PGV's generated `Validate()`, which
 * ZITADEL's validation interceptor returns verbatim).
 */
export function pgvEmbedded(outerField: string, inner: string): string {
  return `invalid ${outerField}: embedded message failed validation | caused by: ${inner}`;
}

/** Fails when `secret` appears anywhere in what the client received. */
export function expectNotLeaked(result: CallResult, ...secrets: string[]): void {
  const seen = result.rawBody ?? JSON.stringify(result.ok ? result.json : result.error);
  for (const secret of secrets) expect(seen).not.toContain(secret);
}
