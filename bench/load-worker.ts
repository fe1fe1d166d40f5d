/**
 * The load generator of bench/import-throughput.ts. It runs in a worker thread so that the
 * clients never share an event loop with the servers under test (which run on the main thread).
 *
 * Every phase runs for warm-up + measured window, then stops sending new work and waits for all
 * requests already sent to be answered (HTTP clients keep their connections busy with a cheap
 * GET while that happens), so that every import sent has a known outcome: the main thread can
 * then check the store against exactly the set of usernames that were acknowledged.
 */
import { performance } from "node:perf_hooks";
import { parentPort } from "node:worker_threads";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import autocannon, { type RequestParams } from "autocannon";
import { Health, HealthCheckRequestSchema, HealthCheckResponseSchema } from "../gen/grpc/health/v1/health_pb.js";
import { ImportHumanUserRequestSchema, ImportHumanUserResponseSchema, ManagementService } from "../gen/zitadel/management_pb.js";

export type Target =
  /** Baseline A: bare fastify JSON POST route, HTTP/1.1. */
  | "bare-json"
  /** userport REST import, HTTP/1.1. */
  | "rest-import"
  /** grpc.health.v1.Health/Check over gRPC (h2c), grpc-js client: a baseline server or userport. */
  | "grpc-health"
  /** userport ImportHumanUser over gRPC (h2c), grpc-js client. */
  | "grpc-import"
  /** userport ImportHumanUser over Connect or gRPC-Web (see {@link PhaseSpec.protocol}), Connect-ES client. */
  | "web-import";

export interface PhaseSpec {
  name: string;
  target: Target;
  /** Server base URL, e.g. http://127.0.0.1:1234. */
  url: string;
  /** Request path for the HTTP phases. */
  path: string;
  /** A cheap GET the HTTP clients send while the phase drains. */
  drainPath: string;
  token: string;
  /** The pre-hashed bcrypt password every imported user gets. */
  passwordHash: string;
  /** Prefix of the usernames this phase imports (unique per phase). */
  usernamePrefix: string;
  connections: number;
  /** HTTP/2 sessions the gRPC phases spread their calls over. */
  grpcSessions: number;
  /** For "web-import": the protocol, its encoding and HTTP version. */
  protocol?: { kind: "connect" | "grpc-web"; binary: boolean; httpVersion: "1.1" | "2" };
  warmupMs: number;
  durationMs: number;
  /** Give up waiting for unanswered requests after this long. */
  drainTimeoutMs: number;
}

export interface PhaseResult {
  name: string;
  target: Target;
  /** Successful (2xx / gRPC OK) responses completed inside the measured window. */
  windowOk: number;
  windowSeconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  /** Over the whole phase (warm-up, window and drain). */
  sent: number;
  ok: number;
  /** Non-2xx responses, gRPC errors, connection errors and timeouts, over the whole phase. */
  failed: number;
  /** Requests that never got an answer (drain timed out). */
  unanswered: number;
  /** The first few failures, for the report. */
  failureSamples: string[];
  statusCounts: Record<string, number>;
  /** Event-loop utilisation of the client thread during the measured window. */
  clientElu: number;
  /** Usernames whose import was acknowledged / refused / never answered (import phases only). */
  okUsernames: string[];
  failedUsernames: string[];
  unansweredUsernames: string[];
}

type Request = { type: "run"; spec: PhaseSpec };

/** One request: an id (the username for imports) and its outcome. */
class Recorder {
  readonly pending = new Set<string>();
  readonly okIds: string[] = [];
  readonly failedIds: string[] = [];
  readonly failureSamples: string[] = [];
  readonly statusCounts: Record<string, number> = {};
  readonly windowLatencies: number[] = [];
  sent = 0;
  failedWithoutId = 0;
  windowOk = 0;
  #seq = 0;
  readonly windowStart: number;
  readonly windowEnd: number;
  #eluAtStart: ReturnType<typeof performance.eventLoopUtilization> | undefined;
  #eluAtEnd: ReturnType<typeof performance.eventLoopUtilization> | undefined;
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(
    readonly spec: PhaseSpec,
    readonly startedAt = performance.now(),
  ) {
    this.windowStart = startedAt + spec.warmupMs;
    this.windowEnd = this.windowStart + spec.durationMs;
    this.#timers.push(setTimeout(() => (this.#eluAtStart = performance.eventLoopUtilization()), spec.warmupMs));
    this.#timers.push(setTimeout(() => (this.#eluAtEnd = performance.eventLoopUtilization()), spec.warmupMs + spec.durationMs));
  }

  sending(): boolean {
    return performance.now() < this.windowEnd;
  }

  next(): string {
    const id = `${this.spec.usernamePrefix}${++this.#seq}`;
    this.pending.add(id);
    this.sent++;
    return id;
  }

