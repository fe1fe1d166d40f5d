import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import SQLite from "better-sqlite3";

/** The store file in a data directory. */
export const sqliteFile = (dataDir: string) => join(dataDir, "userport.sqlite");

/**
 * Copies the SQLite store of `dataDir` into `out` while the server keeps serving: `VACUUM INTO`
 * reads one consistent snapshot in one read transaction (WAL lets the writer go on meanwhile),
 * so the copy holds exactly the commits made before it started, every one of them whole. The
 * copy is checked (`PRAGMA integrity_check`) and made the owner's only (0600).
 */
export function backupSqlite(dataDir: string, out: string): { bytes: number; users: number } {
  if (existsSync(out)) throw new Error(`${out} exists: give a new file`);
  const source = new SQLite(sqliteFile(dataDir), { readonly: true, fileMustExist: true });
  try {
    source.pragma("busy_timeout = 5000");
    source.prepare("VACUUM INTO ?").run(out);
  } finally {
    source.close();
  }
  chmodSync(out, 0o600);
  const copy = new SQLite(out, { readonly: true });
  try {
    const check = copy.pragma("integrity_check", { simple: true });
    if (check !== "ok") throw new Error(`the backup ${out} fails its integrity check: ${String(check)}`);
    const { users } = copy.prepare("SELECT count(*) AS users FROM users").get() as { users: number };
    return { bytes: statSync(out).size, users };
  } finally {
    copy.close();
  }
}

/** What a backup file holds, as far as a restore needs to know before copying it. */
export function inspectBackup(file: string): { masterKeyDigest: string | undefined; users: number } {
  const backup = new SQLite(file, { readonly: true, fileMustExist: true });
  try {
    const check = backup.pragma("integrity_check", { simple: true });
    if (check !== "ok") throw new Error(`fails its integrity check: ${String(check)}`);
    const tables = backup.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('users', 'unique_constraints')").all();
    if (tables.length !== 2) throw new Error("is not a userport store");
    const row = backup.prepare("SELECT owner_id FROM unique_constraints WHERE instance_id = '' AND kind = 'master_key'").get() as
      | { owner_id: string }
      | undefined;
    const { users } = backup.prepare("SELECT count(*) AS users FROM users").get() as { users: number };
    return { masterKeyDigest: row?.owner_id, users };
  } catch (err) {
    throw new Error(`${file} ${(err as Error).message}`);
  } finally {
    backup.close();
  }
}

/** Puts a backup in place as the store of `dataDir` (which must hold none), 0600. */
export function restoreSqlite(file: string, dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const target = sqliteFile(dataDir);
  if (existsSync(target)) throw new Error(`${target} exists`);
  const pending = `${target}.restoring`;
  rmSync(pending, { force: true });
  copyFileSync(file, pending);
  chmodSync(pending, 0o600);
  // WAL as the server runs it; the file is complete before it gets the store's name.
  const db = new SQLite(pending);
  db.pragma("journal_mode = WAL");
  db.close();
  renameSync(pending, target);
}
