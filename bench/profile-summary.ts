/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): top functions by self time, and the
 * same time grouped by package / source file, so hot spots can be named with evidence.
 *
 *   npx tsx bench/profile-summary.ts <file.cpuprofile> [--top 40] [--inclusive]
 *
 * --inclusive adds a table of total (self + callees) time per function, counted once per sample
 * even for recursive frames.
 * --by-caller src/ charges every sample to the innermost frame whose file contains "src/" (the
 * project function that, directly or through libraries, was running), so library time shows up
 * under the project code that caused it; async functions resumed after an await count too.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string" }, inclusive: { type: "boolean" }, "by-caller": { type: "string" } },
});
const file = positionals[0];
if (!file) {
  console.error("usage: tsx bench/profile-summary.ts <file.cpuprofile> [--top N] [--inclusive]");
  process.exit(1);
}
const top = Number(values.top ?? 40);
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

// Time of each sample: the delta that follows it (V8's convention is the delta before the next).
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i + 1] ?? 0;
  selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
});
const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);

const REPOSITORY_ROOT = new URL("..", import.meta.url).href;

function shortUrl(url: string): string {
  if (!url) return "";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) return url.slice(nm + "node_modules/".length);
  // The repository's own files, relative to its root (this file's parent directory).
  if (url.startsWith(REPOSITORY_ROOT)) return url.slice(REPOSITORY_ROOT.length);
  return url.replace(/^file:\/\//, "");
}
function keyOf(frame: CallFrame): string {
  const name = frame.functionName || "(anonymous)";
  const url = shortUrl(frame.url);
  return url ? `${name}  ${url}:${frame.lineNumber + 1}` : name;
}
function groupOf(frame: CallFrame): string {
  const url = shortUrl(frame.url);
  if (!url) return frame.functionName.startsWith("(") ? frame.functionName : "(native / V8 builtins)";
  if (url.startsWith("node:")) return url.split("/")[0]!.replace(/^node:internal.*/, "node: internals") || url;
  if (frame.url.includes("node_modules/")) {
    const parts = url.split("/");
    return parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  return url;
}

const selfByKey = new Map<string, number>();
const selfByGroup = new Map<string, number>();
for (const [id, us] of selfUs) {
  const frame = byId.get(id)!.callFrame;
  selfByKey.set(keyOf(frame), (selfByKey.get(keyOf(frame)) ?? 0) + us);
  selfByGroup.set(groupOf(frame), (selfByGroup.get(groupOf(frame)) ?? 0) + us);
}

const pct = (us: number) => ((100 * us) / totalUs).toFixed(1).padStart(5);
const ms = (us: number) => (us / 1000).toFixed(0).padStart(7);
const print = (title: string, map: Map<string, number>, n: number) => {
  console.log(`\n${title}`);
  console.log(`${"ms".padStart(7)} ${"%".padStart(5)}  function / group`);
  for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`${ms(us)} ${pct(us)}  ${key}`);
};

console.log(`${file}: ${(totalUs / 1e6).toFixed(2)} s sampled, ${profile.samples.length} samples`);
const idle = [...selfByKey].filter(([k]) => k.startsWith("(idle)")).reduce((a, [, us]) => a + us, 0);
console.log(`idle ${pct(idle)} %, busy ${pct(totalUs - idle)} %`);
print("top self time by function", selfByKey, top);
print("self time by package / file", selfByGroup, 25);

if (values.inclusive) {
  const inclusive = new Map<string, number>();
  profile.samples.forEach((leaf, i) => {
    const dt = Math.max(0, profile.timeDeltas[i + 1] ?? 0);
    const seen = new Set<string>();
    for (let id: number | undefined = leaf; id !== undefined; id = parent.get(id)) {
      const key = keyOf(byId.get(id)!.callFrame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + dt);
    }
  });
  print("top total (inclusive) time by function", inclusive, top);
}

const callerMarker = values["by-caller"];
if (callerMarker) {
  const byCaller = new Map<string, number>();
  profile.samples.forEach((leaf, i) => {
    const dt = Math.max(0, profile.timeDeltas[i + 1] ?? 0);
    let key: string | undefined;
    for (let id: number | undefined = leaf; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame;
      if (frame.url.includes(callerMarker)) {
        key = keyOf(frame);
        break;
      }
    }
    key ??= `(no ${callerMarker} frame) ${groupOf(byId.get(leaf)!.callFrame)}`;
    byCaller.set(key, (byCaller.get(key) ?? 0) + dt);
  });
  print(`time charged to the innermost ${callerMarker} frame (else to the leaf's package)`, byCaller, top);
}
