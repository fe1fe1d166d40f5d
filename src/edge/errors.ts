import { create, type DescMessage, toJson } from "@bufbuild/protobuf";
import type { FastifyBaseLogger } from "fastify";
import { Code, ConnectError } from "@connectrpc/connect";
import { CredentialsCheckErrorSchema, ErrorDetailSchema } from "../../gen/zitadel/message_pb.js";
import { type ErrorKind, isCredentialsCheckFailed, isDomainError } from "../domain/errors.js";
import { isConcurrentChange } from "../domain/claims.js";
import { RequestEnded } from "../domain/ports.js";

/** The gRPC code of each of the domain's error kinds. */
export const CODE_OF_KIND: Record<ErrorKind, Code> = {
  InvalidArgument: Code.InvalidArgument,
  NotFound: Code.NotFound,
  AlreadyExists: Code.AlreadyExists,
  PermissionDenied: Code.PermissionDenied,
  FailedPrecondition: Code.FailedPrecondition,
  Unauthenticated: Code.Unauthenticated,
  ResourceExhausted: Code.ResourceExhausted,
  Unimplemented: Code.Unimplemented,
  Unavailable: Code.Unavailable,
  Internal: Code.Internal,
};

/** Where an unexpected error is logged: the request's logger, so that the line carries its `reqId`. */
export type ErrorLog = Pick<FastifyBaseLogger, "error">;

/** Logs an error no client caused, with its cause; what the client sees says nothing of it. */
export function logUnexpected(log: ErrorLog, err: unknown): void {
  log.error({ err }, "request failed unexpectedly");
}

/**
 * Turns anything a service threw into the ConnectError a client sees, the way ZITADEL shows it:
 * message "<text> (<id>)" and a `zitadel.v1.ErrorDetail{id, message}` detail (a
 * `zitadel.v1.CredentialsCheckError` for a failed credential check).
 *
 * Unexpected errors are logged with their cause and answered with a bare internal error, so
 * no stack trace or driver message ever reaches a client.
 */
export function toConnectError(err: unknown, log: ErrorLog): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isDomainError(err)) {
    if (err.id === "") return new ConnectError(err.message, CODE_OF_KIND[err.kind]);
    if (isCredentialsCheckFailed(err)) {
      // A failed password check carries a CredentialsCheckError instead of the ErrorDetail.
      const detail = create(CredentialsCheckErrorSchema, { id: err.id, message: err.message, failedAttempts: err.failedAttempts });
      return new ConnectError(`${err.message} (${err.id})`, CODE_OF_KIND[err.kind], undefined, [{ desc: CredentialsCheckErrorSchema, value: detail }]);
    }
    return new ConnectError(`${err.message} (${err.id})`, CODE_OF_KIND[err.kind], undefined, [
      { desc: ErrorDetailSchema, value: create(ErrorDetailSchema, { id: err.id, message: err.message }) },
    ]);
  }
  // Every attempt at a change lost to a concurrent change of the same object (src/domain/conflicts.ts):
  // nothing was written, and the client may simply try again.
  if (isConcurrentChange(err)) {
    return new ConnectError("The object was changed concurrently; try again", Code.Aborted);
  }
  // The caller's deadline passed or it went away before the command's write (src/store/request-scope.ts):
  // expected, not logged; the caller has been answered with the deadline or cancellation already.
  if (err instanceof RequestEnded) return new ConnectError(err.message, Code.Canceled);
  logUnexpected(log, err);
  return new ConnectError("Internal error", Code.Internal);
}

/** grpc-gateway's HTTP status for each gRPC code (FailedPrecondition is 400, not 412). */
const HTTP_STATUS: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

export function httpStatusOf(code: Code): number {
  return HTTP_STATUS[code] ?? 500;
}

/** grpc-gateway's code for each status the edge answers itself (routing, Fastify's body parsing). */
const CODE_OF_STATUS: Record<number, Code> = {
  400: Code.InvalidArgument,
  404: Code.NotFound,
  405: Code.Unimplemented,
  413: Code.ResourceExhausted,
  415: Code.InvalidArgument,
};

/**
 * The REST body for a failure the edge decides before any service runs (an unknown route, a
 * body Fastify could not read): grpc-gateway's shape without details. `code` defaults to the
 * status's code; a 5xx is the bare internal error, whatever its cause.
 */
export function edgeRestError(status: number, message: string, code: Code = CODE_OF_STATUS[status] ?? Code.InvalidArgument) {
  if (status >= 500) return restErrorBody(new ConnectError("Internal error", Code.Internal));
  return restErrorBody(new ConnectError(message, code));
}

/** The grpc-gateway error body: `{code, message, details:[{"@type": …, …}]}`. */
export function restErrorBody(err: ConnectError): { code: number; message: string; details: unknown[] } {
  const details = err.details.map((detail) => {
    if ("desc" in detail) {
      const desc = detail.desc as DescMessage;
      return { "@type": `type.googleapis.com/${desc.typeName}`, ...(toJson(desc, create(desc, detail.value)) as object) };
    }
    return { "@type": `type.googleapis.com/${detail.type}` };
  });
  return { code: err.code, message: err.rawMessage, details };
}
