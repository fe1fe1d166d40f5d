#!/usr/bin/env node
/**
 * Builds dist/ from src/ and gen/ (tsc, then the worker scripts copied beside their modules) and
 * records a digest of what it built from in dist/.build-stamp.json, so that `npm start` builds
 * only when the sources changed (scripts/start.mjs). `npm run build` always builds;
 * `node scripts/build.mjs --if-changed` (npm install's `prepare`) only when the stamp is stale.
 *
 * gen/ is committed: it is regenerated from proto/ (buf generate) only when proto/ changed since
 * the last build, never on a fresh checkout.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const STAMP = join(root, "dist", ".build-stamp.json");
const PROTO_INPUTS = ["proto", "buf.gen.yaml", "buf.yaml"];
const BUILD_INPUTS = ["src", "gen", "tsconfig.json", "tsconfig.build.json", "package.json", "scripts/build.mjs"];
/** Files tsc does not emit that dist/ needs beside the compiled modules. */
const COPIED = ["src/store/write-worker.cjs", "src/store/checkpoint-worker.cjs", "src/store/sqlite-pragmas.cjs", "src/domain/hashes/digest-worker.cjs"];

/** A digest of the files under `paths` (names and contents, in a stable order). */
function digest(paths) {
  const hash = createHash("sha256");
  const visit = (path) => {
    const full = join(root, path);
    if (!existsSync(full)) return;
    if (statSync(full).isDirectory()) {
      for (const name of readdirSync(full).sort()) visit(join(path, name));
      return;
    }
    hash.update(`${relative(root, full)}\0`);
    hash.update(readFileSync(full));
    hash.update("\0");
  };
  for (const path of paths) visit(path);
  return hash.digest("hex");
}

function readStamp() {
  try {
    return JSON.parse(readFileSync(STAMP, "utf8"));
  } catch {
    return undefined;
  }
}

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit" });
  if (result.status !== 0) {
    throw new Error(`${[command, ...args].join(" ")} failed${result.status === null ? ` (${result.signal})` : ` (exit ${result.status})`}`);
  }
}

const say = (line) => process.stderr.write(`userport: ${line}\n`);

/**
 * Builds when needed (or always, with `force`); says what it does. Returns whether it built.
 */
export function build({ force = false } = {}) {
  const stamp = readStamp();
  const proto = digest(PROTO_INPUTS);
  if (stamp && stamp.proto !== proto) {
    say("proto/ changed since the last build: regenerating gen/ (buf generate)…");
    run(process.execPath, [join(root, "node_modules", "@bufbuild", "buf", "bin", "buf"), "generate"]);
  }
  const sources = digest(BUILD_INPUTS);
  if (!force && stamp && stamp.sources === sources && existsSync(join(root, "dist", "src", "cli.js"))) return false;
  const started = Date.now();
  say(
    stamp
      ? "the sources changed since the last build: compiling them into dist/ (tsc)…"
      : "first build: compiling TypeScript into dist/ (tsc, once; later starts reuse it)…",
  );
  run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"]);
  for (const file of COPIED) {
    mkdirSync(dirname(join(root, "dist", file)), { recursive: true });
    copyFileSync(join(root, file), join(root, "dist", file));
  }
  // The package's bin: `npx userport …` runs it directly, so it must be executable.
  chmodSync(join(root, "dist", "src", "cli.js"), 0o755);
  writeFileSync(STAMP, `${JSON.stringify({ proto, sources, builtAt: new Date().toISOString() })}\n`);
  say(`built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    build({ force: !process.argv.includes("--if-changed") });
  } catch (err) {
    say(`build failed: ${err.message}`);
    process.exit(1);
  }
}
