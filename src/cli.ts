#!/usr/bin/env node
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { ADMIN_USERNAME } from "./admin-token.js";
import { type Config, loadConfig, SettingError, settingsHelp } from "./config.js";
import { describeStoreError } from "./edge/preflight.js";
import { adminTokenPath, loadMasterKey, masterKeyDigest } from "./setup.js";
import { backupSqlite, inspectBackup, restoreSqlite, sqliteFile } from "./store/backup.js";
import type { Db } from "./store/db.js";

const HELP = `Usage: userport <command> [options]

Commands:
  serve    Start the server: gRPC, gRPC-Web, Connect and REST on one port
  token    Issue a new IAM_OWNER token into a file (when admin.pat is lost)
  backup   Copy the SQLite store into a file while the server runs
  restore  Put a backup in place as the store of a new data directory
  import   Import users from an export file into a running userport

\`userport <command> --help\` tells more about each.
`;

const SERVE_HELP = `Usage: userport serve [options]

Starts the server. Every setting is an environment variable; some are also flags (a flag wins).
SIGTERM or SIGINT stops it gracefully (USERPORT_SHUTDOWN_GRACE_MS bounds how long that takes).

  flag                 variable                        default                          meaning
${settingsHelp()}
  --help               show this help
`;

const TOKEN_HELP = `Usage: userport token [options]

Issues a new personal access token to the instance's administrator (${ADMIN_USERNAME}, IAM_OWNER)
and writes it to a file with mode 0600; the token is never printed. Works while the server runs.

  --out <file>          where to write it (default <data-dir>/admin.pat)
  --force               replace the file if it exists
  --revoke-others       remove every other token of the administrator (a lost or leaked one)
  --data-dir <dir>      as for serve (USERPORT_DATA_DIR, default ./.data)
  --database-url <url>  as for serve (USERPORT_DATABASE_URL)
  --help                show this help
`;

const BACKUP_HELP = `Usage: userport backup --out <file> [--data-dir <dir>]

Copies the SQLite store of the data directory into <file> (which must not exist), mode 0600,
while the server keeps serving: one consistent snapshot holding every commit made before it
started. The master key is not in it: keep <data-dir>/master.key (or USERPORT_MASTER_KEY) too,
apart from the backup. On PostgreSQL, back up with pg_dump instead.
`;

const RESTORE_HELP = `Usage: userport restore --from <file> --data-dir <dir>

Makes a backup the store of <dir>, a data directory without a store. The master key the backup
was made under must be there first, as <dir>/master.key or USERPORT_MASTER_KEY: it is checked
against the backup, since without it the sealed codes and secrets cannot be opened and the
server refuses to start. Then start the server with --data-dir <dir>.
`;

/** How soon after a first stop signal another one counts as the same signal, forwarded. */
const DUPLICATE_SIGNAL_MS = 1000;

/** Process exit statuses: 2 for a setting or usage the operator must change. */
const EXIT_SETTING = 2;

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (command === "import") {
    boundHeapGrowth();
    const { importCommand } = await import("./cli/import/command.js");
    // Exit now: an HTTP/2 session to the server may still be open (stdout and stderr are synchronous on pipes, files and terminals).
    process.exit(await importCommand(args));
  }
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(HELP);
    return;
  }
  if (command === "serve") {
    if (args.includes("--help") || args.includes("-h")) return void process.stdout.write(SERVE_HELP);
    return serve(loadConfig(args));
  }
  if (command === "token") {
    if (args.includes("--help") || args.includes("-h")) return void process.stdout.write(TOKEN_HELP);
    return token(args);
  }
  if (command === "backup") {
    if (args.includes("--help") || args.includes("-h")) return void process.stdout.write(BACKUP_HELP);
    return backup(args);
  }
  if (command === "restore") {
    if (args.includes("--help") || args.includes("-h")) return void process.stdout.write(RESTORE_HELP);
    return restore(args);
  }
  throw new SettingError(`unknown command "${command}": \`userport --help\` lists the commands`);
}

/**
 * V8 lets the old generation grow to up to four times the live heap between major collections.
 * A bulk import promotes each batch's working set (a thousand records decoded, validated and
 * built while the batch before commits; on the client's side, read, parsed and encoded), so with
 * a live heap near 40 MB the server's resident set climbed by some 150 MB of garbage; growing by
 * at most twice the live heap keeps it bounded for the price of more (short: the live heap is
 * small) major collections. An operator's own `--heap-growing-percent` (NODE_OPTIONS) wins. See
 * BENCHMARKS.md, "Bulk import" and "`userport import`".
 */
function boundHeapGrowth(): void {
  defaultV8Flag("--heap-growing-percent=100", /heap[-_]growing[-_]percent/);
}

