/**
 * `userport import` against the engine's own streaming client, in the same run: N pre-hashed
 * users streamed by a bare grpc-js ImportUsers client (as bench/bulk-import.ts does: 1000 records
 * per message, 4 in flight) into a fresh `userport serve`, then the same number of users as a
 * native NDJSON file imported by the command (`node dist/src/cli.js import … --format native`,
 * the built bin as `npx userport` runs it, a child process) into another fresh server; both
 * servers run the built bin too. Prints both rates, their ratio (target
 * ≥ 0.9: the command must not be the bottleneck) and the command's peak RSS (VmHWM, sampled
 * while it runs; target < 200 MB).
 *
 *   node --import tsx bench/import-cli.ts --users 1000000
 */
import { spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import bcrypt from "bcrypt";
import {
  ImportOutcome,
  type ImportRecord,
  ImportRecordSchema,
  ImportUsersRequestSchema,
  type ImportUsersResponse,
} from "../gen/userport/migration/v1/migration_pb.js";
import { openImportStream } from "./import-stream.js";
import { freePort, type Served, serveProcess } from "../test/helpers/process.js";
import { ensureBuilt } from "./built.js";

// --cli-first: the command's phase before the engine's, so that two runs in opposite orders
// show what a load that moves during the run does to the ratio.
const { values: flags } = parseArgs({ options: { users: { type: "string" }, "cli-first": { type: "boolean" } }, strict: true });
const USERS = Number(flags.users ?? 1_000_000);
const BATCH = 1000;
const WINDOW = 4;
const HASH = bcrypt.hashSync("Secr3t-Passw0rd!", 10);

const human = (prefix: string, i: number) => ({
  username: `${prefix}${i}`,
  profile: { givenName: "Bench", familyName: `User ${i}` },
  email: { email: `${prefix}${i}@example.com`, isVerified: true },
  hashedPassword: { hash: HASH },
});

function peakRssMb(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

async function server(dataDir: string): Promise<{ served: Served; token: string }> {
  const served = await serveProcess(await freePort(), { USERPORT_DATA_DIR: dataDir, USERPORT_LOG_LEVEL: "warn" }, { built: true });
  return { served, token: readFileSync(join(dataDir, "admin.pat"), "utf8").trim() };
}

async function stop(served: Served) {
  served.child.kill("SIGTERM");
  await served.exited;
}

/** The engine's streaming client (bench/bulk-import.ts): records built in memory, no file. */
async function engineStream(url: string, token: string, prefix: string): Promise<{ seconds: number; created: number }> {
  const { client, call } = openImportStream(url, token);
  const started = performance.now();
  call.write(create(ImportUsersRequestSchema, { payload: { case: "options", value: { expectedRecords: BigInt(USERS) } } }));
  let sent = 0;
  let answered = 0;
  let created = 0;
  const sendMore = () => {
    while (sent < USERS && sent - answered < WINDOW * BATCH) {
      const records: ImportRecord[] = [];
      for (let i = sent; i < Math.min(sent + BATCH, USERS); i++) {
        const h = human(prefix, i);
        records.push(
          create(ImportRecordSchema, {
            key: `${prefix}${i}`,
            user: {
              case: "human",
              value: {
                username: h.username,
                profile: h.profile,
                email: { email: h.email.email, verification: { case: "isVerified", value: true } },
                passwordType: { case: "hashedPassword", value: { hash: HASH } },
              },
            },
          }),
        );
      }
      sent += records.length;
      call.write(create(ImportUsersRequestSchema, { payload: { case: "records", value: { records } } }));
    }
    if (sent >= USERS) call.end();
  };
  await new Promise<void>((resolve, reject) => {
    call.on("data", (response: ImportUsersResponse) => {
      for (const result of response.results) {
        answered++;
        if (result.outcome === ImportOutcome.CREATED) created++;
      }
      if (response.results.length > 0 && sent < USERS) sendMore();
    });
    call.on("error", reject);
    call.on("end", () => resolve());
    sendMore();
  });
  client.close();
  return { seconds: (performance.now() - started) / 1000, created };
}

async function writeNative(file: string, prefix: string): Promise<void> {
  const out = createWriteStream(file);
  for (let i = 0; i < USERS; i++) {
    if (!out.write(`${JSON.stringify({ key: `${prefix}${i}`, human: human(prefix, i) })}\n`))
      await new Promise<void>((resolve) => out.once("drain", () => resolve()));
  }
  await new Promise<void>((resolve) => out.end(resolve));
}

async function cliImport(url: string, dataDir: string, file: string): Promise<{ seconds: number; created: number; peakRssMb: number; code: number | null }> {
  const started = performance.now();
  const child = spawn(process.execPath, ["dist/src/cli.js", "import", file, "--format", "native", "--url", url, "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, peakRssMb(child.pid!))), 100);
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  clearInterval(sampler);
  const seconds = (performance.now() - started) / 1000;
  const created = Number(/created ([\d,]+)/.exec(stdout)?.[1]?.replaceAll(",", "") ?? 0);
  return { seconds, created, peakRssMb: peak, code };
}

ensureBuilt();
const work = mkdtempSync(join(tmpdir(), "userport-bench-cli-"));
try {
  const enginePhase = async () => {
    const engineDir = join(work, "engine");
    const engine = await server(engineDir);
    const run = await engineStream(engine.served.url, engine.token, `eng-${Date.now().toString(36)}-`);
    await stop(engine.served);
    return run;
  };
  const file = join(work, "users.ndjson");
  await writeNative(file, `cli-${Date.now().toString(36)}-`);
  const cliPhase = async () => {
    const cliDir = join(work, "cli");
    const target = await server(cliDir);
    const run = await cliImport(target.served.url, cliDir, file);
    await stop(target.served);
    return run;
  };
  const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  console.log(`load average at the start: ${load()}`);
  const c = flags["cli-first"] ? await cliPhase() : undefined;
  const e = await enginePhase();
  console.log(`load average after the engine phase: ${load()}`);
  const cli = c ?? (await cliPhase());

  const engineRate = e.created / e.seconds;
  const cliRate = cli.created / cli.seconds;
  console.log(`users: ${USERS.toLocaleString("en")}`);
  console.log(`engine stream (grpc-js, records in memory): ${e.seconds.toFixed(1)} s, ${Math.round(engineRate)} users/s, created ${e.created}`);
  console.log(
    `userport import (native NDJSON file):       ${cli.seconds.toFixed(1)} s, ${Math.round(cliRate)} users/s, created ${cli.created}, exit ${cli.code}`,
  );
  console.log(`ratio userport import / engine stream: ${(cliRate / engineRate).toFixed(2)} (target >= 0.9)`);
  console.log(`peak RSS of userport import: ${Math.round(cli.peakRssMb)} MB (target < 200 MB)`);
  console.log(`load average at the end: ${load()}`);
  if (e.created !== USERS || cli.created !== USERS || cli.code !== 0) process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
