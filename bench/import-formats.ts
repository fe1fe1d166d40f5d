/**
 * Parse rate of each `userport import` converter (src/cli/import/formats/), as users per second
 * and as a ratio to a baseline measured in the same run: JSON.parse of every line of the native
 * NDJSON sample read with node:readline, the least any converter does per user.
 *
 *   npx tsx bench/import-formats.ts                 # 100,000 users per format
 *   npx tsx bench/import-formats.ts --users 20000 --runs 3
 *
 * Each format's sample (test/helpers/export-samples.ts: the format's structure, one user per
 * record, bcrypt or {SSHA} hashes copied into each) is written to a temporary file first, then read
 * through a file stream, so the figures include reading the file but not making it. Every run of a
 * format is preceded by a run of the baseline; a format's rate is the best of its runs. The
 * converters check each record against AddHumanUserRequest's schema and its hash against the hash
 * families (notation and bounds; no hashing), so that work is in the figures. The peak RSS of the
 * process is printed at the end (every file is streamed: it must not grow with --users).
 *
 * Checks: every user of every sample converts without an error. Exit code 1 otherwise.
 */
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { once } from "node:events";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { FORMATS, isFailed } from "../src/cli/import/formats/index.js";
import { sampleLines } from "../test/helpers/export-samples.js";

const { values } = parseArgs({ options: { users: { type: "string", default: "100000" }, runs: { type: "string", default: "3" } } });
const users = Number(values.users);
const runs = Number(values.runs);
const dir = mkdtempSync(join(tmpdir(), "userport-formats-"));

async function writeSample(format: string): Promise<string> {
  const file = join(dir, `${format}.sample`);
  const out = createWriteStream(file);
  for (const line of sampleLines(format, users)) {
    if (!out.write(`${line}\n`)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
  return file;
}

async function baseline(file: string): Promise<number> {
  const start = performance.now();
  let count = 0;
  for await (const line of createInterface({ input: createReadStream(file, "utf8"), crlfDelay: Number.POSITIVE_INFINITY })) {
    if (JSON.parse(line)) count++;
  }
  if (count !== users) throw new Error(`baseline read ${count} users`);
  return count / ((performance.now() - start) / 1000);
}

async function convert(format: string, file: string): Promise<number> {
  const start = performance.now();
  let count = 0;
  let failed = 0;
  for await (const item of FORMATS[format]!(createReadStream(file), { populations: { "pop-1": "org-1" } })) {
    if (isFailed(item)) failed++;
    else count++;
  }
  if (failed > 0 || count !== users) throw new Error(`${format}: ${count} converted, ${failed} failed of ${users}`);
  return count / ((performance.now() - start) / 1000);
}

console.log(
  `${users} users per format, best of ${runs} runs; ${cpus().length} cores, load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
const nativeFile = await writeSample("native");
console.log("| format | users/s | / baseline |");
console.log("| --- | ---: | ---: |");
let ok = true;
const baselines: number[] = [];
for (const format of Object.keys(FORMATS)) {
  const file = format === "native" ? nativeFile : await writeSample(format);
  let best = 0;
  let bestRatio = 0;
  try {
    for (let run = 0; run < runs; run++) {
      const base = await baseline(nativeFile);
      baselines.push(base);
      const rate = await convert(format, file);
      if (rate > best) {
        best = rate;
        bestRatio = rate / base;
      }
    }
    console.log(`| ${format} | ${Math.round(best).toLocaleString("en")} | ${bestRatio.toFixed(2)} |`);
  } catch (err) {
    ok = false;
    console.log(`| ${format} | failed: ${(err as Error).message} | |`);
  }
  if (format !== "native") rmSync(file);
}
console.log(`baseline (readline + JSON.parse of the native sample): ${Math.round(Math.max(...baselines)).toLocaleString("en")} users/s at best`);
console.log(`peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`);
rmSync(dir, { recursive: true, force: true });
process.exit(ok ? 0 : 1);
