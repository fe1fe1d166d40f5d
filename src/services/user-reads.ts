import { QueryErrors } from "../domain/error-catalogue.js";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Change, ChangeSchema } from "../../gen/zitadel/change_pb.js";
import { type ListDetails as ListDetailsV1, ListDetailsSchema as ListDetailsV1Schema } from "../../gen/zitadel/object_pb.js";
import { type ListDetails as ListDetailsV2, ListDetailsSchema as ListDetailsV2Schema } from "../../gen/zitadel/object/v2/object_pb.js";
import type { SearchQuery as SearchQueryV2 } from "../../gen/zitadel/user/v2/query_pb.js";
import type { SearchQuery as SearchQueryV1 } from "../../gen/zitadel/user_pb.js";
import type { UserState } from "../domain/ports.js";
import { MAX_NESTING, TEXT_METHODS, type TextField, type UserChange, type UserFilter, type UserSortField } from "../domain/user-queries.js";
/**
 * The user search requests of both API versions, turned into the domain's filters with ZITADEL's
 * own checks (nesting depth, a NotQuery without query). The rules ZITADEL declares with
 * protoc-gen-validate (lengths, defined enum values, a query set) were checked before the
 * handler ran (src/edge/validation.ts).
 */
type Version = "v1" | "v2";
type AnySearchQuery = SearchQueryV1 | SearchQueryV2;
type QueryCase = NonNullable<AnySearchQuery["query"]["case"]>;

interface TextQueryRule {
  target: TextField;
}

const TEXT_QUERIES: Partial<Record<QueryCase, TextQueryRule>> = {
  userNameQuery: { target: "username" },
  firstNameQuery: { target: "givenName" },
  lastNameQuery: { target: "familyName" },
  nickNameQuery: { target: "nickName" },
  displayNameQuery: { target: "displayName" },
  emailQuery: { target: "email" },
  loginNameQuery: { target: "loginName" },
  phoneQuery: { target: "phone" },
};

/** The text a text query compares with, whatever its field is called. */
function textOf(query: AnySearchQuery["query"]): string {
  switch (query.case) {
    case "userNameQuery":
      return query.value.userName;
    case "firstNameQuery":
      return query.value.firstName;
    case "lastNameQuery":
      return query.value.lastName;
    case "nickNameQuery":
      return query.value.nickName;
    case "displayNameQuery":
      return query.value.displayName;
    case "emailQuery":
      return query.value.emailAddress;
    case "loginNameQuery":
      return query.value.loginName;
    case "phoneQuery":
      return query.value.number;
    default:
      throw new Error(`not a text query: ${query.case}`);
  }
}

/** The states each version numbers (ZITADEL's proto/zitadel/user/v2/user.proto UserState and proto/zitadel/user.proto UserState); the others match no stored user. */
const STATES: Record<Version, Record<number, UserState>> = {
  v1: { 1: "ACTIVE", 2: "INACTIVE", 4: "LOCKED", 6: "INITIAL" },
  v2: { 1: "ACTIVE", 2: "INACTIVE", 4: "LOCKED", 5: "INITIAL" },
};
const TYPES: Record<number, "human" | "machine"> = { 1: "human", 2: "machine" };

function toFilter(query: AnySearchQuery | undefined, version: Version, level: number): UserFilter {
  if (level > MAX_NESTING) throw QueryErrors.tooDeeplyNested();
  const q = query?.query;
  if (!q || q.case === undefined) {
    // A NotQuery without a query: PGV lets it through, ZITADEL's conversion does not. The key
    // has no English text, so clients see it raw.
    throw QueryErrors.userQueryInvalid();
  }
  const text = TEXT_QUERIES[q.case];
  if (text) {
    const method = TEXT_METHODS[(q.value as { method: number }).method]!;
    return { kind: "text", field: text.target, value: textOf(q), method };
  }
  switch (q.case) {
    case "stateQuery":
      return { kind: "state", state: STATES[version][q.value.state] };
    case "typeQuery":
      return { kind: "type", type: TYPES[q.value.type] };
    case "inUserIdsQuery":
      return { kind: "ids", ids: q.value.userIds };
    case "inUserEmailsQuery":
      return { kind: "emails", emails: q.value.userEmails };
    case "organizationIdQuery":
      return { kind: "org", orgId: q.value.organizationId };
    case "orQuery":
      return { kind: "or", filters: (q.value.queries as AnySearchQuery[]).map((inner) => toFilter(inner, version, level + 1)) };
    case "andQuery":
      return { kind: "and", filters: (q.value.queries as AnySearchQuery[]).map((inner) => toFilter(inner, version, level + 1)) };
    case "notQuery":
      return { kind: "not", filter: toFilter(q.value.query, version, level + 1) };
    default:
      throw QueryErrors.userQueryInvalid();
  }
}

