import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import net from "node:net";
import { createSecureContext } from "node:tls";
import { dirname, join, resolve } from "node:path";
import { type Config, redactUrl, SettingError, settingName } from "../config.js";

/**
 * The checks of a start that need the machine (files, the port, the data directory), made before
 * the store is opened: a start that fails on its settings writes nothing. The store itself is
 * checked by opening it (`describeStoreError` says which setting to look at).
 */
export async function preflight(config: Config): Promise<{ tls: { cert: Buffer; key: Buffer } | undefined }> {
  const tls =
    config.tlsCertFile && config.tlsKeyFile ? { cert: readSettingFile(config, "tlsCertFile"), key: readSettingFile(config, "tlsKeyFile") } : undefined;
  if (tls) checkTlsPair(config, tls);
  checkDataDir(config);
  if (config.port !== 0) await probePort(config);
  return { tls };
}

function readSettingFile(config: Config, key: "tlsCertFile" | "tlsKeyFile"): Buffer {
  const path = config[key]!;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new SettingError(
      `${settingName(config, key)} "${path}" cannot be read (${(err as NodeJS.ErrnoException).code}): give the path of a PEM file userport can read`,
    );
  }
}

function checkTlsPair(config: Config, pair: { cert: Buffer; key: Buffer }): void {
  try {
    // Throws when either is not PEM, or the key does not belong to the certificate.
    createSecureContext(pair);
  } catch (err) {
    const reason = String((err as Error).message)
      .split("\n")[0]!
      .replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/i, "");
    throw new SettingError(
      `${settingName(config, "tlsCertFile")}/${settingName(config, "tlsKeyFile")} are not a usable PEM certificate and key (${reason}): give a certificate and its private key`,
    );
  }
}

/**
 * The data directory is one userport may write in: an existing writable directory, or one that
 * can be created (its nearest existing ancestor is a writable directory). It is created later,
 * once every setting has passed, by `createDataDir`.
 */
function checkDataDir(config: Config): void {
  const dir = resolve(config.dataDir);
  try {
    let existing = dir;
    while (!existsSync(existing)) existing = dirname(existing);
    if (!statSync(existing).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
    accessSync(existing, constants.W_OK | constants.X_OK);
    const file = join(dir, "userport.sqlite");
    if (!config.databaseUrl && existsSync(file)) accessSync(file, constants.W_OK | constants.R_OK);
  } catch (err) {
    throw dataDirError(config, err);
  }
}

/** Creates the data directory (0700) if it is missing; called once every setting has passed. */
export function createDataDir(config: Config): void {
  try {
    mkdirSync(resolve(config.dataDir), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw dataDirError(config, err);
  }
}

function dataDirError(config: Config, err: unknown): SettingError {
  const code = (err as NodeJS.ErrnoException).code ?? "error";
  return new SettingError(
    `${settingName(config, "dataDir")} "${resolve(config.dataDir)}" cannot be used (${code}): give a directory userport may create and write to`,
  );
}

/** Binds the port once and lets it go again, so a port in use fails the start before the store is touched. */
async function probePort(config: Config): Promise<void> {
  const probe = net.createServer();
  try {
    await new Promise<void>((resolvePromise, reject) => {
      probe.once("error", reject);
      probe.listen({ port: config.port, host: config.host, exclusive: true }, resolvePromise);
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${config.host}:${config.port}`;
    if (code === "EADDRINUSE") {
      throw new SettingError(`${settingName(config, "port")} ${config.port}: ${where} is already in use: stop what listens there or choose another port`);
    }
    if (code === "EACCES") {
      throw new SettingError(`${settingName(config, "port")} ${config.port}: binding ${where} needs privileges: choose a port above 1023`);
    }
    throw new SettingError(
      `${settingName(config, "host")} "${config.host}" cannot be bound (${code}): give an address of this machine, e.g. 0.0.0.0 or 127.0.0.1`,
    );
  } finally {
    await new Promise((done) => probe.close(done));
  }
}

const CONNECT_PROBLEMS: Record<string, string> = {
  ECONNREFUSED: "the connection was refused: is PostgreSQL running there and listening on that port?",
  ENOTFOUND: "the host name does not resolve: check the host in the URL",
  EAI_AGAIN: "the host name could not be resolved: check the host in the URL and DNS",
  ETIMEDOUT: "the connection timed out: check the host, the port and the firewall",
  EHOSTUNREACH: "the host cannot be reached: check the host in the URL",
  "28P01": "the password was refused: check the user and password in the URL",
  "28000": "the server refused the login: check the user in the URL and pg_hba.conf",
  "3D000": "the database does not exist: create it (createdb) or fix its name in the URL",
};

/**
 * A failure to open the store as one line that names the setting behind it, or undefined when
 * the failure is not about a setting (a bug, a broken store).
 */
export function describeStoreError(config: Config, err: unknown): SettingError | undefined {
  const code = errorCode(err);
  if (config.databaseUrl) {
    const problem = code && CONNECT_PROBLEMS[code];
    if (!problem) return undefined;
    return new SettingError(`${settingName(config, "databaseUrl")} (${redactUrl(config.databaseUrl)}): cannot use the database: ${problem}`);
  }
  if (code && /^SQLITE_(CANTOPEN|READONLY|NOTADB|CORRUPT|PERM)/.test(code)) {
    const file = resolve(config.dataDir, "userport.sqlite");
    return new SettingError(
      `${settingName(config, "dataDir")}: the SQLite store "${file}" cannot be opened (${code}): give a data directory userport may write to, holding a userport store or none`,
    );
  }
  return undefined;
}

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; errors?: unknown[] };
  if (typeof e?.code === "string") return e.code;
  const inner = e?.errors?.[0] as { code?: unknown } | undefined;
  return typeof inner?.code === "string" ? inner.code : undefined;
}
