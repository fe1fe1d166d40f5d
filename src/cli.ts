#!/usr/bin/env node
import { loadConfig } from "./config.js";
import { startServer } from "./server.js";

const HELP = `Usage: userport <command> [options]

Commands:
  serve    Start the server: gRPC, gRPC-Web, Connect and REST on one port
  import   Import users from an export file into a running userport (userport import --help)

Options for serve (each also settable as a USERPORT_* variable, see README):
  --port <n>         port to listen on (USERPORT_PORT, default 8080)
  --host <addr>      address to bind (USERPORT_HOST, default 0.0.0.0)
  --data-dir <dir>   where the SQLite store and admin.pat live (USERPORT_DATA_DIR, default ./.data)
  --database-url <url>
                     postgres://… to store everything in PostgreSQL instead (USERPORT_DATABASE_URL)
  --help             show this help
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (command === "import") {
    const { importCommand } = await import("./cli/import/command.js");
    // Exit now: an HTTP/2 session to the server may still be open (stdout and stderr are synchronous on pipes, files and terminals).
    process.exit(await importCommand(args));
  }
  if (command === undefined || command === "--help" || command === "help" || args.includes("--help")) {
    process.stdout.write(HELP);
    return;
  }
  if (command !== "serve") {
    process.stderr.write(`unknown command "${command}"\n\n${HELP}`);
    process.exitCode = 2;
    return;
  }
  const server = await startServer(loadConfig(args));
  process.stdout.write(`userport listening on ${server.url}; admin token in ${server.adminTokenFile}\n`);
  const stop = (signal: string) => {
    server.app.log.info({ signal }, "shutting down: finishing in-flight requests");
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        server.app.log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`userport: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
