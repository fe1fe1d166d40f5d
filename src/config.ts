import { parseArgs } from "node:util";
import { type HashFamilyName, parseHashFamilyList } from "./domain/hashes/index.js";

/** Everything userport can be configured with; see the README's configuration table. */
export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** `postgres://…` switches the store from the embedded SQLite file to PostgreSQL. */
  databaseUrl: string | undefined;
  /** Connections each replica keeps to PostgreSQL at most. */
  databasePoolSize: number;
  externalUrl: string;
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  /** Origins allowed to call from browsers; empty means no CORS, "*" means any. */
  corsOrigins: string[];
  bcryptCost: number;
  /**
   * The instance's lockout policy: password checks failing in a row before the user is locked;
   * 0 (ZITADEL's default) never locks. An organisation's own lockout policy takes precedence.
   */
  maxPasswordAttempts: number;
  /** The most an external-password check may wait on an LDAP gateway's directory (all its servers) before failing closed. */
  ldapTimeoutMs: number;
  /** Imported hash families accepted besides bcrypt (ZITADEL's `Verifiers`); empty by default. */
  passwordVerifiers: HashFamilyName[];
  /** 32-byte key (base64) that encrypts codes at rest; generated into the data dir if unset. */
  masterKey: string | undefined;
  logLevel: string;
  bodyLimitBytes: number;
  /** `smtp://user:pass@host:port` or `smtps://…`; unset keeps mails in the outbox. */
  smtpUrl: string | undefined;
  /** The sender of mails, e.g. `"Example" <noreply@example.com>`. */
  smtpFrom: string;
  /** Outbox dispatch: poll interval, first retry delay (doubling per failure) and its cap. */
  outboxPollMs: number;
  smtpRetryBaseMs: number;
  smtpRetryMaxMs: number;
  /**
   * Rate limits of credential and code checks (src/edge/rate-limits.ts): attempts per client
   * address and per user within each window of `rateLimitWindowSeconds`; 0 turns a limit off.
   */
  rateLimitPerSource: number;
  rateLimitPerUser: number;
  /** How long a caller behind a personal access token is remembered (src/domain/authentication.ts); 0: read on every request. */
  callerCacheMs: number;
  rateLimitWindowSeconds: number;
  /** How long a shutdown may take before the process ends anyway. */
  shutdownGraceMs: number;
  /**
   * The name an operator set each setting by (`--port` or `USERPORT_PORT`), for error messages
   * raised after loading (a port in use, a database that does not answer).
   */
  settingNames: SettingNames;
  /** The clock of the domain and the dispatcher; tests move it forward. Date.now when unset. */
  now?: () => number;
}

export type SettingNames = Partial<Record<keyof Config, string>>;

/**
 * A setting the operator must change: its message is one line that names the setting, says what
 * is wrong with the value and what to do. The CLI prints it and exits with status 2.
 */
export class SettingError extends Error {
  override name = "SettingError";
}

/** One configurable setting: every flag and variable the CLI and the README list. */
interface Setting {
  key: keyof Config;
  env: string;
  flag?: string;
  value: string;
  default: string;
  help: string;
}

