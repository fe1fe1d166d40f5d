/**
 * PingOne facade against its baselines, each measured in the same run on the same machine:
 *
 *   npx tsx bench/pingone.ts                      # BENCH_OPS=400 BENCH_CONCURRENCY=16, every phase
 *   npx tsx bench/pingone.ts --ops 1000 --phases import,floor,external
 *   BENCH_PROFILE=/tmp/prof npx tsx bench/pingone.ts --phases external   # a CPU profile of the server per phase
 *
 * Phases (--phases, comma-separated: import, floor, external, captured; each comparison right
 * after its baseline, since the machine is shared):
 *   import    zitadel-import   baseline: POST /management/v1/users/human/_import with hashedPassword {SSHA512}
 *             pingone-import   POST /v1/environments/{env}/users (user.import+json) with password.value {SSHA512}
 *                                                                               -> ratio to zitadel-import
 *   floor     no-password      PingOne password checks of users without a password (400): what the
 *                              request costs before any verification
 *   external  raw-check        ldapts: search by uid over a connection bound once as the gateway,
 *                              bind as the entry over a second connection (what a check needs)
 *             raw-bind         ldapts binds as the users, no search (the cheapest LDAP operation)
 *             http-raw-check   raw-check behind a bare fastify route, through the same HTTP client
 *             external-check   PingOne password checks of users whose password is EXTERNAL with
 *                              passwordAuthority LDAP  -> ratios to http-raw-check, raw-check, raw-bind
 *   captured  native-check     baseline: PingOne password checks of users imported with bcrypt at the cost
 *             captured-check   the same for users of a passwordAuthority PING_ONE type after their first
 *                              sign-in captured the password (no LDAP)   -> ratio to native-check
 *
 * slapd (Debian's, as in the tests: test/helpers/slapd.ts) must be installed. The server runs in
 * this process (startServer, rate limits off); the HTTP client in a worker thread
 * (bench/request-worker.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import bcrypt from "bcrypt";
import Fastify from "fastify";
import { Client, EqualityFilter } from "ldapts";
import { loadConfig } from "../src/config.js";
import { startServer } from "../src/server.js";
import { ssha512 } from "../test/helpers/pingone.js";
import { PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Slapd, slapdAvailable } from "../test/helpers/slapd.js";
import type { Batch, BatchResult } from "./request-worker.js";

const { values: flags } = parseArgs({
  options: {
    ops: { type: "string" },
    concurrency: { type: "string" },
    cost: { type: "string" },
    users: { type: "string" },
    phases: { type: "string" },
  },
});
/** Which comparisons to run: import, floor, external, captured (all by default). */
const selected = new Set((flags.phases ?? "import,floor,external,captured").split(","));
const ops = Number(flags.ops ?? process.env.BENCH_OPS ?? 400);
const concurrency = Number(flags.concurrency ?? process.env.BENCH_CONCURRENCY ?? 16);
const cost = Number(flags.cost ?? process.env.USERPORT_BCRYPT_COST ?? 10);
const ldapUsers = Number(flags.users ?? 64);
const PASSWORD = "Bench-Ldap-Passw0rd!";

const worker = new Worker(
  `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(new URL("./request-worker.ts", import.meta.url).href)}); });`,
  { eval: true },
);
function remote(batch: Batch): Promise<BatchResult> {
  return new Promise((resolve, reject) => {
    worker.once("message", (message: { type: "result"; result: BatchResult } | { type: "error"; error: string }) => {
      if (message.type === "error") reject(new Error(message.error));
      else resolve(message.result);
    });
    worker.postMessage(batch);
  });
}

interface Phase {
  name: string;
  perSecond: number;
}
const phases: Phase[] = [];

/**
 * With BENCH_PROFILE=<dir>, a V8 CPU profile of this thread (the server) over each measured phase,
 * written as <dir>/<phase>.cpuprofile (read it with bench/profile-summary.ts).
 */