  done(id: string, ok: boolean, status: string, latencyMs: number, detail?: string): void {
    const at = performance.now();
    this.pending.delete(id);
    this.statusCounts[status] = (this.statusCounts[status] ?? 0) + 1;
    if (ok) this.okIds.push(id);
    else {
      this.failedIds.push(id);
      if (this.failureSamples.length < 10) this.failureSamples.push(`${id}: ${status} ${detail ?? ""}`.trim());
    }
    if (ok && at >= this.windowStart && at <= this.windowEnd) {
      this.windowOk++;
      this.windowLatencies.push(latencyMs);
    }
  }

  /** A failure that cannot be tied to a request (a connection error or timeout). */
  lost(detail: string): void {
    this.failedWithoutId++;
    this.statusCounts[detail] = (this.statusCounts[detail] ?? 0) + 1;
    if (this.failureSamples.length < 10) this.failureSamples.push(detail);
  }

  result(): PhaseResult {
    for (const timer of this.#timers) clearTimeout(timer);
    const elu = this.#eluAtStart && this.#eluAtEnd ? performance.eventLoopUtilization(this.#eluAtEnd, this.#eluAtStart).utilization : NaN;
    const sorted = Float64Array.from(this.windowLatencies).sort();
    const pct = (p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!);
    const sum = sorted.reduce((a, b) => a + b, 0);
    const isImport = this.spec.target === "rest-import" || this.spec.target === "grpc-import" || this.spec.target === "web-import";
    const unanswered = [...this.pending];
    return {
      name: this.spec.name,
      target: this.spec.target,
      windowOk: this.windowOk,
      windowSeconds: this.spec.durationMs / 1000,
      rps: this.windowOk / (this.spec.durationMs / 1000),
      p50Ms: pct(50),
      p99Ms: pct(99),
      meanMs: sorted.length ? sum / sorted.length : NaN,
      maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
      sent: this.sent,
      ok: this.okIds.length,
      failed: this.failedIds.length + this.failedWithoutId,
      unanswered: unanswered.length,
      failureSamples: this.failureSamples,
      statusCounts: this.statusCounts,
      clientElu: elu,
      okUsernames: isImport ? this.okIds : [],
      failedUsernames: isImport ? this.failedIds : [],
      unansweredUsernames: isImport ? unanswered : [],
    };
  }
}

function importBody(username: string, passwordHash: string) {
  return {
    userName: username,
    profile: { firstName: "Bench", lastName: "User", displayName: `Bench ${username}`, preferredLanguage: "en" },
    email: { email: `${username}@example.com`, isEmailVerified: true },
    hashedPassword: { value: passwordHash },
  };
}

/** The HTTP/1.1 phases: autocannon with a per-request body (a fresh username each time). */
function runAutocannon(spec: PhaseSpec): Promise<PhaseResult> {
  const rec = new Recorder(spec);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (spec.target === "rest-import") headers.authorization = `Bearer ${spec.token}`;
  const drainHeaders: Record<string, string> = spec.target === "rest-import" ? { authorization: `Bearer ${spec.token}` } : {};

  // onResponse runs synchronously just before the instance's "response" event for the same
  // response (pipelining 1), which is the one that carries the latency.
  let answered: { id: string; status: number; body: string } | undefined;

  return new Promise((resolve, reject) => {
    let stopping = false;
    let drainTimer: NodeJS.Timeout | undefined;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      clearTimeout(drainTimer);
      instance.stop();
    };
    const maybeStop = () => {
      // Connection errors and timeouts cannot be tied to their request, so they count against
      // the pending set; a drain timeout catches anything else.
      if (!rec.sending() && rec.pending.size <= rec.failedWithoutId) stop();
    };

    const instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        pipelining: 1,
        duration: 24 * 3600, // stopped by the recorder, once everything sent is answered
        timeout: 30,
        sampleInt: 200,
        requests: [
          {
            method: "POST",
            path: spec.path,
            headers,
            setupRequest(req: RequestParams, context: Record<string, unknown>) {
              if (!rec.sending()) {
                context.id = undefined;
                return { ...req, method: "GET", path: spec.drainPath, headers: drainHeaders, body: Buffer.alloc(0) };
              }
              const id = rec.next();
              context.id = id;
              return { ...req, body: JSON.stringify(importBody(id, spec.passwordHash)) };
            },
            onResponse(status: number, body: string, context: Record<string, unknown>) {
              answered = typeof context.id === "string" ? { id: context.id, status, body } : undefined;
            },
          },
        ],
      },
      (err) => {
        if (err) reject(err);
        else resolve(rec.result());
      },
    );
    instance.on("response", (_client, statusCode, _bytes, responseTime) => {
      const current = answered;
      answered = undefined;
      if (current) {
        const ok = statusCode >= 200 && statusCode < 300;
        rec.done(current.id, ok, String(statusCode), responseTime, ok ? undefined : current.body.slice(0, 300));
      }
      if (!rec.sending()) {
        drainTimer ??= setTimeout(stop, spec.drainTimeoutMs);
        maybeStop();
      }
    });
    instance.on("reqError", (error: Error) => {
      rec.lost(`request error: ${error.message}`);
      if (!rec.sending()) maybeStop();
    });
    // If nothing at all comes back, still stop after the phase.
    setTimeout(() => (drainTimer ??= setTimeout(stop, spec.drainTimeoutMs)), spec.warmupMs + spec.durationMs).unref();
  });
}