/** Every setting of `userport serve`, in the order `--help` and the README list them. */
export const SETTINGS: readonly Setting[] = [
  { key: "port", env: "USERPORT_PORT", flag: "port", value: "<n>", default: "8080", help: "the one port for gRPC, gRPC-Web, Connect and REST" },
  { key: "host", env: "USERPORT_HOST", flag: "host", value: "<addr>", default: "0.0.0.0", help: "address to bind (0.0.0.0: every interface)" },
  { key: "dataDir", env: "USERPORT_DATA_DIR", flag: "data-dir", value: "<dir>", default: "./.data", help: "SQLite store, admin.pat, master.key" },
  {
    key: "databaseUrl",
    env: "USERPORT_DATABASE_URL",
    flag: "database-url",
    value: "<url>",
    default: "unset (SQLite)",
    help: "postgres://user:pass@host:5432/db to use PostgreSQL",
  },
  { key: "databasePoolSize", env: "USERPORT_DATABASE_POOL_SIZE", value: "<n>", default: "10", help: "PostgreSQL connections per replica (at least 2)" },
  { key: "externalUrl", env: "USERPORT_EXTERNAL_URL", value: "<url>", default: "http://localhost:<port>", help: "base of the links userport hands out" },
  { key: "tlsCertFile", env: "USERPORT_TLS_CERT", value: "<file>", default: "unset", help: "PEM certificate; with USERPORT_TLS_KEY the port speaks TLS" },
  { key: "tlsKeyFile", env: "USERPORT_TLS_KEY", value: "<file>", default: "unset", help: "PEM private key of USERPORT_TLS_CERT" },
  { key: "corsOrigins", env: "USERPORT_CORS_ORIGINS", value: "<origins>", default: "unset (no CORS)", help: "comma-separated browser origins, * for any" },
  { key: "bcryptCost", env: "USERPORT_BCRYPT_COST", value: "<4-31>", default: "12", help: "bcrypt cost for plaintext passwords" },
  { key: "maxPasswordAttempts", env: "USERPORT_MAX_PASSWORD_ATTEMPTS", value: "<n>", default: "0 (no lockout)", help: "the instance's default lockout policy" },
  {
    key: "passwordVerifiers",
    env: "USERPORT_PASSWORD_VERIFIERS",
    value: "<families>",
    default: "unset (bcrypt only)",
    help: "imported hash families accepted besides bcrypt",
  },
  { key: "masterKey", env: "USERPORT_MASTER_KEY", value: "<base64>", default: "<data-dir>/master.key", help: "32 bytes, base64: encrypts codes at rest" },
  { key: "bodyLimitBytes", env: "USERPORT_BODY_LIMIT", value: "<bytes>", default: "4194304", help: "largest request body" },
  { key: "smtpUrl", env: "USERPORT_SMTP_URL", value: "<url>", default: "unset (mail stays in the outbox)", help: "smtp://user:pass@host:587 or smtps://…:465" },
  { key: "smtpFrom", env: "USERPORT_SMTP_FROM", value: "<address>", default: "noreply@<external host>", help: "sender of the mails" },
  { key: "outboxPollMs", env: "USERPORT_OUTBOX_POLL_MS", value: "<ms>", default: "1000", help: "how often the outbox is looked at" },
  { key: "smtpRetryBaseMs", env: "USERPORT_SMTP_RETRY_BASE_MS", value: "<ms>", default: "5000", help: "first retry delay of a failed delivery" },
  { key: "smtpRetryMaxMs", env: "USERPORT_SMTP_RETRY_MAX_MS", value: "<ms>", default: "3600000", help: "longest retry delay" },
  { key: "ldapTimeoutMs", env: "USERPORT_LDAP_TIMEOUT_MS", value: "<ms>", default: "5000", help: "longest wait on an LDAP gateway's directory" },
  {
    key: "rateLimitPerSource",
    env: "USERPORT_RATE_LIMIT_PER_SOURCE",
    value: "<n>",
    default: "50",
    help: "credential and code checks per client address per window (0: off)",
  },
  { key: "rateLimitPerUser", env: "USERPORT_RATE_LIMIT_PER_USER", value: "<n>", default: "10", help: "password and code checks per user per window (0: off)" },
  { key: "rateLimitWindowSeconds", env: "USERPORT_RATE_LIMIT_WINDOW_SECONDS", value: "<s>", default: "1", help: "the window the rate limits count in" },
  {
    key: "callerCacheMs",
    env: "USERPORT_CALLER_CACHE_MS",
    value: "<ms>",
    default: "1000",
    help: "how long a token's caller is remembered (0: read it on every request)",
  },
  { key: "logLevel", env: "USERPORT_LOG_LEVEL", value: "<level>", default: "info", help: "fatal, error, warn, info, debug, trace or silent" },
  {
    key: "shutdownGraceMs",
    env: "USERPORT_SHUTDOWN_GRACE_MS",
    value: "<ms>",
    default: "30000",
    help: "on SIGTERM/SIGINT, how long to finish before exiting anyway",
  },
];

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** The options of `userport serve --help`: every setting, with its flag and variable. */
export function settingsHelp(): string {
  const rows = SETTINGS.map((s) => [s.flag ? `--${s.flag} ${s.value}` : "", s.env, s.default, s.help]);
  const width = (i: number) => Math.max(...rows.map((row) => row[i]!.length));
  const [w0, w1, w2] = [width(0), width(1), width(2)];
  return rows.map(([flag, env, def, help]) => `  ${flag!.padEnd(w0)}  ${env!.padEnd(w1)}  ${def!.padEnd(w2)}  ${help}`).join("\n");
}

