import { HashErrors, PasswordErrors, PingOneErrors, UserCreationErrors } from "../domain/error-catalogue.js";
import { randomUUID } from "node:crypto";
import { isCredentialsCheckFailed, isDomainError } from "../domain/errors.js";
import { isConcurrentChange } from "../domain/claims.js";
import { type ErrorLog, logUnexpected } from "../edge/errors.js";

/**
 * Errors in the shape of PingOne's Platform API (developer.pingidentity.com/pingone-api/platform/
 * reference/error-codes.html; the Go SDK's `P1Error` in patrickcping/pingone-go-sdk-v2
 * management/model_p1_error.go): `{id, code, message, details[{code, target, message, innerError}]}`,
 * with PingOne's status for each top-level code. Every body has a fresh UUID `id`: Terraform
 * (terraform-provider-pingone internal/framework/legacysdk/sdk.go) formats an error only when
 * `id` is set.
 */
export interface PingOneErrorDetail {
  code: string;
  target?: string;
  message: string;
  innerError?: Record<string, unknown>;
}

export class PingOneError extends Error {
  override readonly name = "PingOneError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: PingOneErrorDetail[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body() {
    return {
      id: randomUUID(),
      code: this.code,
      message: this.message,
      ...(this.details.length > 0 ? { details: this.details } : {}),
    };
  }
}

/** PingOne's canonical texts (its docs' response-code tables). */
export const MESSAGES = {
  invalidData: "The request could not be completed. One or more validation errors were in the request.",
  requestFailed: "The request could not be completed.",
  unauthorized: "You do not have access to this resource.",
  forbidden: "The actor attempting to perform the request is not authorized.",
  notFound: "The requested resource was not found.",
  unsupportedMediaType:
    "The server is refusing to service the request because the entity of the request is in a format not supported by the requested resource for the requested method.",
  methodNotAllowed: "The request method is not supported for the requested resource.",
  unexpected: "An unexpected error occurred.",
} as const;

/** 400 INVALID_DATA with one detail, e.g. `invalidValue("username", "must not be empty", "REQUIRED_VALUE")`. */
export function invalidData(target: string, message: string, code = "INVALID_VALUE", innerError?: Record<string, unknown>): PingOneError {
  return new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [{ code, target, message, ...(innerError ? { innerError } : {}) }]);
}

export const notFoundError = (message: string = MESSAGES.notFound) => new PingOneError(404, "NOT_FOUND", message);

export const unsupportedMediaType = () => new PingOneError(415, "INVALID_REQUEST", MESSAGES.unsupportedMediaType);

/** Which request attribute a domain failure is about, from the ZITADEL ids the domain uses. */
const TARGET_OF_ID: Record<string, string> = {
  [UserCreationErrors.emailEmpty.id]: "email",
  [UserCreationErrors.emailInvalid.id]: "email",
  [PingOneErrors.usernameRequired.id]: "username",
  [UserCreationErrors.userTaken.id]: "username",
  [UserCreationErrors.domainReserved.id]: "username",
  [HashErrors.encodingNotSupported.id]: "password",
  [HashErrors.malformed.id]: "password",
  [HashErrors.costOutOfRange.id]: "password",
  [PingOneErrors.nameRequired.id]: "name",
};

/** PingOne's password-policy rule names for the complexity checks (src/domain/password.ts). */
const POLICY_RULE_OF_ID: Record<string, string> = {
  [PasswordErrors.tooShort.id]: "length",
  [PasswordErrors.lowerCaseMissing.id]: "minCharacters",
  [PasswordErrors.upperCaseMissing.id]: "minCharacters",
  [PasswordErrors.numberMissing.id]: "minCharacters",
  [PasswordErrors.symbolMissing.id]: "minCharacters",
  [PasswordErrors.tooLongForBcrypt.id]: "length",
};

/**
 * Turns whatever a handler threw into a PingOne error. Domain failures keep their English text
 * (never a secret: src/domain/errors.ts); anything unexpected is logged and answered as
 * PingOne's 500, which only a real fault may produce, since PingOne's Go SDK retries 5xx and
 * UNEXPECTED_ERROR ten times (pingone-go-sdk-v2 management/client_ext.go).
 */
export function toPingOneError(err: unknown, log: ErrorLog): PingOneError {
  if (err instanceof PingOneError) return err;
  if (isDomainError(err)) {
    const target = TARGET_OF_ID[err.id];
    const rule = POLICY_RULE_OF_ID[err.id];
    if (rule) {
      return invalidData("password", "User password did not satisfy password policy requirements", "INVALID_VALUE", {
        unsatisfiedRequirements: [rule],
        [rule]: err.message,
      });
    }
    if (isCredentialsCheckFailed(err)) {
      return invalidData("password", "The provided password did not match provisioned password");
    }
    switch (err.kind) {
      case "InvalidArgument":
        return invalidData(target ?? "body", err.message);
      case "AlreadyExists":
        return invalidData(
          target ?? "name",
          err.id === UserCreationErrors.userTaken.id && target === "username" ? "A resource with the specified name already exists." : err.message,
          "UNIQUENESS_VIOLATION",
        );
      case "NotFound":
        return notFoundError(err.message === "" ? MESSAGES.notFound : `${MESSAGES.notFound} ${err.message}.`.replace("..", "."));
      case "FailedPrecondition":
        return new PingOneError(400, "REQUEST_FAILED", `${MESSAGES.requestFailed} ${err.message}.`.replace("..", "."), [
          { code: "CONSTRAINT_VIOLATION", ...(target ? { target } : {}), message: err.message },
        ]);
      case "PermissionDenied":
        return new PingOneError(403, "ACCESS_FAILED", MESSAGES.forbidden, [
          { code: "INSUFFICIENT_PERMISSIONS", target: "Authorization Credentials", message: err.message },
        ]);
      case "Unauthenticated":
        return new PingOneError(401, "ACCESS_FAILED", MESSAGES.unauthorized, [
          {
            code: "INVALID_TOKEN",
            target: "Authentication Credentials",
            message: "The authorization token is either missing or invalid, or it has expired.",
          },
        ]);
      case "ResourceExhausted":
        return new PingOneError(429, "REQUEST_LIMITED", err.message, [{ code: "LIMIT_EXCEEDED", message: err.message }], { "retry-after": "1" });
      case "Unavailable":
        // A directory behind a gateway that is down or too slow: nothing was decided, and trying
        // again later may succeed (PingOne's clients honour Retry-After on 503).
        return new PingOneError(503, "REQUEST_FAILED", `${MESSAGES.requestFailed} ${err.message}.`.replace("..", "."), [], { "retry-after": "5" });
      case "Unimplemented":
        return new PingOneError(405, "INVALID_REQUEST", MESSAGES.methodNotAllowed);
      default:
        break;
    }
  }
  if (isConcurrentChange(err)) {
    // Every attempt lost to concurrent changes of the same object: nothing was written.
    return new PingOneError(409, "REQUEST_FAILED", "The resource was changed concurrently; try again.");
  }
  logUnexpected(log, err);
  return new PingOneError(500, "UNEXPECTED_ERROR", MESSAGES.unexpected);
}
