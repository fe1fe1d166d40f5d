import { spawnSync } from "node:child_process";

/**
 * Builds dist/ when the sources changed since its last build (scripts/build.mjs --if-changed), so
 * that a benchmark runs `userport` as operators run it: the compiled bin, without tsx's loader
 * (which alone adds about 150 MB to a process and seconds to its start).
 */
export function ensureBuilt(): void {
  const built = spawnSync(process.execPath, ["scripts/build.mjs", "--if-changed"], { stdio: "inherit" });
  if (built.status !== 0) throw new Error("building dist/ failed");
}
