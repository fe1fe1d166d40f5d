import type { UserReadStore } from "../domain/ports.js";
import { type Expression, type ExpressionBuilder, type Kysely, type Selectable, type SqlBool, sql } from "kysely";
import {
  type Editor,
  foldCase,
  type TextField,
  type TextMethod,
  type UserEvent,
  type UserFilter,
  type UserSearch,
  type UserSortField,
} from "../domain/user-queries.js";
import type { Db } from "./db.js";
import { createLoginNames } from "./login-names.js";
import type { Database, UserTable } from "./schema.js";
import { toUser } from "./user-store.js";

type UserColumn = keyof UserTable & string;
type Users = ExpressionBuilder<Database, "users">;

/**
 * The column compared for each field, and its folded key. Phone numbers are stored in E.164
 * ("+" and digits), which folding leaves as they are, so the number is its own key.
 */
const TEXT_COLUMNS: Record<TextField, { exact: UserColumn; folded: UserColumn }> = {
  username: { exact: "username", folded: "username_lower" },
  // Login names are the usernames while usernames are unique instance-wide.
  loginName: { exact: "username", folded: "username_lower" },
  givenName: { exact: "given_name", folded: "given_name_lower" },
  familyName: { exact: "family_name", folded: "family_name_lower" },
  nickName: { exact: "nick_name", folded: "nick_name_lower" },
  displayName: { exact: "display_name", folded: "display_name_lower" },
  email: { exact: "email", folded: "email_lower" },
  phone: { exact: "phone", folded: "phone" },
};

/**
 * Keys whose indexes leave out empty keys (migration 0003): SQLite uses such an index only when
 * the query states the index's condition, so a search for a non-empty key states it too.
 */
const PARTIAL_KEYS: ReadonlySet<UserColumn> = new Set([
  "given_name_lower",
  "family_name_lower",
  "nick_name_lower",
  "display_name_lower",
  "email_lower",
  "phone",
]);

/** `condition`, with the partial index's own condition beside it when `column` has such an index. */
function onKey(eb: Users, column: UserColumn, key: string, condition: Expression<SqlBool>): Expression<SqlBool> {
  return PARTIAL_KEYS.has(column) && key !== "" ? eb.and([condition, sql<SqlBool>`${eb.ref(column)} <> ''`]) : condition;
}

/**
 * The few text functions whose SQL differs between the dialects. `unindexed` writes a column as
 * an expression no index serves, a hint SQLite's planner (which keeps no statistics here) needs
 * and PostgreSQL's (which has them) does not: there it is the column itself.
 */
export interface TextSql {
  /** `haystack` contains `needle`, case-sensitively. */
  contains(haystack: Expression<unknown>, needle: string): Expression<SqlBool>;
  /** `text` ends with `suffix`, case-sensitively; `length` is the suffix's code-point count. */
  endsWith(text: Expression<unknown>, suffix: string, length: number): Expression<SqlBool>;
  unindexed<T>(column: Expression<T>): Expression<T>;
}

export const TEXT_SQL: Record<Db["dialect"], TextSql> = {
  // substr() counts characters (code points) from the end when the start is negative.
  sqlite: {
    contains: (haystack, needle) => sql<SqlBool>`instr(${haystack}, ${needle}) > 0`,
    endsWith: (text, suffix, length) => sql<SqlBool>`substr(${text}, ${-length}) = ${suffix}`,
    unindexed: (column) => sql`+${column}`,
  },
  postgres: {
    contains: (haystack, needle) => sql<SqlBool>`strpos(${haystack}, ${needle}) > 0`,
    endsWith: (text, suffix, length) => sql<SqlBool>`right(${text}, ${length}) = ${suffix}`,
    unindexed: (column) => column,
  },
};

const TRUE = sql<SqlBool>`1 = 1`;
const FALSE = sql<SqlBool>`1 = 0`;

