import { type CompiledQuery, type Kysely, sql } from "kysely";
import type { User } from "../domain/ports.js";
import { param, prepare } from "./prepared.js";
import type { Database } from "./schema.js";

interface DomainRow {
  org_id: string;
  domain: string;
  is_primary: number;
}

/**
 * Fills in users' login names as ZITADEL's login_names projection has them: the username, or,
 * in an organisation whose domain policy requires domain login names, `username@<domain>` for
 * each of its verified domains, the primary one preferred. An organisation without a verified
 * domain falls back to the bare username.
 */
export function createLoginNames(db: Kysely<Database>, read: <Row>(query: CompiledQuery) => Promise<Row[]>) {
  const domainsOf = () =>
    db
      .selectFrom("org_domains as d")
      .innerJoin("orgs as o", (join) => join.onRef("o.instance_id", "=", "d.instance_id").onRef("o.id", "=", "d.org_id"))
      .select(["d.org_id", "d.domain", "d.is_primary"])
      .where("o.user_login_must_be_domain", "=", sql.lit(1))
      .where("d.verified", "=", sql.lit(1))
      .orderBy("d.domain");
  // One organisation (a single user read) is the hot case: prepared once.
  const ofOneOrg = prepare<{ instance_id: string; org_id: string }>(
    domainsOf().where("d.instance_id", "=", param<string>("instance_id")).where("d.org_id", "=", param<string>("org_id")),
  );

  function apply(users: User[], rows: DomainRow[]): User[] {
    const byOrg = new Map<string, DomainRow[]>();
    for (const row of rows) byOrg.set(row.org_id, [...(byOrg.get(row.org_id) ?? []), row]);
    for (const user of users) {
      const domains = byOrg.get(user.orgId);
      if (!domains || domains.length === 0) {
        user.loginNames = [user.username];
        user.preferredLoginName = user.username;
        continue;
      }
      user.loginNames = domains.map((d) => `${user.username}@${d.domain}`);
      const primary = domains.find((d) => Number(d.is_primary) === 1) ?? domains[0]!;
      user.preferredLoginName = `${user.username}@${primary.domain}`;
    }
    return users;
  }

  return async function withLoginNames(instanceId: string, users: User[]): Promise<User[]> {
    if (users.length === 0) return users;
    const orgIds = [...new Set(users.map((user) => user.orgId))];
    const rows =
      orgIds.length === 1
        ? await read<DomainRow>(ofOneOrg.bind({ instance_id: instanceId, org_id: orgIds[0]! }))
        : await read<DomainRow>(domainsOf().where("d.instance_id", "=", instanceId).where("d.org_id", "in", orgIds).compile());
    return apply(users, rows);
  };
}
