import { type CatalogueError, OrgErrors, UserCreationErrors } from "./error-catalogue.js";
import type { DomainError } from "./errors.js";
import { UniqueViolation } from "./ports.js";

/**
 * The one place that reads a store's `UniqueViolation` (src/domain/ports.ts): which unique claim
 * a write lost, and what that means for the caller in ZITADEL's words (its unique constraints,
 * internal/eventstore/unique_constraint.go, report a taken claim as `V3-DKcYh`).
 */

/** The claims that hold a username: in the instance, or in the organisation. */
export const isUsernameClaim = (kind: string) => kind === "username" || kind === "org_username";

/** Which unique claim a store write lost, or undefined when `err` is something else. */
export function lostClaim(err: unknown): string | undefined {
  return err instanceof UniqueViolation ? err.kind : undefined;
}

/** Whether `err` is a write that lost the unique claim `kind`. */
export const losesClaim = (err: unknown, kind: string): boolean => lostClaim(err) === kind;

/**
 * Whether every attempt at a change lost to a concurrent change of the same object (its
 * sequence claim, see src/domain/conflicts.ts): nothing was written and the client may try again.
 */
export const isConcurrentChange = (err: unknown): boolean => lostClaim(err)?.endsWith("sequence") ?? false;

/** A lost username claim is ZITADEL's "User already exists". */
const USERNAME: Record<string, CatalogueError> = { username: UserCreationErrors.userTaken, org_username: UserCreationErrors.userTaken };

/** The errors for the claims each kind of write can lose. */
export const CLAIMS = {
  username: USERNAME,
  idpLink: { idp_link: UserCreationErrors.linkTaken },
  /** A new user: its username, its links, its id (v1 and machine users, or v2 humans). */
  newUser: (type: "human" | "machine") => ({
    idp_link: UserCreationErrors.linkTaken,
    ...USERNAME,
    // A taken id: AddHuman's and AddMachineCommand's checks (internal/command/user_v2_human.go,
    // user_machine.go). The keys have no English text in ZITADEL, so clients see them raw.
    user_id: type === "machine" ? UserCreationErrors.idTakenV1 : UserCreationErrors.idTakenV2,
  }),
  orgName: { org_name: OrgErrors.nameTaken },
  newOrg: { org_name: OrgErrors.nameTaken, org_domain: OrgErrors.domainTaken },
  orgDomain: { org_domain: OrgErrors.domainTaken, org_domain_row: OrgErrors.domainAlreadyOnOrg },
} as const;

/**
 * The caller's error for a write that lost one of `claims` (a map from claim kind to its
 * error); any other error comes back unchanged, to be thrown as it is.
 */
export function claimError(err: unknown, claims: Readonly<Record<string, () => DomainError>>): unknown {
  const kind = lostClaim(err);
  const error = kind === undefined ? undefined : claims[kind];
  return error ? error() : err;
}

/** The error a write that loses the claim `kind` fails with: for checks that find the claim taken before writing. */
export const takenClaimError = (kind: string, claims: Readonly<Record<string, () => DomainError>>): DomainError =>
  claimError(new UniqueViolation(kind), claims) as DomainError;