/**
 * The least string above every string that starts with `prefix`, in SQLite's binary (UTF-8 byte,
 * hence code point) order: the prefix with its last code point incremented. Undefined when no
 * such string exists (a prefix of U+10FFFF only).
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const codePoints = Array.from(prefix, (ch) => ch.codePointAt(0)!);
  while (codePoints.length > 0) {
    const last = codePoints.pop()!;
    if (last < 0x10ffff) {
      // Surrogates cannot be stored in text, so the code point after U+D7FF is U+E000.
      codePoints.push(last + 1 === 0xd800 ? 0xe000 : last + 1);
      return String.fromCodePoint(...codePoints);
    }
  }
  return undefined;
}

/**
 * `column` starts with `prefix`, as an index range: `>=` and `<`, never LIKE. `indexed: false`
 * writes the column as an expression which no index serves: see {@link matching}.
 */
function startsWith(eb: Users, text: TextSql, column: UserColumn, prefix: string, indexed = true): Expression<SqlBool> {
  if (prefix === "") return TRUE;
  const upper = prefixUpperBound(prefix);
  const key = indexed ? eb.ref(column) : text.unindexed(eb.ref(column));
  const range = upper === undefined ? eb(key, ">=", prefix) : eb.and([eb(key, ">=", prefix), eb(key, "<", upper)]);
  return indexed ? onKey(eb, column, prefix, range) : range;
}

/** A LIKE pattern matching `value` literally: `\` escapes the wildcards % and _ and itself. */
export function likeLiteral(value: string): string {
  return value.replace(/[\\%_]/g, "\\$&");
}

/**
 * One text criterion. EQUALS and STARTS_WITH (both case variants) are equality or a `>=`/`<`
 * range on the folded key, which the (instance_id, org_id, <key>) indexes serve as range scans;
 * the case-sensitive variants add the same test on the original column, checked on the rows the
 * range found. CONTAINS and ENDS_WITH cannot use a B-tree index at all (the value is not a
 * prefix), so they are checked row by row on the users the other criteria and the scope leave:
 * LIKE with the wildcards in the value escaped on the folded key for the ignore-case variants
 * (SQLite's LIKE ignores ASCII case, harmless on folded text), substring tests ({@link TextSql})
 * on the original column for the case-sensitive ones.
 */
function textCondition(eb: Users, text: TextSql, field: TextField, value: string, method: TextMethod, ranges = true): Expression<SqlBool> {
  const { exact, folded } = TEXT_COLUMNS[field];
  const key = foldCase(value);
  switch (method) {
    case "equalsIgnoreCase":
      return onKey(eb, folded, key, eb(folded, "=", key));
    case "equals":
      return exact === folded ? onKey(eb, exact, value, eb(exact, "=", value)) : onKey(eb, folded, key, eb.and([eb(folded, "=", key), eb(exact, "=", value)]));
    case "startsWithIgnoreCase":
      return startsWith(eb, text, folded, key, ranges);
    case "startsWith":
      return exact === folded
        ? startsWith(eb, text, exact, value, ranges)
        : eb.and([startsWith(eb, text, folded, key, ranges), startsWith(eb, text, exact, value, false)]);
    case "containsIgnoreCase":
      return sql<SqlBool>`${eb.ref(folded)} LIKE ${`%${likeLiteral(key)}%`} ESCAPE '\\'`;
    case "contains":
      return text.contains(eb.ref(exact), value);
    case "endsWithIgnoreCase":
      return sql<SqlBool>`${eb.ref(folded)} LIKE ${`%${likeLiteral(key)}`} ESCAPE '\\'`;
    case "endsWith": {
      const length = Array.from(value).length;
      return length === 0 ? TRUE : text.endsWith(eb.ref(exact), value, length);
    }
  }
}

/**
 * The verified domains that make login names of the user's organisation: those of an
 * organisation whose domain policy requires domain login names (src/store/login-names.ts).
 */
function loginDomains(eb: Users) {
  return eb
    .selectFrom("org_domains as d")
    .innerJoin("orgs as o", (join) => join.onRef("o.instance_id", "=", "d.instance_id").onRef("o.id", "=", "d.org_id"))
    .select("d.domain")
    .whereRef("d.instance_id", "=", "users.instance_id")
    .whereRef("d.org_id", "=", "users.org_id")
    .where("d.verified", "=", sql.lit(1))
    .where("o.user_login_must_be_domain", "=", sql.lit(1));
}

