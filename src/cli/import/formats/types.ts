import type { JsonObject } from "@bufbuild/protobuf";
import type { Readable } from "node:stream";
import type { ImportRecord } from "../../../../gen/userport/migration/v1/migration_pb.js";
import type { FirebaseHashParameters } from "../../../domain/hashes/firebase.js";

/**
 * One converted user: `record` is the protobuf-JSON form of ZITADEL v2 `AddHumanUserRequest`
 * (gen/zitadel/user/v2/user_service_pb.js), checked against that message's schema — or, when
 * `machine` is set, of v2 `CreateUserRequest` with `machine` (a service user; the bulk API's
 * `ImportRecord.machine`); `key` is the user's id in the source system (what the report and a
 * resume refer to); `line` is where the user starts in the file, 1-based.
 */
export interface ConvertedUser {
  line: number;
  key: string;
  record: JsonObject;
  machine?: true;
  /**
   * The record already parsed into the bulk API's message (its key aside), when the converter
   * had to parse it anyway to check it (native): sent as is instead of being parsed again.
   */
  message?: ImportRecord;
}

/** A user (or a line) that could not be converted: it fails alone, the rest goes on. */
export interface FailedUser {
  line: number;
  key?: string;
  error: string;
}

export type Converted = ConvertedUser | FailedUser;

export const isFailed = (item: Converted): item is FailedUser => "error" in item;

/** The format options of `userport import` (each converter reads those that concern it). */
export interface ConvertOptions {
  /** The organisation every user goes to unless the source names one (`--org`). */
  orgId?: string;
  /** csv: `--map target=column`, e.g. `{ email: "E-Mail", "metadata.plan": "Plan" }`. */
  map?: Record<string, string>;
  /** csv: the field delimiter (`--delimiter`, default ","). */
  delimiter?: string;
  /** auth0: the password-hash export (`--passwords <file>`), NDJSON. */
  passwords?: Readable;
  /**
   * auth0, keycloak, firebase: which IdP of userport an identity of the source links to
   * (`--idp <source>=<idpId>`: an Auth0 connection, a Keycloak identity provider alias, a
   * Firebase providerId). Identities of sources not named here are left out.
   */
  idps?: Record<string, string>;
  /** pingone-csv: population name or id → organisation id (`--population <name|id>=<orgId>`). */
  populations?: Record<string, string>;
  /** firebase: the project's password hash parameters (`--hash-key`, `--salt-separator`, `--rounds`, `--mem-cost`). */
  firebase?: FirebaseHashParameters;
  /** pingone-csv: users must change their password at the next sign-in (`--force-password-change`). */
  forcePasswordChange?: boolean;
}

/** A converter reads its format from `input` as a stream and yields each user in file order. */
export type Converter = (input: Readable, options?: ConvertOptions) => AsyncGenerator<Converted>;
