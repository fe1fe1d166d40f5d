#!/usr/bin/env node
/**
 * `npm start`: builds dist/ only when the sources changed since the last build (saying so), then
 * runs the CLI in this very process, so that the SIGTERM a supervisor sends reaches the server
 * (package.json's start script `exec`s this file, so no shell stands in between either).
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build, root } from "./build.mjs";

try {
  build();
} catch (err) {
  process.stderr.write(`userport: build failed: ${err.message}\n`);
  process.exit(1);
}
const cli = join(root, "dist", "src", "cli.js");
process.argv = [process.argv[0], cli, ...process.argv.slice(2)];
await import(pathToFileURL(cli).href);