/**
 * A login-name criterion. A user's login names are its username, or, in an organisation that
 * requires domain login names and has verified domains, `username@<domain>` for each of them.
 * EQUALS and STARTS_WITH (both case variants) narrow the candidates through the username's
 * index; CONTAINS and ENDS_WITH compare each login name in turn, like the other text fields.
 */
function loginNameCondition(eb: Users, text: TextSql, value: string, method: TextMethod, ranges: boolean): Expression<SqlBool> {
  const bare = eb.and([eb.not(eb.exists(loginDomains(eb))), textCondition(eb, text, "username", value, method, ranges)]);
  const at = value.lastIndexOf("@");
  if (method === "equals" || method === "equalsIgnoreCase") {
    if (at < 0) return bare;
    const name = value.slice(0, at);
    const domain = method === "equals" ? value.slice(at + 1) : foldCase(value.slice(at + 1));
    const withDomain = eb.and([textCondition(eb, text, "username", name, method, ranges), eb.exists(loginDomains(eb).where("d.domain", "=", domain))]);
    return eb.or([bare, withDomain]);
  }
  if (method === "startsWith" || method === "startsWithIgnoreCase") {
    // Every login name starts with the username, so a prefix without "@" is a prefix of the
    // username; with one, the username starts with the part before the first "@". Either way
    // the username's index range finds the candidates.
    const first = value.indexOf("@");
    if (first < 0) return textCondition(eb, text, "username", value, method, ranges);
    const candidates = textCondition(eb, text, "username", value.slice(0, first), method, ranges);
    const key = method === "startsWith" ? value : foldCase(value);
    const loginName = method === "startsWith" ? sql<string>`users.username || '@' || d.domain` : sql<string>`users.username_lower || '@' || d.domain`;
    const exact = eb.exists(loginDomains(eb).where(() => sql<SqlBool>`substr(${loginName}, 1, ${Array.from(key).length}) = ${key}`));
    return eb.and([candidates, eb.or([eb.and([eb.not(eb.exists(loginDomains(eb))), textCondition(eb, text, "username", value, method, false)]), exact])]);
  }
  const ignoreCase = method.endsWith("IgnoreCase");
  const key = ignoreCase ? foldCase(value) : value;
  const loginName = ignoreCase ? sql<string>`users.username_lower || '@' || d.domain` : sql<string>`users.username || '@' || d.domain`;
  const length = Array.from(key).length;
  const compare = method.startsWith("endsWith") ? text.endsWith(loginName, key, length) : text.contains(loginName, key);
  const withDomain = eb.exists(loginDomains(eb).where(() => (length === 0 ? TRUE : compare)));
  return eb.or([bare, withDomain]);
}

/**
 * One criterion of any kind. OR and NOT are tested on every user in scope: SQLite (without
 * statistics) does not split an OR across indexes here, and a NOT never has an index.
 */
function filterCondition(eb: Users, text: TextSql, filter: UserFilter, ranges = true): Expression<SqlBool> {
  switch (filter.kind) {
    case "text":
      return filter.field === "loginName"
        ? loginNameCondition(eb, text, filter.value, filter.method, ranges)
        : textCondition(eb, text, filter.field, filter.value, filter.method, ranges);
    case "state":
      return filter.state === undefined ? FALSE : eb("state", "=", filter.state);
    case "type":
      return filter.type === undefined ? FALSE : eb("type", "=", filter.type);
    case "ids":
      return filter.ids.length === 0 ? FALSE : eb("id", "in", [...new Set(filter.ids)]);
    case "emails": {
      if (filter.emails.length === 0) return FALSE;
      const emails = [...new Set(filter.emails)];
      // The folded keys find the rows through the index; the exact addresses decide.
      const keys = [...new Set(emails.map(foldCase))];
      const condition = eb.and([eb("email_lower", "in", keys), eb("email", "in", emails)]);
      return keys.includes("") ? condition : onKey(eb, "email_lower", keys[0]!, condition);
    }
    case "org":
      return eb("org_id", "=", filter.orgId);
    case "and":
      return filter.filters.length === 0 ? TRUE : eb.and(filter.filters.map((inner) => filterCondition(eb, text, inner)));
    case "or":
      return filter.filters.length === 0 ? FALSE : eb.or(filter.filters.map((inner) => filterCondition(eb, text, inner)));
    case "not":
      return eb.not(filterCondition(eb, text, filter.filter));
  }
}