/** The filters of a ListUsers request (AND-combined), checked as ZITADEL checks them. */
export function userFilters(queries: readonly AnySearchQuery[], version: Version): UserFilter[] {
  return queries.map((query) => toFilter(query, version, 0));
}

/** UserFieldName (v1 0–8, v2 0–9); unspecified and unknown numbers sort by id, as in ZITADEL. */
const SORT_FIELDS: readonly UserSortField[] = ["id", "username", "givenName", "familyName", "nickName", "displayName", "email", "state", "type", "createdAt"];
export function userSortField(column: number, version: Version): UserSortField {
  if (version === "v1" && column === 9) return "id";
  return SORT_FIELDS[column] ?? "id";
}

/** List offsets are uint64; beyond the safe integers nothing is left to list anyway. */
export function listOffset(offset: bigint): number {
  return offset > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(offset);
}

/** `zitadel.v1.ListDetails`: the total, and the time of the read (reads see every write at once). */
export function listDetailsV1(total: number, at: number): ListDetailsV1 {
  return create(ListDetailsV1Schema, { totalResult: BigInt(total), viewTimestamp: timestampFromMs(at) });
}

/** `zitadel.object.v2.ListDetails`. */
export function listDetailsV2(total: number, at: number): ListDetailsV2 {
  return create(ListDetailsV2Schema, { totalResult: BigInt(total), timestamp: timestampFromMs(at) });
}

/**
 * English texts of the event types (ZITADEL's `EventTypes.*` in internal/static/i18n/en.yaml).
 * A type without a text shows its key, as ZITADEL's translator does.
 */
const EVENT_TYPE_TEXTS: Readonly<Record<string, string>> = {
  "user.human.added": "Person added",
  "user.human.selfregistered": "Person registered themself",
  "user.machine.added": "Technical user added",
  "user.machine.changed": "Technical user changed",
  "user.human.initialization.code.added": "Initialization code generated",
  "user.human.initialization.code.sent": "Initialization code sent",
  "user.human.initialization.check.succeeded": "Initialization check succeeded",
  "user.human.initialization.check.failed": "Initialization check failed",
  "user.human.email.changed": "Email address changed",
  "user.human.email.verified": "Email address verified",
  "user.human.email.code.added": "Email address verification code generated",
  "user.human.email.code.sent": "Email address verification code sent",
  "user.human.phone.changed": "Phone number changed",
  "user.human.phone.verified": "Phone number verified",
  "user.human.phone.code.added": "Phone number code generated",
  "user.human.phone.code.sent": "Phone number code sent",
  "user.human.phone.removed": "Phone number removed",
  "user.human.profile.changed": "User profile changed",
  "user.human.password.changed": "Password changed",
  "user.human.password.hash.updated": "Password hash updated",
  "user.human.externalidp.added": "External IDP added",
  "user.human.externalidp.removed": "External IDP removed",
  "user.human.mfa.otp.added": "Multifactor OTP added",
  "user.human.mfa.otp.verified": "Multifactor OTP verified",
  "user.human.passwordless.initialization.code.added": "Passkey initialization code added",
  "user.human.passwordless.initialization.code.sent": "Passkey initialization code sent",
  "user.human.passwordless.initialization.code.requested": "Passkey initialization code requested",
  "user.human.passwordless.initialization.check.succeeded": "Passkey initialization code check succeeded",
  "user.human.passwordless.initialization.check.failed": "Passkey initialization code check failed",
  "user.human.passwordless.token.added": "Passkey added",
  "user.human.passwordless.token.verified": "Passkey verified",
  "user.human.passwordless.token.removed": "Passkey removed",
  "user.human.passwordless.token.signcount.changed": "Passkey signature counter changed",
  "user.username.changed": "Username changed",
  "user.locked": "User locked",
  "user.unlocked": "User unlocked",
  "user.deactivated": "User deactivated",
  "user.reactivated": "User reactivated",
  "user.removed": "User removed",
  "user.metadata.set": "User metadata set",
  "user.metadata.removed": "User metadata removed",
  "user.token.added": "Access Token created",
  "user.token.removed": "Access Token removed",
};

/**
 * `zitadel.change.v1.Change`, as ZITADEL's EventToChangePb fills it. An editor that is no (longer
 * a) user, such as "system", shows its id for name and login name.
 */
export function changeToPb(change: UserChange): Change {
  const key = `EventTypes.${change.type}`;
  return create(ChangeSchema, {
    changeDate: timestampFromMs(change.createdAt),
    eventType: { key, localizedMessage: EVENT_TYPE_TEXTS[change.type] ?? key },
    sequence: BigInt(change.sequence),
    editorId: change.creator,
    editorDisplayName: change.editor?.displayName ?? change.creator,
    editorPreferredLoginName: change.editor?.preferredLoginName ?? change.creator,
    resourceOwnerId: change.resourceOwner,
  });
}