/**
 * V8 allocates objects straight into the old generation at the allocation sites whose objects
 * mostly survived young-generation collections (allocation-site pretenuring). A bulk import's
 * batches outlive several such collections while they wait and commit, and then die; garbage in
 * the old generation still counts as a root of every young-generation collection until the next
 * major one, and keeps the young objects it points to alive, so they are copied and promoted in
 * turn. Without pretenuring, streaming 300,000 users into the server (`--trace-gc-nvp`, two
 * alternating pairs): promoted 656-659 -> 514-525 MB, major collections 23-24 -> 16-17; in seven
 * pairs the main thread spent 1.0-4.2 µs and V8's helper threads 1.4-2.2 µs less CPU a user. An
 * operator's own `--[no-]allocation-site-pretenuring` (node's flags) wins. See BENCHMARKS.md,
 * "Bulk import".
 */
function noPretenuring(): void {
  defaultV8Flag("--no-allocation-site-pretenuring", /allocation[-_]site[-_]pretenuring/);
}

/** Sets a V8 flag unless the operator gave it, in node's flags or NODE_OPTIONS: theirs wins. */
function defaultV8Flag(flag: string, name: RegExp): void {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ""].some((arg) => name.test(arg));
  if (!given) setFlagsFromString(flag);
}

async function serve(config: Config): Promise<void> {
  boundHeapGrowth();
  noPretenuring();
  // The server's modules load only for the commands that need them: \`userport import\`, a client,
  // starts in half the time and memory without them.
  const { startServer } = await import("./server.js");
  const server = await startServer(config);
  const bind = config.host === "0.0.0.0" || config.host === "::" ? "every interface" : "this address only";
  const reach = config.host === "0.0.0.0" || config.host === "::" ? server.url.replace(/\/\/[^:/]+|\/\/\[[^\]]+\]/, "//localhost") : server.url;
  say(`serving on ${server.listenAddress} (${bind}; from this machine: ${reach})`);
  const tokenFile = resolve(server.adminTokenFile);
  if (server.instanceCreated) {
    say(`created the instance ${server.instanceId}; the token of its administrator ${ADMIN_USERNAME} (IAM_OWNER) is in ${tokenFile}`);
  } else if (existsSync(tokenFile)) {
    say(`reusing the instance ${server.instanceId}; an administrator token is in ${tokenFile}`);
  } else {
    say(`reusing the instance ${server.instanceId}; no administrator token at ${tokenFile}: issue one with \`userport token --data-dir ${config.dataDir}\``);
  }

  let stoppingSince: number | undefined;
  const stop = (signal: string) => {
    if (stoppingSince !== undefined) {
      // A signal to the whole process group reaches the server twice: directly, and forwarded by
      // npm a moment later. Only a signal sent on purpose after that ends the shutdown early.
      if (Date.now() - stoppingSince < DUPLICATE_SIGNAL_MS) return;
      say(`${signal} again: exiting without finishing the shutdown`);
      process.exit(1);
    }
    stoppingSince = Date.now();
    say(`${signal}: shutting down (finishing requests in flight, committing pending writes; at most ${config.shutdownGraceMs} ms)`);
    const deadline = setTimeout(() => {
      say(`shutdown did not finish within ${config.shutdownGraceMs} ms (USERPORT_SHUTDOWN_GRACE_MS): exiting`);
      process.exit(1);
    }, config.shutdownGraceMs);
    server.close().then(
      () => {
        clearTimeout(deadline);
        say("stopped");
        process.exit(0);
      },
      (err: unknown) => {
        server.app.log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

async function token(args: string[]): Promise<void> {
  const own = { out: { type: "string" }, force: { type: "boolean" }, "revoke-others": { type: "boolean" } } as const;
  const shared = { "data-dir": { type: "string" }, "database-url": { type: "string" } } as const;
  let values: { out?: string; force?: boolean; "revoke-others"?: boolean; "data-dir"?: string; "database-url"?: string };
  try {
    ({ values } = parseArgs({ args, options: { ...own, ...shared }, strict: true }));
  } catch (err) {
    throw new SettingError(`${(err as Error).message.split("\n")[0]}: \`userport token --help\` lists the options`);
  }
  const passOn = [
    ...(values["data-dir"] !== undefined ? ["--data-dir", values["data-dir"]] : []),
    ...(values["database-url"] !== undefined ? ["--database-url", values["database-url"]] : []),
  ];
  const config = loadConfig(passOn);
  const file = resolve(values.out ?? adminTokenPath(config.dataDir));
  if (existsSync(file) && !values.force) {
    throw new SettingError(`--out ${file} exists: pass --force to replace it, or --out another file`);
  }
  const sqliteFile = resolve(config.dataDir, "userport.sqlite");
  if (!config.databaseUrl && !existsSync(sqliteFile)) {
    throw new SettingError(
      `${config.settingNames.dataDir} "${resolve(config.dataDir)}" holds no userport store: give the data directory the server uses (or --database-url), or run \`userport serve\` once`,
    );
  }
  let store: Db;
  try {
    store = config.databaseUrl
      ? await (await import("./store/postgres.js")).openPostgres(config.databaseUrl, 2)
      : await (await import("./store/db.js")).openSqlite(config.dataDir);
  } catch (err) {
    throw describeStoreError(config, err) ?? err;
  }
  try {
    const { issueAdminToken } = await import("./admin-token.js");
    const { createAdministratorStore } = await import("./store/access-store.js");
    const { createOrgStore } = await import("./store/org-store.js");
    const issued = await issueAdminToken({ administrators: createAdministratorStore(store), tokens: createOrgStore(store) }, file, {
      revokeOthers: values["revoke-others"] ?? false,
    });
    say(`issued a new token of ${issued.userName} (${issued.userId}, IAM_OWNER) into ${issued.file} (mode 0600)`);
    if (values["revoke-others"]) say(`revoked ${issued.revoked} other token(s) of ${issued.userName}`);
    // Serving replicas on PostgreSQL forget the revoked tokens' caller at once.
    if (issued.revoked > 0) await store.notices?.send({ forget: "callers" });
  } finally {
    await store.close();
  }
}

/** The options of a maintenance command: its own, plus --data-dir and --database-url as for serve. */
function commandOptions<T extends Record<string, { type: "string" | "boolean" }>>(command: string, args: string[], own: T) {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args, options: { ...own, "data-dir": { type: "string" }, "database-url": { type: "string" } }, strict: true }));
  } catch (err) {
    throw new SettingError(`${(err as Error).message.split("\n")[0]}: \`userport ${command} --help\` lists the options`);
  }
  const passOn = [
    ...(typeof values["data-dir"] === "string" ? ["--data-dir", values["data-dir"]] : []),
    ...(typeof values["database-url"] === "string" ? ["--database-url", values["database-url"]] : []),
  ];
  return { values, config: loadConfig(passOn) };
}