/**
 * The organisations searched. Every organisation of the instance is an IN over the orgs table
 * rather than no condition at all, so that the (instance_id, org_id, …) indexes still apply:
 * SQLite probes them once per organisation.
 */
function orgScope(eb: Users, instanceId: string, orgIds: UserSearch["orgIds"]): Expression<SqlBool> {
  if (orgIds === "all") {
    return eb("org_id", "in", eb.selectFrom("orgs").select("orgs.id").where("orgs.instance_id", "=", instanceId));
  }
  if (orgIds.length === 0) return FALSE;
  return orgIds.length === 1 ? eb("org_id", "=", orgIds[0]!) : eb("org_id", "in", [...orgIds]);
}

/** Sort keys: the folded keys for text, so that the order ignores case and the indexes provide it. */
const SORT_KEYS: Record<Exclude<UserSortField, "state">, UserColumn> = {
  id: "id",
  username: "username_lower",
  givenName: "given_name_lower",
  familyName: "family_name_lower",
  nickName: "nick_name_lower",
  displayName: "display_name_lower",
  email: "email_lower",
  type: "type",
  createdAt: "created_at",
};

/** SQLite offsets are 64-bit; anything beyond the safe integers skips everything anyway. */
const MAX_OFFSET = Number.MAX_SAFE_INTEGER;

type UserRow = Selectable<UserTable>;

/** The users in scope that match every filter (a UNION ALL with the extra user, if any). */
function matching(db: Kysely<Database>, text: TextSql, search: UserSearch) {
  // SQLite keeps no statistics here and guesses that a two-sided range is more selective than an
  // equality, so with an EQUALS criterion at hand the STARTS_WITH ranges beside it are written so
  // that no index serves them: the equality's index finds the rows, the ranges test them.
  const ranges = !search.filters.some((filter) => filter.kind === "text" && filter.method.startsWith("equals"));
  const where = (scope: (eb: Users) => Expression<SqlBool>) =>
    db
      .selectFrom("users")
      .selectAll()
      .where((eb) =>
        eb.and([eb("instance_id", "=", search.instanceId), scope(eb), ...search.filters.map((filter) => filterCondition(eb, text, filter, ranges))]),
      );
  const inScope = where((eb) => orgScope(eb, search.instanceId, search.orgIds));
  const extra = search.alsoUserId;
  return extra === undefined ? inScope : inScope.unionAll(where((eb) => eb("id", "=", extra)));
}

/**
 * The statement of one search: the requested page, each row carrying the total number of
 * matches, so that page and total describe the same snapshot. Exported for plan checks.
 */
export function userSearchStatement(db: Kysely<Database>, text: TextSql, search: UserSearch) {
  const direction = search.asc ? "asc" : "desc";
  // Without criteria, an index in sort order lists the first page without sorting everything.
  // With criteria, the sort key is made an expression that no index provides, or
  // SQLite (which keeps no statistics here) would rather walk such an index in order and test
  // every user of the organisation than range-scan the criterion's index and sort the matches.
  const orderable = (column: UserColumn) => (search.filters.length === 0 ? sql.ref(`m.${column}`) : text.unindexed(sql.ref(`m.${column}`)));
  const sortKey =
    search.sort === "state"
      ? // ZITADEL sorts by its state numbers: active 1, inactive 2, locked 4, initial 6 (v2: 5).
        sql`CASE ${sql.ref("m.state")} WHEN 'ACTIVE' THEN 1 WHEN 'INACTIVE' THEN 2 WHEN 'LOCKED' THEN 4 WHEN 'INITIAL' THEN 6 ELSE 0 END`
      : orderable(SORT_KEYS[search.sort]);
  let page = db
    .selectFrom(matching(db, text, search).as("m"))
    .selectAll("m")
    .select(() => userCountQuery(db, text, search).as("total_count"))
    .orderBy(sortKey, direction);
  // Ties keep a stable order, so that pages neither repeat nor skip users.
  if (search.sort !== "id") page = page.orderBy(orderable("id"), direction);
  return page.limit(search.limit).offset(Math.min(search.offset, MAX_OFFSET)).compile();
}

