import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { IdGenerator } from "./domain/ids.js";
import { generateToken, tokenDigest } from "./domain/secrets.js";
import { createFirstInstance, findInstance, type Instance } from "./store/access-store.js";
import type { Db } from "./store/db.js";

/** ZITADEL's "never expires" for the first instance's token: 9999-01-01. */
const NEVER = Date.UTC(9999, 0, 1);

/**
 * Creates the instance on the first start: a default organisation and an IAM_OWNER service
 * user whose token is written to `<data-dir>/admin.pat` (mode 0600). Later starts reuse it.
 *
 * The token file is written before the commit: if the commit fails, the next start simply
 * writes a new one, while the other order could leave an instance nobody can call.
 */
export async function ensureFirstInstance(store: Db, dataDir: string, newId: IdGenerator): Promise<Instance> {
  const existing = await findInstance(store.db);
  if (existing) return existing;
  const token = generateToken();
  const instance = { id: newId(), defaultOrgId: newId() };
  writeFileSync(adminTokenPath(dataDir), `${token}\n`, { mode: 0o600 });
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
  return instance;
}

export const adminTokenPath = (dataDir: string) => join(dataDir, "admin.pat");

/** The key that encrypts codes at rest: configured, or generated once into the data dir. */
export function loadMasterKey(configured: string | undefined, dataDir: string): Buffer {
  if (configured) {
    const key = Buffer.from(configured, "base64");
    if (key.length !== 32) throw new Error("USERPORT_MASTER_KEY must be 32 bytes, base64-encoded");
    return key;
  }
  const path = join(dataDir, "master.key");
  if (!existsSync(path)) writeFileSync(path, randomBytes(32).toString("base64"), { mode: 0o600, flag: "wx" });
  return Buffer.from(readFileSync(path, "utf8").trim(), "base64");
}
