import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createIdGenerator } from "./domain/ids.js";
import { createPersonalAccessTokenCommands } from "./domain/personal-access-tokens.js";
import { generateToken, tokenDigest } from "./domain/secrets.js";
import type { AdministratorStore, PersonalAccessTokenStore } from "./domain/ports.js";

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
export async function issueAdminToken(
  stores: { administrators: AdministratorStore; tokens: PersonalAccessTokenStore },
  file: string,
  options: { revokeOthers: boolean },
): Promise<IssuedToken> {
  const instanceId = await stores.administrators.instanceId();
  if (instanceId === undefined) throw new Error("the store holds no instance yet: run `userport serve` once, it creates the instance and its token");
  // The first start's administrator; failing that, any active machine user holding IAM_OWNER.
  const owners = await stores.administrators.activeInstanceOwners(instanceId);
  const admin = owners.find((row) => row.username === ADMIN_USERNAME) ?? owners[0];
  if (!admin) throw new Error("the instance has no active service user holding IAM_OWNER to issue a token to");

  const tokens = createPersonalAccessTokenCommands({ store: stores.tokens, newId: createIdGenerator(), onCallerChanged: () => undefined });
  const target = { instanceId, orgId: admin.orgId, creator: "userport token" };
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
    for (const token of await tokens.list(instanceId, admin.id)) {
      if (token.id === issued.tokenId) continue;
      await tokens.remove(target, admin.id, token.id);
      revoked++;
    }
  }
  return { userId: admin.id, userName: admin.username, tokenId: issued.tokenId, file, revoked };
}

/** Whether a token file is where the start log and the README say it is. */
export const tokenFileExists = (file: string) => existsSync(file);