async function profile(): Promise<(name: string) => Promise<void>> {
  const dir = process.env.BENCH_PROFILE;
  if (!dir) return async () => undefined;
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  return async (name) => {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}

async function measure(name: string, batch: Batch): Promise<number> {
  const warm = Math.min(50, batch.requests.length);
  // A short warm-up of the same kind, not counted.
  await remote({ ...batch, requests: batch.requests.slice(0, warm) });
  const loop = performance.eventLoopUtilization();
  const stopProfile = await profile();
  const result = await remote({ ...batch, requests: batch.requests.slice(warm) });
  await stopProfile(name);
  // The server's event loop (this thread; the HTTP client is in a worker): busy time per request.
  const busy = performance.eventLoopUtilization(loop).active / Math.max(1, result.ok);
  if (result.failed > 0) throw new Error(`${name}: ${result.failed} failed: ${result.failureSamples.join("; ")}`);
  const perSecond = (result.ok * 1000) / result.wallMs;
  phases.push({ name, perSecond });
  const sorted = [...result.latenciesMs].sort((a, b) => a - b);
  const p50 = sorted[Math.floor(sorted.length / 2)] ?? 0;
  console.log(
    `${name.padEnd(16)} ${perSecond.toFixed(0).padStart(7)} /s  (${result.ok} ops, ${concurrency} in flight; server loop ${busy.toFixed(2)} ms/op, p50 ${p50.toFixed(1)} ms)`,
  );
  return perSecond;
}

async function rawBinds(slapd: Slapd, uids: string[]): Promise<number> {
  const lanes = Array.from({ length: concurrency }, () => new Client({ url: `ldap://${slapd.hostAndPort}`, timeout: 5000 }));
  const run = async (count: number) => {
    let next = 0;
    const started = performance.now();
    await Promise.all(
      lanes.map(async (client) => {
        while (next < count) {
          const uid = uids[next++ % uids.length]!;
          await client.bind(`uid=${uid},${PEOPLE}`, PASSWORD);
        }
      }),
    );
    return performance.now() - started;
  };
  await run(Math.min(50, ops));
  const wallMs = await run(ops);
  await Promise.all(lanes.map((client) => client.unbind()));
  const perSecond = (ops * 1000) / wallMs;
  phases.push({ name: "raw-bind", perSecond });
  console.log(`${"raw-bind".padEnd(16)} ${perSecond.toFixed(0).padStart(7)} /s  (${ops} ops, ${concurrency} connections)`);
  return perSecond;
}

/**
 * What one external-password check needs of the directory, done as cheaply as ldapts allows: a
 * search for the user's entry by its uid over a connection bound once as the gateway's service
 * account (one per lane, kept), then a bind as that entry with the password over a second kept
 * connection per lane.
 */
async function rawChecks(slapd: Slapd, uids: string[]): Promise<number> {
  const url = `ldap://${slapd.hostAndPort}`;
  const lanes = await Promise.all(
    Array.from({ length: concurrency }, async () => {
      const search = new Client({ url, timeout: 5000 });
      await search.bind(SERVICE_DN, SERVICE_PASSWORD);
      return { search, bind: new Client({ url, timeout: 5000 }) };
    }),
  );
  const run = async (count: number) => {
    let next = 0;
    const started = performance.now();
    await Promise.all(
      lanes.map(async ({ search, bind }) => {
        while (next < count) {
          const uid = uids[next++ % uids.length]!;
          const { searchEntries } = await search.search(PEOPLE, {
            scope: "sub",
            filter: new EqualityFilter({ attribute: "uid", value: uid }),
            attributes: ["1.1"],
            sizeLimit: 2,
          });
          if (searchEntries.length !== 1) throw new Error(`uid=${uid}: ${searchEntries.length} entries`);
          await bind.bind(searchEntries[0]!.dn, PASSWORD);
        }
      }),
    );
    return performance.now() - started;
  };
  await run(Math.min(50, ops));
  const wallMs = await run(ops);
  await Promise.all(lanes.flatMap(({ search, bind }) => [search.unbind(), bind.unbind()]));
  const perSecond = (ops * 1000) / wallMs;
  phases.push({ name: "raw-check", perSecond });
  console.log(`${"raw-check".padEnd(16)} ${perSecond.toFixed(0).padStart(7)} /s  (${ops} ops, ${concurrency} lanes of 2 connections)`);
  return perSecond;
}

/**
 * The fairest baseline for a check through userport: the same HTTP client, concurrency and
 * request (a JSON POST with the password), answered by a bare fastify route that does what a
 * check needs of the directory with ldapts and nothing else (no authentication, no store, no
 * event): search for the uid over a connection bound once as the gateway's account, bind as the
 * entry found over a second connection, 200 on success. Connections are kept in a pool of
 * `concurrency` pairs, as userport's are.
 */
async function startHttpRawChecks(slapd: Slapd) {
  const url = `ldap://${slapd.hostAndPort}`;
  const idle = await Promise.all(
    Array.from({ length: concurrency }, async () => {
      const search = new Client({ url, timeout: 5000 });
      await search.bind(SERVICE_DN, SERVICE_PASSWORD);
      return { search, bind: new Client({ url, timeout: 5000 }) };
    }),
  );
  const waiting: Array<(pair: (typeof idle)[number]) => void> = [];
  const app = Fastify({ logger: false });
  app.post("/raw/:uid", async (request, reply) => {
    const pair = idle.pop() ?? (await new Promise<(typeof idle)[number]>((resolve) => waiting.push(resolve)));
    try {
      const { uid } = request.params as { uid: string };
      const { password } = request.body as { password: string };
      const { searchEntries } = await pair.search.search(PEOPLE, {
        scope: "sub",
        filter: new EqualityFilter({ attribute: "uid", value: uid }),
        attributes: ["1.1"],
        sizeLimit: 2,
      });
      if (searchEntries.length !== 1) return reply.code(400).send({ message: "no entry" });
      await pair.bind.bind(searchEntries[0]!.dn, password);
      return { status: "OK" };
    } finally {
      const next = waiting.shift();
      if (next) next(pair);
      else idle.push(pair);
    }
  });
  const address = await app.listen({ port: 0, host: "127.0.0.1" });
  return {
    url: address,
    close: async () => {
      await app.close();
      await Promise.all(idle.flatMap(({ search, bind }) => [search.unbind(), bind.unbind()]));
    },
  };
}

async function main() {
  if (!slapdAvailable()) throw new Error("slapd is not installed (apt-get install -y slapd ldap-utils)");
  console.log(
    `node ${process.version}, ${cpus().length} cpus, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}, bcrypt cost ${cost}`,
  );
  const uids = Array.from({ length: ldapUsers }, (_, i) => `bench${i}`);
  const slapd = await Slapd.start(uids.map((uid) => ({ uid, password: PASSWORD })));
  const dataDir = mkdtempSync(join(tmpdir(), "userport-bench-pingone-"));
  const server = await startServer({
    ...loadConfig([], { USERPORT_BCRYPT_COST: String(cost) }),
    port: 0,
    host: "127.0.0.1",
    dataDir,
    passwordVerifiers: ["ssha"],
    logLevel: "silent",
    // Every check comes from this one address and each user is checked many times: the limits would measure themselves.
    rateLimitPerSource: 0,
    rateLimitPerUser: 0,
  });
  try {
    const token = (await import("node:fs")).readFileSync(server.adminTokenFile, "utf8").trim();
    // biome-ignore lint/suspicious/noExplicitAny: the bench reads a few fields of PingOne's JSON
    type Json = Record<string, any>;
    const get = async (path: string) => (await fetch(server.url + path, { headers: { authorization: `Bearer ${token}` } })).json() as Promise<Json>;
    const post = async (path: string, body: unknown, type = "application/json") => {
      const response = await fetch(server.url + path, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": type },
        body: JSON.stringify(body),
      });
      const json = (await response.json()) as Json;
      if (response.status >= 300) throw new Error(`${path}: ${response.status} ${JSON.stringify(json)}`);
      return json;
    };
    const env = String((await get("/v1/environments"))._embedded.environments[0].id);
    const pop = String((await get(`/v1/environments/${env}/populations`))._embedded.populations.find((p: { default: boolean }) => p.default).id);
    const base = { url: server.url, token, concurrency };
    const n = ops + 50;
    const hashes = Array.from({ length: 64 }, () => ssha512(PASSWORD));
    let counter = 0;
    const name = (prefix: string) => `${prefix}-${counter++}`;

    // Imports of pre-encoded users.
    const zitadelImport = () =>
      measure("zitadel-import", {
        ...base,
        expectStatus: 200,
        requests: Array.from({ length: n }, (_, i) => ({
          path: "/management/v1/users/human/_import",
          body: {
            userName: name("z"),
            profile: { firstName: "B", lastName: "Ench" },
            email: { email: "b@example.com", isEmailVerified: true },
            hashedPassword: { value: hashes[i % 64] },
          },
        })),
      });
    const pingoneImport = () =>
      measure("pingone-import", {
        ...base,
        expectStatus: 201,
        contentType: "application/vnd.pingidentity.user.import+json",
        requests: Array.from({ length: n }, (_, i) => ({
          path: `/v1/environments/${env}/users`,
          body: {
            username: name("p"),
            email: "b@example.com",
            name: { given: "B", family: "Ench" },
            population: { id: pop },
            password: { value: hashes[i % 64], forceChange: false },
          },
        })),
      });
    const ratios: string[] = [];
    if (selected.has("import")) {
      const z1 = await zitadelImport();
      const p = await pingoneImport();
      const z2 = await zitadelImport();
      ratios.push(`pingone-import / zitadel-import  ${(p / ((z1 + z2) / 2)).toFixed(2)}`);
    }

    // External passwords.
    const gateway = await post(`/v1/environments/${env}/gateways`, {
      name: "bench",
      type: "LDAP",
      enabled: true,
      vendor: "LDAPv3-compliant Directory Server",
      bindDN: SERVICE_DN,
      bindPassword: SERVICE_PASSWORD,
      serversHostAndPort: [slapd.hostAndPort],
      userTypes: [
        { name: "migrate", passwordAuthority: "PING_ONE", searchBaseDn: PEOPLE, orderedCorrelationAttributes: ["uid"] },
        { name: "stay", passwordAuthority: "LDAP", searchBaseDn: PEOPLE, orderedCorrelationAttributes: ["uid"] },
      ],
    });
    const importLinked = async (userTypeId: string, uid: string) =>
      String(
        (
          await post(
            `/v1/environments/${env}/users`,
            {
              username: name(`ext-${uid}`),
              population: { id: pop },
              password: { external: { gateway: { id: gateway.id, userType: { id: userTypeId }, correlationAttributes: { uid } } } },
            },
            "application/vnd.pingidentity.user.import+json",
          )
        ).id,
      );
    const staying: string[] = [];
    for (const uid of uids) staying.push(await importLinked(gateway.userTypes[1].id, uid));
    const checks = (ids: string[]) => ({
      ...base,
      expectStatus: 200,
      contentType: "application/vnd.pingidentity.password.check+json",
      requests: Array.from({ length: n }, (_, i) => ({ path: `/v1/environments/${env}/users/${ids[i % ids.length]}/password`, body: { password: PASSWORD } })),
    });
    if (selected.has("floor")) {
      // What any PingOne password check costs before its verification: the same request for
      // users without a password (400 NO_PASSWORD after authentication and the user's reads).
      const bare: string[] = [];
      for (let i = 0; i < 16; i++) {
        bare.push(
          String(
            (await post(`/v1/environments/${env}/users`, { username: name("bare"), population: { id: pop } }, "application/vnd.pingidentity.user.import+json"))
              .id,
          ),
        );
      }
      await measure("no-password", { ...checks(bare), expectStatus: 400 });
    }
    if (selected.has("external")) {
      const httpRaw = await startHttpRawChecks(slapd);
      try {
        const rawHttpChecks = () =>
          measure("http-raw-check", {
            url: httpRaw.url,
            token: "",
            concurrency,
            expectStatus: 200,
            requests: Array.from({ length: n }, (_, i) => ({ path: `/raw/${uids[i % uids.length]}`, body: { password: PASSWORD } })),
          });
        const raw1 = await rawChecks(slapd, uids);
        const bind1 = await rawBinds(slapd, uids);
        const http1 = await rawHttpChecks();
        const external = await measure("external-check", checks(staying));
        const http2 = await rawHttpChecks();
        const raw2 = await rawChecks(slapd, uids);
        const bind2 = await rawBinds(slapd, uids);
        ratios.push(`external-check / http-raw-check  ${(external / ((http1 + http2) / 2)).toFixed(2)}`);
        ratios.push(`external-check / raw-check       ${(external / ((raw1 + raw2) / 2)).toFixed(2)}`);
        ratios.push(`external-check / raw-bind        ${(external / ((bind1 + bind2) / 2)).toFixed(2)}`);
      } finally {
        await httpRaw.close();
      }
    }
    if (!selected.has("captured")) {
      console.log(`\n${ratios.join("\n")}`);
      return;
    }

    // Captured versus native.
    const captured: string[] = [];
    for (const uid of uids) captured.push(await importLinked(gateway.userTypes[0].id, uid));
    await remote({ ...checks(captured), concurrency: 4, requests: checks(captured).requests.slice(0, captured.length) });
    const bcryptHash = await bcrypt.hash(PASSWORD, cost);
    const native: string[] = [];
    for (let i = 0; i < uids.length; i++) {
      native.push(
        String(
          (
            await post(`/management/v1/users/human/_import`, {
              userName: name("native"),
              profile: { firstName: "N", lastName: "Ative" },
              email: { email: "n@example.com", isEmailVerified: true },
              hashedPassword: { value: bcryptHash },
            })
          ).userId,
        ),
      );
    }
    const native1 = await measure("native-check", checks(native));
    const capturedRate = await measure("captured-check", checks(captured));
    const native2 = await measure("native-check", checks(native));
    slapd.pause(); // captured users never reach the directory: checks still succeed with it frozen
    try {
      const frozen = await remote({ ...checks(captured), requests: checks(captured).requests.slice(0, 50) });
      if (frozen.failed > 0) throw new Error(`captured checks needed the directory: ${frozen.failureSamples.join("; ")}`);
    } finally {
      slapd.resume();
    }

    ratios.push(`captured-check / native-check    ${(capturedRate / ((native1 + native2) / 2)).toFixed(2)}`);
    console.log(`\n${ratios.join("\n")}`);
  } finally {
    await server.close();
    await slapd.dispose();
    rmSync(dataDir, { recursive: true, force: true });
    await worker.terminate();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
