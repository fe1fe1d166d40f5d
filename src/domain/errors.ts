/**
 * The failures the domain reports, in ZITADEL's vocabulary.
 *
 * Each error carries the gRPC-style kind, ZITADEL's stable error id (e.g. `USER-JDk4t`) and an
 * English message. The API layer turns them into wire errors in one place (src/edge/errors.ts);
 * the domain never knows about Connect or HTTP.
 */
export type ErrorKind =
  | "InvalidArgument"
  | "NotFound"
  | "AlreadyExists"
  | "PermissionDenied"
  | "FailedPrecondition"
  | "Unauthenticated"
  | "ResourceExhausted"
  | "Unimplemented"
  | "Unavailable"
  | "Internal";

export class DomainError extends Error {
  override readonly name = "DomainError";

  /**
   * @param kind the gRPC code family of the failure
   * @param id ZITADEL's error id, or "" for input-shape errors that ZITADEL reports without one
   * @param message English text without the id; never contains secrets
   */
  constructor(
    readonly kind: ErrorKind,
    readonly id: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Structural guard, so it also works across duplicate module copies. */
export function isDomainError(err: unknown): err is DomainError {
  return err instanceof Error && err.name === "DomainError" && "kind" in err && "id" in err;
}

export const invalidArgument = (id: string, message: string) => new DomainError("InvalidArgument", id, message);
export const notFound = (id: string, message: string) => new DomainError("NotFound", id, message);
export const alreadyExists = (id: string, message: string) => new DomainError("AlreadyExists", id, message);
export const failedPrecondition = (id: string, message: string) => new DomainError("FailedPrecondition", id, message);
export const permissionDenied = (id: string, message: string) => new DomainError("PermissionDenied", id, message);
export const unauthenticated = (id: string, message: string) => new DomainError("Unauthenticated", id, message);
/** A system the request depends on (an LDAP directory) did not answer in time: nothing was decided. */
export const unavailable = (id: string, message: string) => new DomainError("Unavailable", id, message);

/**
 * A failed credential check (a wrong password): ZITADEL reports these with a
 * `zitadel.v1.CredentialsCheckError` detail, which adds how many checks failed in a row.
 */
export class CredentialsCheckFailed extends DomainError {
  constructor(
    id: string,
    message: string,
    readonly failedAttempts: number,
  ) {
    super("InvalidArgument", id, message);
  }
}

export function isCredentialsCheckFailed(err: unknown): err is CredentialsCheckFailed {
  return isDomainError(err) && "failedAttempts" in err && typeof err.failedAttempts === "number";
}
