import { createHmac, randomBytes } from "node:crypto";
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { IdGenerator } from "./domain/ids.js";
import { losesClaim, lostClaim } from "./domain/claims.js";
import { generateToken, tokenDigest } from "./domain/secrets.js";
import { createFirstInstance, findInstance, type Instance } from "./store/access-store.js";
import type { Db } from "./store/db.js";

/** ZITADEL's "never expires" for the first instance's token: 9999-01-01. */
const NEVER = Date.UTC(9999, 0, 1);

/**
 * Creates the instance on the first start: a default organisation and an IAM_OWNER service
 * user whose token is written to `<data-dir>/admin.pat` (mode 0600). Later starts reuse it.
 *
 * The token is written to a pending file before the commit and renamed after it: a replica that
 * loses the race for the first instance to another one leaves no token behind, and a start that
 * stopped between commit and rename finishes the rename on the next start, so the instance
 * always has a token someone holds.
 */
export async function ensureFirstInstance(store: Db, dataDir: string, newId: IdGenerator): Promise<Instance & { created: boolean }> {
  const tokenFile = adminTokenPath(dataDir);
  const pendingFile = `${tokenFile}.pending`;
  const existing = await findInstance(store.db);
  if (existing) {
    if (existsSync(pendingFile) && !existsSync(tokenFile)) renameSync(pendingFile, tokenFile);
    return { ...existing, created: false };
  }
  const token = generateToken();
  const instance = { id: newId(), defaultOrgId: newId() };
  writeFileSync(pendingFile, `${token}\n`, { mode: 0o600 });
  try {
    await createFirstInstance(store, {
      instanceId: instance.id,
      orgId: instance.defaultOrgId,
      orgName: "Default",
      adminUserId: newId(),
      adminUsername: "userport-admin",
      tokenId: newId(),
      tokenDigest: tokenDigest(token),
      tokenExpiresAt: NEVER,
      now: Date.now(),
    });
  } catch (err) {
    if (!losesClaim(err, "first_instance")) throw err;
    rmSync(pendingFile);
    return { ...(await findInstance(store.db))!, created: false };
  }
  renameSync(pendingFile, tokenFile);
  return { ...instance, created: true };
}

export const adminTokenPath = (dataDir: string) => join(dataDir, "admin.pat");

/**
 * The key that encrypts codes at rest: configured, or generated once into the data dir. A new
 * key is only held in memory until `persist` writes it (0600), so that a start failing on a later
 * check leaves no file behind; `persist` returns the key in force (another process's, if one
 * wrote the file first).
 */
export function prepareMasterKey(configured: string | undefined, dataDir: string): { key: Buffer; persist(): Buffer } {
  if (configured) {
    const key = Buffer.from(configured, "base64");
    if (key.length !== 32) throw new Error("USERPORT_MASTER_KEY must be 32 bytes, base64-encoded");
    return { key, persist: () => key };
  }
  const path = join(dataDir, "master.key");
  const read = () => Buffer.from(readFileSync(path, "utf8").trim(), "base64");
  if (existsSync(path)) {
    const key = read();
    return { key, persist: () => key };
  }
  const key = randomBytes(32);
  return {
    key,
    persist() {
      try {
        writeFileSync(path, key.toString("base64"), { mode: 0o600, flag: "wx" });
        return key;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        return read();
      }
    },
  };
}

/** The key that encrypts codes at rest, generated into the data dir (0600) on first use. */
export function loadMasterKey(configured: string | undefined, dataDir: string): Buffer {
  return prepareMasterKey(configured, dataDir).persist();
}

/** What the store keeps of the master key (in `unique_constraints`, kind `master_key`): an HMAC, not the key. */
export function masterKeyDigest(key: Buffer): string {
  return createHmac("sha256", key).update("userport master key check").digest("hex");
}

/**
 * Fails the start when `key` is not the key the store's secrets are sealed with. Replicas on one
 * PostgreSQL each have a data directory of their own: one that generated or was given another
 * key would fail on every code the others sealed. The store keeps a digest of the first key.
 */
export async function checkMasterKey({ db, writes }: Db, key: Buffer): Promise<void> {
  const digest = masterKeyDigest(key);
  const stored = () => db.selectFrom("unique_constraints").select("owner_id").where("instance_id", "=", "").where("kind", "=", "master_key").executeTakeFirst();
  let existing = await stored();
  if (!existing) {
    const claim = db.insertInto("unique_constraints").values({ instance_id: "", kind: "master_key", value: "", owner_id: digest }).compile();
    try {
      await writes.run([{ ...claim, uniqueKind: "master_key" }]);
      return;
    } catch (err) {
      if (lostClaim(err) === undefined) throw err;
      existing = await stored();
    }
  }
  if (existing?.owner_id !== digest) {
    throw new Error("the master key (USERPORT_MASTER_KEY or <data-dir>/master.key) is not the one this database's secrets are sealed with");
  }
}