/**
 * The RPC phases: `connections` async loops, each with one call in flight. gRPC goes through a
 * @grpc/grpc-js client (as ZITADEL's Node clients do), its calls spread round-robin over
 * `grpcSessions` channels (one HTTP/2 session each; default one, as a gRPC client normally has).
 * Connect and gRPC-Web go through Connect-ES's Node transports.
 */
async function runRpc(spec: PhaseSpec): Promise<PhaseResult> {
  let callers: Array<(id: string) => Promise<unknown>>;
  let close = () => {};
  if (spec.target === "web-import") {
    const p = spec.protocol!;
    const options = { baseUrl: spec.url, httpVersion: p.httpVersion, useBinaryFormat: p.binary };
    const transport = p.kind === "connect" ? createConnectTransport(options) : createGrpcWebTransport(options);
    const management: Client<typeof ManagementService> = createClient(ManagementService, transport);
    const headers = { authorization: `Bearer ${spec.token}` };
    callers = [(id) => management.importHumanUser(create(ImportHumanUserRequestSchema, importBody(id, spec.passwordHash)), { headers, timeoutMs: 30_000 })];
    // Open the connection before the clock starts.
    await createClient(Health, transport).check({ service: "" });
  } else {
    const address = new URL(spec.url).host;
    // A local subchannel pool per client: otherwise grpc-js shares one HTTP/2 session among them.
    const clients = Array.from(
      { length: Math.max(1, spec.grpcSessions) },
      () => new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
    );
    close = () => {
      for (const client of clients) client.close();
    };
    const unary = <I, O>(client: grpc.Client, path: string, encode: (m: I) => Uint8Array, decode: (b: Buffer) => O, message: I, metadata: grpc.Metadata) =>
      new Promise<O>((resolve, reject) =>
        client.makeUnaryRequest<I, O>(
          path,
          (m) => Buffer.from(encode(m)),
          decode,
          message,
          metadata,
          { deadline: Date.now() + 30_000 },
          (err, value) => (err ? reject(err) : resolve(value!)),
        ),
      );
    const check = (client: grpc.Client) =>
      unary(
        client,
        `/${Health.typeName}/Check`,
        (m) => toBinary(HealthCheckRequestSchema, m),
        (b) => fromBinary(HealthCheckResponseSchema, b),
        create(HealthCheckRequestSchema, { service: "" }),
        new grpc.Metadata(),
      );
    callers = clients.map((client): ((id: string) => Promise<unknown>) => {
      if (spec.target === "grpc-health") return () => check(client);
      return (id) => {
        const metadata = new grpc.Metadata();
        metadata.set("authorization", `Bearer ${spec.token}`);
        return unary(
          client,
          `/${ManagementService.typeName}/ImportHumanUser`,
          (m) => toBinary(ImportHumanUserRequestSchema, m),
          (b) => fromBinary(ImportHumanUserResponseSchema, b),
          create(ImportHumanUserRequestSchema, importBody(id, spec.passwordHash)),
          metadata,
        );
      };
    });
    // Open the sessions before the clock starts.
    await Promise.all(clients.map(check));
  }

  const rec = new Recorder(spec);
  const loop = async (_: unknown, i: number) => {
    const call = callers[i % callers.length]!;
    while (rec.sending()) {
      const id = rec.next();
      const start = performance.now();
      try {
        await call(id);
        rec.done(id, true, "OK", performance.now() - start);
      } catch (err) {
        const code =
          err instanceof ConnectError
            ? `code ${err.code}`
            : typeof (err as { code?: unknown }).code === "number"
              ? `grpc ${(err as { code: number }).code}`
              : "error";
        rec.done(id, false, code, performance.now() - start, err instanceof Error ? err.message.slice(0, 300) : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: spec.connections }, loop));
  close();
  return rec.result();
}

type Reply = { type: "result"; result: PhaseResult } | { type: "error"; error: string };

function serve(message: Request, reply: (message: Reply) => void): void {
  const run = message.spec.target === "bare-json" || message.spec.target === "rest-import" ? runAutocannon : runRpc;
  run(message.spec).then(
    (result) => reply({ type: "result", result }),
    (error: unknown) => reply({ type: "error", error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  );
}

// In a worker thread (bench/store-throughput.ts) or a child process of its own (bench/import-throughput.ts).
if (parentPort) parentPort.on("message", (message: Request) => serve(message, (reply) => parentPort!.postMessage(reply)));
else if (process.send) process.on("message", (message: Request) => serve(message, (reply) => process.send!(reply)));
