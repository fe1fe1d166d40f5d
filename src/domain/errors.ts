/**
 * The failures the domain reports, in ZITADEL's vocabulary.
 *
 * Each error carries the gRPC-style kind, ZITADEL's stable error id (e.g. `USER-JDk4t`) and an
 * English message, all defined once in src/domain/error-catalogue.ts. The protocol edge turns them
 * into wire errors in one place per shape (src/edge/errors.ts for gRPC, Connect and REST,
 * src/pingone/errors.ts for PingOne's API); the domain never knows about Connect or HTTP.
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

/**
 * A request-shape failure worded by the proto validator (src/edge/validation.ts), which has no id.
 * Every other failure is an entry of src/domain/error-catalogue.ts.
 */
export const invalidArgument = (id: string, message: string) => new DomainError("InvalidArgument", id, message);

/**
 * A failed credential check (a wrong password): ZITADEL reports these with a
 * `zitadel.v1.CredentialsCheckError` detail, which adds how many checks failed in a row.
 */
export class CredentialsCheckFailed extends DomainError {
  constructor(
    check: { (): DomainError; readonly id: string },
    readonly failedAttempts: number,
  ) {
    const { kind, id, message } = check();
    super(kind, id, message);
  }
}

export function isCredentialsCheckFailed(err: unknown): err is CredentialsCheckFailed {
  return isDomainError(err) && "failedAttempts" in err && typeof err.failedAttempts === "number";
}
