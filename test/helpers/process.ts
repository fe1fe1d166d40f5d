import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";

/** A free port, found by binding port 0 and releasing it. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface Served {
  child: ChildProcess;
  url: string;
  /** What the process wrote to stdout and stderr so far. */
  output: () => string;
  exited: Promise<number | null>;
}

/**
 * Runs `userport serve` in a process of its own, as an operator would, configured by `env`
 * (USERPORT_* variables) on top of this process's environment; resolves once /healthz answers.
 */
export async function serveProcess(port: number, env: Record<string, string>, options: { built?: boolean } = {}): Promise<Served> {
  // `built`: the compiled bin (dist/, `npm run build`), as operators run it, instead of tsx.
  const cli = options.built ? ["dist/src/cli.js"] : ["--import", "tsx", "src/cli.ts"];
  const child = spawn(process.execPath, [...cli, "serve", "--port", String(port), "--host", "127.0.0.1"], {
    // Rate limits off unless a test sets them (see test/helpers/server.ts).
    env: { ...process.env, USERPORT_RATE_LIMIT_PER_SOURCE: "0", USERPORT_RATE_LIMIT_PER_USER: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  // Started: /healthz answers and the start lines are written. The server listens before
  // `serve` says where its token is, so /healthz alone can win the race against that line.
  const announced = () => /userport: (created|reusing) the instance/.test(output);
  for (let attempt = 0; attempt < 300; attempt++) {
    if (
      announced() &&
      (await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      ))
    )
      return { child, url, output: () => output, exited };
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`userport did not start:\n${output}`);
}