function userCountQuery(db: Kysely<Database>, text: TextSql, search: UserSearch) {
  return db.selectFrom(matching(db, text, search).as("c")).select((eb) => eb.fn.countAll<number>().as("n"));
}

/** The SQL implementation of the domain's user searches and history reads. */
export function createUserSearch({ db, read, dialect }: Db): UserReadStore {
  const withLoginNames = createLoginNames(db, read);
  const text = TEXT_SQL[dialect];
  return {
    async searchUsers(search) {
      const rows = await read<UserRow & { total_count: number }>(userSearchStatement(db, text, search));
      // Past the last page there is no row to carry the total.
      const total = rows.length > 0 ? Number(rows[0]!.total_count) : Number((await read<{ n: number }>(userCountQuery(db, text, search).compile()))[0]?.n ?? 0);
      return { users: await withLoginNames(search.instanceId, rows.map(toUser)), total };
    },

    async userExists(instanceId, { username, email }, orgId) {
      const query = db
        .selectFrom("users")
        .select("id")
        .where((eb) => {
          const conditions: Expression<SqlBool>[] = [eb("instance_id", "=", instanceId)];
          if (username !== "" || email !== "") conditions.push(orgScope(eb, instanceId, orgId === undefined ? "all" : [orgId]));
          if (username !== "") conditions.push(eb("username_lower", "=", foldCase(username)));
          if (email !== "") conditions.push(onKey(eb, "email_lower", email, eb.and([eb("email_lower", "=", foldCase(email)), eb("email", "=", email)])));
          return eb.and(conditions);
        })
        .limit(1);
      return (await read(query.compile())).length > 0;
    },

    async ownerOf(instanceId, userId) {
      const existing = await read<{ org_id: string }>(
        db.selectFrom("users").select("org_id").where("instance_id", "=", instanceId).where("id", "=", userId).compile(),
      );
      if (existing[0]) return existing[0].org_id;
      // Removed users keep their events; the (latest) creation events name the owner.
      const created = await read<{ resource_owner: string }>(
        db
          .selectFrom("events")
          .select("resource_owner")
          .where("instance_id", "=", instanceId)
          .where("aggregate_id", "=", userId)
          .where("aggregate_type", "=", "user")
          .where("resource_owner", "<>", "")
          .orderBy("sequence", "desc")
          .limit(1)
          .compile(),
      );
      return created[0]?.resource_owner;
    },

    async userEvents(instanceId, userId, { after, limit, asc }) {
      const rows = await read<{ sequence: number; type: string; creator: string; created_at: number }>(
        db
          .selectFrom("events")
          .select(["sequence", "type", "creator", "created_at"])
          .where("instance_id", "=", instanceId)
          .where("aggregate_id", "=", userId)
          .where("aggregate_type", "=", "user")
          .where("sequence", ">", after)
          .orderBy("sequence", asc ? "asc" : "desc")
          .limit(limit)
          .compile(),
      );
      return rows.map(
        (row): UserEvent => ({
          sequence: Number(row.sequence),
          type: row.type,
          creator: row.creator,
          createdAt: Number(row.created_at),
        }),
      );
    },

    async editors(instanceId, userIds) {
      const editors = new Map<string, Editor>();
      if (userIds.length === 0) return editors;
      const rows = await read<{ id: string; type: string; username: string; display_name: string; machine_name: string }>(
        db
          .selectFrom("users")
          .select(["id", "type", "username", "display_name", "machine_name"])
          .where("instance_id", "=", instanceId)
          .where("id", "in", [...userIds])
          .compile(),
      );
      for (const row of rows) {
        editors.set(row.id, {
          displayName: row.type === "machine" ? row.machine_name : row.display_name,
          preferredLoginName: row.username,
        });
      }
      return editors;
    },
  };
}