/** `postgres://user:secret@host/db` without the password, for messages. */
export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = "***";
    return url.toString();
  } catch {
    return value.replace(/\/\/([^:/@]*):[^@/]*@/, "//$1:***@");
  }
}

/** Reads the configuration from command-line flags, then USERPORT_* variables, then defaults. */
export function loadConfig(args: string[], env: NodeJS.ProcessEnv = process.env): Config {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      options: Object.fromEntries(SETTINGS.filter((s) => s.flag).map((s) => [s.flag!, { type: "string" as const }])),
      strict: true,
    }) as { values: Record<string, string | undefined> });
  } catch (err) {
    const option = /'(-[^']*)'/.exec((err as Error).message)?.[1];
    if ((err as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new SettingError(`unknown option ${option ?? ""}: \`userport serve --help\` lists the options and variables`);
    }
    throw new SettingError(`${(err as Error).message.split("\n")[0]}: \`userport serve --help\` lists the options and variables`);
  }
  const names: SettingNames = {};
  /** The raw value and the name it was given by: the flag wins over the variable. */
  const raw = (key: keyof Config): string | undefined => {
    const setting = SETTINGS.find((s) => s.key === key)!;
    const fromFlag = setting.flag ? values[setting.flag] : undefined;
    names[key] = fromFlag !== undefined ? `--${setting.flag}` : setting.env;
    const value = fromFlag ?? env[setting.env];
    return value === "" ? undefined : value;
  };
  const fail = (key: keyof Config, problem: string): never => {
    throw new SettingError(`${names[key]} ${problem}`);
  };
  const int = (key: keyof Config, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number => {
    const value = raw(key);
    if (value === undefined) return fallback;
    const parsed = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed)) fail(key, `must be a whole number, got "${value}"`);
    if (parsed < min || parsed > max) fail(key, `must be between ${min} and ${max}, got ${parsed}`);
    return parsed;
  };

  const port = int("port", 8080, 0, 65535);
  const host = raw("host") ?? "0.0.0.0";
  const dataDir = raw("dataDir") ?? "./.data";

  const databaseUrl = raw("databaseUrl");
  if (databaseUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(databaseUrl);
    } catch {
      // reported below
    }
    if (!url || !/^postgres(ql)?:$/.test(url.protocol) || url.hostname === "") {
      fail(
        "databaseUrl",
        `"${redactUrl(databaseUrl)}" is not a PostgreSQL URL: give postgres://user:password@host:5432/database, or leave it unset for SQLite`,
      );
    }
  }
  const databasePoolSize = int("databasePoolSize", 10, 2);

  const externalUrl = (raw("externalUrl") ?? `http://localhost:${port}`).replace(/\/+$/, "");
  const external = parseHttpUrl(externalUrl);
  if (!external)
    fail("externalUrl", `"${externalUrl}" is not an http:// or https:// URL: give the base URL clients reach userport at, e.g. https://id.example.com`);

  const tlsCertFile = raw("tlsCertFile");
  const tlsKeyFile = raw("tlsKeyFile");
  if (tlsCertFile && !tlsKeyFile) fail("tlsCertFile", "is set but USERPORT_TLS_KEY is not: set both (PEM files) to serve TLS, or neither for plaintext");
  if (tlsKeyFile && !tlsCertFile) fail("tlsKeyFile", "is set but USERPORT_TLS_CERT is not: set both (PEM files) to serve TLS, or neither for plaintext");

  const bcryptCost = int("bcryptCost", 12, 4, 31);

  let passwordVerifiers: HashFamilyName[] = [];
  try {
    passwordVerifiers = parseHashFamilyList(raw("passwordVerifiers") ?? "");
  } catch (err) {
    fail("passwordVerifiers", `names ${(err as Error).message}`);
  }

  const masterKey = raw("masterKey");
  if (masterKey !== undefined && !isBase64Key(masterKey)) {
    fail("masterKey", "must be 32 bytes, base64-encoded (the value is not shown): make one with `openssl rand -base64 32`");
  }

  const logLevel = raw("logLevel") ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) fail("logLevel", `"${logLevel}" is not a log level: use one of ${LOG_LEVELS.join(", ")}`);

  const smtpUrl = raw("smtpUrl");
  if (smtpUrl !== undefined) {
    const url = parseUrl(smtpUrl);
    if (!url || !/^smtps?:$/.test(url.protocol) || url.hostname === "") {
      fail(
        "smtpUrl",
        `"${redactUrl(smtpUrl)}" is not an SMTP URL: give smtp://user:password@host:587 or smtps://user:password@host:465, or leave it unset to keep mails in the outbox`,
      );
    }
  }
  const smtpFrom = raw("smtpFrom") ?? `noreply@${external!.hostname}`;
  if (!smtpFrom.includes("@")) fail("smtpFrom", `"${smtpFrom}" is not a mail address: give e.g. noreply@example.com or "Example" <noreply@example.com>`);

  const config: Config = {
    port,
    host,
    dataDir,
    databaseUrl,
    databasePoolSize,
    externalUrl,
    tlsCertFile,
    tlsKeyFile,
    corsOrigins: (raw("corsOrigins") ?? "")
      .split(",")
      .map((origin) => origin.trim())
      .filter(Boolean),
    bcryptCost,
    maxPasswordAttempts: int("maxPasswordAttempts", 0),
    ldapTimeoutMs: int("ldapTimeoutMs", 5000, 1),
    passwordVerifiers,
    masterKey,
    logLevel,
    bodyLimitBytes: int("bodyLimitBytes", 4 * 1024 * 1024, 1),
    smtpUrl,
    smtpFrom,
    outboxPollMs: int("outboxPollMs", 1000, 1),
    smtpRetryBaseMs: int("smtpRetryBaseMs", 5000, 1),
    smtpRetryMaxMs: int("smtpRetryMaxMs", 3_600_000, 1),
    shutdownGraceMs: int("shutdownGraceMs", 30_000, 1),
    rateLimitPerSource: int("rateLimitPerSource", 50),
    rateLimitPerUser: int("rateLimitPerUser", 10),
    callerCacheMs: int("callerCacheMs", 1000),
    rateLimitWindowSeconds: int("rateLimitWindowSeconds", 1, 1),
    settingNames: names,
  };
  return config;
}

/** The name a setting was given by, for messages: `--port` or `USERPORT_PORT`. */
export function settingName(config: Pick<Config, "settingNames">, key: keyof Config): string {
  return config.settingNames[key] ?? SETTINGS.find((s) => s.key === key)?.env ?? key;
}

function parseUrl(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

function parseHttpUrl(value: string): URL | undefined {
  const url = parseUrl(value);
  return url && (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "" ? url : undefined;
}

function isBase64Key(value: string): boolean {
  return /^[A-Za-z0-9+/]+={0,2}$/.test(value.trim()) && Buffer.from(value, "base64").length === 32;
}