async function backup(args: string[]): Promise<void> {
  const { values, config } = commandOptions("backup", args, { out: { type: "string" } });
  if (config.databaseUrl) {
    throw new SettingError(`${config.settingNames.databaseUrl} is set: userport backs up its SQLite store only; back up PostgreSQL with pg_dump`);
  }
  if (typeof values.out !== "string") throw new SettingError("--out <file> is missing: `userport backup --help` tells more");
  const out = resolve(values.out);
  if (existsSync(out)) throw new SettingError(`--out ${out} exists: give a new file`);
  const dataDir = resolve(config.dataDir);
  if (!existsSync(sqliteFile(dataDir))) {
    throw new SettingError(`${config.settingNames.dataDir} "${dataDir}" holds no userport store: give the data directory the server uses`);
  }
  const { bytes, users } = backupSqlite(dataDir, out);
  say(`backed up ${sqliteFile(dataDir)} into ${out} (${bytes} bytes, ${users} users, mode 0600)`);
  say(`the master key is not in the backup: keep ${join(dataDir, "master.key")} (or USERPORT_MASTER_KEY) with it, stored apart`);
}

async function restore(args: string[]): Promise<void> {
  const { values, config } = commandOptions("restore", args, { from: { type: "string" } });
  if (config.databaseUrl) {
    throw new SettingError(`${config.settingNames.databaseUrl} is set: userport restores its SQLite store only; restore PostgreSQL with pg_restore`);
  }
  if (typeof values.from !== "string") throw new SettingError("--from <file> is missing: `userport restore --help` tells more");
  const from = resolve(values.from);
  if (!existsSync(from)) throw new SettingError(`--from ${from} does not exist`);
  const dataDir = resolve(config.dataDir);
  if (existsSync(sqliteFile(dataDir))) {
    throw new SettingError(`${config.settingNames.dataDir} "${dataDir}" already holds a store: restore into a new data directory`);
  }
  let backupInfo: ReturnType<typeof inspectBackup>;
  try {
    backupInfo = inspectBackup(from);
  } catch (err) {
    throw new SettingError(`--from ${(err as Error).message}`);
  }
  const keyFile = join(dataDir, "master.key");
  if (!config.masterKey && !existsSync(keyFile)) {
    throw new SettingError(
      `no master key for the restored store: copy the master.key of the backed-up data directory to ${keyFile} (or set USERPORT_MASTER_KEY), then restore again`,
    );
  }
  const key = loadMasterKey(config.masterKey, dataDir);
  if (backupInfo.masterKeyDigest !== undefined && backupInfo.masterKeyDigest !== masterKeyDigest(key)) {
    throw new SettingError(
      `the master key (${config.masterKey ? "USERPORT_MASTER_KEY" : keyFile}) is not the one the backup's secrets are sealed with: use the key of the backed-up data directory`,
    );
  }
  restoreSqlite(from, dataDir);
  say(`restored ${from} into ${sqliteFile(dataDir)} (${backupInfo.users} users); start it with \`userport serve --data-dir ${dataDir}\``);
}

function say(line: string): void {
  process.stdout.write(`userport: ${line}\n`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof SettingError) {
    process.stderr.write(`userport: ${err.message}\n`);
    process.exit(EXIT_SETTING);
  }
  process.stderr.write(`userport: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
