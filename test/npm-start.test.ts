/**
 * `npm start` as the README has an operator run it, in a copy of the checkout (so the build it
 * makes is its own): the first start builds and says so, a second start does not build again, and
 * SIGTERM ends the server whether it is sent to the whole process group (a container runtime, a
 * terminal) or to the npm process alone (a supervisor), printing that it stopped.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "./helpers/process.js";

const CHECKOUT = resolve(".");
const COPIED = ["src", "gen", "proto", "scripts", "package.json", "tsconfig.json", "tsconfig.build.json", "buf.yaml", "buf.gen.yaml"];

const copy = mkdtempSync(join(tmpdir(), "userport-npm-start-"));
afterAll(() => rmSync(copy, { recursive: true, force: true }));

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** `npm start -- …` in the copy, in a process group of its own; resolves once /healthz answers. */
async function npmStart(port: number, dataDir: string): Promise<Started> {
  const child = spawn("npm", ["start", "--", "--port", String(port), "--host", "127.0.0.1", "--data-dir", dataDir], {
    cwd: copy,
    detached: true,
    env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("USERPORT_"))),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  // The first start compiles the whole project: allow it minutes on a busy machine.
  for (let attempt = 0; attempt < 2400; attempt++) {
    if (
      await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return { child, output: () => output, exited };
    if (child.exitCode !== null) break;
    await new Promise((done) => setTimeout(done, 100));
  }
  process.kill(-child.pid!, "SIGKILL");
  throw new Error(`npm start did not serve:\n${output}`);
}

/** Whether something still accepts connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      done(true);
    });
    socket.once("error", () => done(false));
  });
}

describe("npm start", () => {
  it("builds once, reuses the build on the next start, and stops on SIGTERM to the group or to npm alone", { timeout: 600_000 }, async () => {
    for (const entry of COPIED) cpSync(join(CHECKOUT, entry), join(copy, entry), { recursive: true });
    symlinkSync(join(CHECKOUT, "node_modules"), join(copy, "node_modules"));
    const dataDir = join(copy, ".data");
    const port = await freePort();
    const stamp = join(copy, "dist", ".build-stamp.json");

    const first = await npmStart(port, dataDir);
    expect(first.output()).toContain("userport: first build: compiling TypeScript into dist/");
    expect(first.output()).toContain("userport: serving on 127.0.0.1:");
    const built = { stamp: readFileSync(stamp, "utf8"), mtime: statSync(stamp).mtimeMs, cli: statSync(join(copy, "dist", "src", "cli.js")).mtimeMs };
    // SIGTERM to the whole process group, as a container runtime or a terminal sends it.
    process.kill(-first.child.pid!, "SIGTERM");
    await first.exited;
    expect(first.output()).toContain("userport: SIGTERM: shutting down");
    expect(first.output()).toContain("userport: stopped");
    expect(await listening(port)).toBe(false);

    const second = await npmStart(port, dataDir);
    expect(second.output()).not.toContain("compiling");
    expect(second.output()).not.toContain("buf generate");
    expect(second.output()).toContain("userport: reusing the instance");
    expect(readFileSync(stamp, "utf8")).toBe(built.stamp);
    expect(statSync(stamp).mtimeMs).toBe(built.mtime);
    expect(statSync(join(copy, "dist", "src", "cli.js")).mtimeMs).toBe(built.cli);
    // SIGTERM to npm alone, as a supervisor sends it: the server must not be left behind.
    second.child.kill("SIGTERM");
    await second.exited;
    expect(second.output()).toContain("userport: stopped");
    expect(await listening(port)).toBe(false);
  });
});
