import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createIdGenerator } from "./domain/ids.js";
import { createPersonalAccessTokenCommands } from "./domain/personal-access-tokens.js";
import { generateToken, tokenDigest } from "./domain/secrets.js";
import { findInstance } from "./store/access-store.js";
import type { Db } from "./store/db.js";
import { createOrgStore } from "./store/org-store.js";

export interface IssuedToken {
  userId: string;
  userName: string;
  tokenId: string;
  file: string;
  /** How many of the user's other tokens were removed (with `revokeOthers`). */
  revoked: number;
}

/** The service user the first start created: the instance's IAM_OWNER, `userport-admin`. */
export const ADMIN_USERNAME = "userport-admin";

/**
 * Issues a new personal access token to the instance's administrator (the IAM_OWNER service user
 * of the first start) and writes it to `file` with mode 0600, never anywhere else. With
 * `revokeOthers`, every other token of that user is removed afterwards, so a lost or leaked
 * token stops working. The token is added and removed with ZITADEL's
 * `user.personal.access.token.added`/`removed` events, as AddPersonalAccessToken does.
 *
 * The token is written to a pending file first (so an unwritable destination fails before the
 * store is changed) and renamed into place after the commit.
 */
export async function issueAdminToken(store: Db, file: string, options: { revokeOthers: boolean }): Promise<IssuedToken> {
  const instance = await findInstance(store.db);
  if (!instance) throw new Error("the store holds no instance yet: run `userport serve` once, it creates the instance and its token");
  // The first start's administrator; failing that, any active machine user holding IAM_OWNER.
  const candidates = await store.db
    .selectFrom("members as m")
    .innerJoin("users as u", (join) => join.onRef("u.instance_id", "=", "m.instance_id").onRef("u.id", "=", "m.user_id"))
    .select(["u.id", "u.username", "u.org_id", "u.state", "m.roles"])
    .where("m.instance_id", "=", instance.id)
    .where("m.org_id", "=", "")
    .where("u.type", "=", "machine")
    .orderBy("u.created_at")
    .execute();
  const owners = candidates.filter((row) => row.roles.split(" ").includes("IAM_OWNER") && row.state === "ACTIVE");
  const admin = owners.find((row) => row.username === ADMIN_USERNAME) ?? owners[0];
  if (!admin) throw new Error("the instance has no active service user holding IAM_OWNER to issue a token to");

  const tokens = createPersonalAccessTokenCommands({ store: createOrgStore(store), newId: createIdGenerator(), onCallerChanged: () => undefined });
  const target = { instanceId: instance.id, orgId: admin.org_id, creator: "userport token" };
  const pending = `${file}.pending`;
  writeFileSync(pending, "", { mode: 0o600 });
  let issued: { tokenId: string; token: string };
  try {
    issued = await tokens.add(target, admin.id, undefined, () => {
      const token = generateToken();
      return { token, digest: tokenDigest(token) };
    });
    writeFileSync(pending, `${issued.token}\n`, { mode: 0o600 });
  } catch (err) {
    rmSync(pending, { force: true });
    throw err;
  }
  renameSync(pending, file);

  let revoked = 0;
  if (options.revokeOthers) {
    for (const token of await tokens.list(instance.id, admin.id)) {
      if (token.id === issued.tokenId) continue;
      await tokens.remove(target, admin.id, token.id);
      revoked++;
    }
  }
  return { userId: admin.id, userName: admin.username, tokenId: issued.tokenId, file, revoked };
}

/** Whether a token file is where the start log and the README say it is. */
export const tokenFileExists = (file: string) => existsSync(file);
