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
   * Rate limits of credential and code checks (src/api/rate-limits.ts): attempts per client
   * address and per user within each window of `rateLimitWindowSeconds`; 0 turns a limit off.
   */
  rateLimitPerSource: number;
  rateLimitPerUser: number;
  rateLimitWindowSeconds: number;
  /** The clock of the domain and the dispatcher; tests move it forward. Date.now when unset. */
  now?: () => number;
}

function intFrom(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === "") return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new Error(`${name} must be a non-negative integer, got "${value}"`);
  return parsed;
}

function databaseUrl(value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (!/^postgres(ql)?:\/\//.test(value)) throw new Error("USERPORT_DATABASE_URL must be a postgres:// URL");
  return value;
}

function poolSize(value: string | undefined): number {
  const size = intFrom(value, 10, "USERPORT_DATABASE_POOL_SIZE");
  if (size < 2) throw new Error("USERPORT_DATABASE_POOL_SIZE must be at least 2: reads go on while a batch commits");
  return size;
}

function rateLimitWindow(value: string | undefined): number {
  const seconds = intFrom(value, 1, "USERPORT_RATE_LIMIT_WINDOW_SECONDS");
  if (seconds < 1) throw new Error("USERPORT_RATE_LIMIT_WINDOW_SECONDS must be at least 1");
  return seconds;
}

/** Reads the configuration from command-line flags, then USERPORT_* variables, then defaults. */
export function loadConfig(args: string[], env: NodeJS.ProcessEnv = process.env): Config {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "data-dir": { type: "string" },
      "database-url": { type: "string" },
    },
    strict: true,
  });
  const port = intFrom(values.port ?? env.USERPORT_PORT, 8080, "port");
  const bcryptCost = intFrom(env.USERPORT_BCRYPT_COST, 12, "USERPORT_BCRYPT_COST");
  if (bcryptCost < 4 || bcryptCost > 31) throw new Error("USERPORT_BCRYPT_COST must be between 4 and 31");
  const externalUrl = (env.USERPORT_EXTERNAL_URL ?? `http://localhost:${port}`).replace(/\/+$/, "");
  return {
    port,
    host: values.host ?? env.USERPORT_HOST ?? "0.0.0.0",
    dataDir: values["data-dir"] ?? env.USERPORT_DATA_DIR ?? "./.data",
    databaseUrl: databaseUrl(values["database-url"] ?? env.USERPORT_DATABASE_URL),
    databasePoolSize: poolSize(env.USERPORT_DATABASE_POOL_SIZE),
    externalUrl,
    tlsCertFile: env.USERPORT_TLS_CERT || undefined,
    tlsKeyFile: env.USERPORT_TLS_KEY || undefined,
    corsOrigins: (env.USERPORT_CORS_ORIGINS ?? "")
      .split(",")
      .map((origin) => origin.trim())
      .filter(Boolean),
    bcryptCost,
    maxPasswordAttempts: intFrom(env.USERPORT_MAX_PASSWORD_ATTEMPTS, 0, "USERPORT_MAX_PASSWORD_ATTEMPTS"),
    ldapTimeoutMs: intFrom(env.USERPORT_LDAP_TIMEOUT_MS, 5000, "USERPORT_LDAP_TIMEOUT_MS"),
    passwordVerifiers: parseHashFamilyList(env.USERPORT_PASSWORD_VERIFIERS ?? ""),
    masterKey: env.USERPORT_MASTER_KEY || undefined,
    logLevel: env.USERPORT_LOG_LEVEL ?? "info",
    bodyLimitBytes: intFrom(env.USERPORT_BODY_LIMIT, 4 * 1024 * 1024, "USERPORT_BODY_LIMIT"),
    smtpUrl: env.USERPORT_SMTP_URL || undefined,
    smtpFrom: env.USERPORT_SMTP_FROM || `noreply@${new URL(externalUrl).hostname}`,
    outboxPollMs: intFrom(env.USERPORT_OUTBOX_POLL_MS, 1000, "USERPORT_OUTBOX_POLL_MS"),
    smtpRetryBaseMs: intFrom(env.USERPORT_SMTP_RETRY_BASE_MS, 5000, "USERPORT_SMTP_RETRY_BASE_MS"),
    smtpRetryMaxMs: intFrom(env.USERPORT_SMTP_RETRY_MAX_MS, 3_600_000, "USERPORT_SMTP_RETRY_MAX_MS"),
    rateLimitPerSource: intFrom(env.USERPORT_RATE_LIMIT_PER_SOURCE, 50, "USERPORT_RATE_LIMIT_PER_SOURCE"),
    rateLimitPerUser: intFrom(env.USERPORT_RATE_LIMIT_PER_USER, 10, "USERPORT_RATE_LIMIT_PER_USER"),
    rateLimitWindowSeconds: rateLimitWindow(env.USERPORT_RATE_LIMIT_WINDOW_SECONDS),
  };
}
