import { QueryErrors } from "./error-catalogue.js";
import { hasPermission, type Principal, ROLE_PERMISSIONS } from "./access.js";
import type { User, UserReadStore, UserState } from "./ports.js";

/**
 * Case folding for the search keys and every ignore-case comparison: each code point is lowered
 * on its own (as PostgreSQL's lower() does, so no final-sigma rule). Folding therefore keeps
 * prefixes, fold(a + b) = fold(a) + fold(b), which the index range scans for STARTS_WITH rely on.
 * SQLite's own lower() only folds ASCII, so keys are folded here, when rows are written.
 */
export function foldCase(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range, control characters included, folds with toLowerCase
  if (/^[\x00-\x7f]*$/.test(value)) return value.toLowerCase();
  let folded = "";
  for (const ch of value) folded += ch.toLowerCase();
  return folded;
}

/** ZITADEL's TextQueryMethod, in the order of its enum numbers (0–7). */
export const TEXT_METHODS = [
  "equals",
  "equalsIgnoreCase",
  "startsWith",
  "startsWithIgnoreCase",
  "contains",
  "containsIgnoreCase",
  "endsWith",
  "endsWithIgnoreCase",
] as const;
export type TextMethod = (typeof TEXT_METHODS)[number];

/** The text fields a search can compare (login names: see src/store/login-names.ts). */
export type TextField = "username" | "loginName" | "givenName" | "familyName" | "nickName" | "displayName" | "email" | "phone";

/** A search criterion; a list of them is AND-combined. */
export type UserFilter =
  | { kind: "text"; field: TextField; value: string; method: TextMethod }
  /** `undefined` for a state no stored user can have (UNSPECIFIED, DELETED, SUSPEND). */
  | { kind: "state"; state: UserState | undefined }
  /** `undefined` for TYPE_UNSPECIFIED, which no user has. */
  | { kind: "type"; type: "human" | "machine" | undefined }
  | { kind: "ids"; ids: readonly string[] }
  /** Exact (case-sensitive) email addresses. */
  | { kind: "emails"; emails: readonly string[] }
  | { kind: "org"; orgId: string }
  | { kind: "and"; filters: readonly UserFilter[] }
  | { kind: "or"; filters: readonly UserFilter[] }
  | { kind: "not"; filter: UserFilter };

export type UserSortField = "id" | "username" | "givenName" | "familyName" | "nickName" | "displayName" | "email" | "state" | "type" | "createdAt";

/** A search as the store runs it: scope, criteria and one page. */
export interface UserSearch {
  instanceId: string;
  /** The organisations whose users may be listed, or every organisation of the instance. */
  orgIds: readonly string[] | "all";
  /** A user listed even outside `orgIds` when it matches (v2: callers may always read themselves). */
  alsoUserId?: string;
  /** AND-combined. */
  filters: readonly UserFilter[];
  sort: UserSortField;
  asc: boolean;
  offset: number;
  limit: number;
}

export interface UserPage {
  users: User[];
  /** Every match, whatever the page. */
  total: number;
}

/** An event of a user's audit trail. */
export interface UserEvent {
  sequence: number;
  type: string;
  creator: string;
  createdAt: number;
}

/** Who caused an event, as the history shows them. */
export interface Editor {
  displayName: string;
  preferredLoginName: string;
}

/** ZITADEL's MaxQueryLimit. */
export const MAX_QUERY_LIMIT = 1000;
/** ZITADEL's DefaultQueryLimit, applied by the v2 APIs when no limit is asked for. */
export const DEFAULT_QUERY_LIMIT = 100;
/** v1 APIs use the maximum as their default, as ZITADEL's V1QueryLimit does. */
export const V1_DEFAULT_QUERY_LIMIT = MAX_QUERY_LIMIT;
/** ZITADEL refuses queries nested deeper than this. */
export const MAX_NESTING = 20;

/** The limit to apply: the default for 0, QUERY-4M0fs above the maximum. */
export function queryLimit(requested: number, defaultLimit: number): number {
  if (requested > MAX_QUERY_LIMIT) throw QueryErrors.limitExceeded();
  return requested === 0 ? defaultLimit : requested;
}

/** A page of the audit trail, with the editor and owner of each event. */
export interface UserChange extends UserEvent {
  resourceOwner: string;
  editor: Editor | undefined;
}

export function createUserQueries({ store }: { store: UserReadStore }) {
  return {
    /** v1: the users of one organisation. */
    listOrgUsers(search: Omit<UserSearch, "orgIds" | "alsoUserId"> & { orgId: string }): Promise<UserPage> {
      const { orgId, ...rest } = search;
      return store.searchUsers({ ...rest, orgIds: [orgId] });
    },

    /**
     * v2: the users of every organisation the caller may read users of (all of them for an
     * instance-level role), and the caller itself, as ZITADEL's permission check lets everyone
     * read themselves.
     */
    listReadableUsers(principal: Principal, search: Omit<UserSearch, "instanceId" | "orgIds" | "alsoUserId">): Promise<UserPage> {
      const instanceWide = principal.instanceRoles.some((role) => ROLE_PERMISSIONS[role]?.includes("user.read"));
      const orgIds = instanceWide ? ("all" as const) : [...principal.orgRoles.keys()].filter((orgId) => hasPermission(principal, "user.read", orgId));
      const seesSelf = orgIds === "all" || orgIds.includes(principal.orgId);
      return store.searchUsers({
        ...search,
        instanceId: principal.instanceId,
        orgIds,
        ...(seesSelf ? {} : { alsoUserId: principal.userId }),
      });
    },

    /**
     * ZITADEL's IsUserUnique: no user has both the username and the email (blank ones are left
     * out). Usernames are compared case-insensitively, since they are claimed that way
     * instance-wide; emails exactly, as ZITADEL does.
     */
    async isUserUnique(instanceId: string, username: string, email: string, orgId?: string): Promise<boolean> {
      return !(await store.userExists(instanceId, { username, email }, orgId));
    },

    /**
     * The audit trail of a user of the organisation, also of a removed one. Like ZITADEL, the
     * cursor means "after this sequence" whichever the order, and a user of another organisation
     * (or none) simply has no history here.
     */
    async userChanges(instanceId: string, orgId: string, userId: string, page: { after: number; limit: number; asc: boolean }): Promise<UserChange[]> {
      const owner = await store.ownerOf(instanceId, userId);
      if (owner !== orgId) return [];
      const events = await store.userEvents(instanceId, userId, page);
      const editors = await store.editors(instanceId, [...new Set(events.map((event) => event.creator))]);
      return events.map((event) => ({ ...event, resourceOwner: owner, editor: editors.get(event.creator) }));
    },
  };
}

export type UserQueries = ReturnType<typeof createUserQueries>;
