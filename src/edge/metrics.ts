import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** What the metrics read from the running server on each scrape. */
export interface MetricSources {
  /** Mails waiting in the outbox (unsent, deliverable or not). */
  outboxUnsent(): Promise<number>;
  /** The store's connections: open, idle, and requests waiting for one. */
  connections(): { open: number; idle: number; waiting: number };
  /** Commands waiting for the next commit batch. */
  commitsWaiting(): number;
  /** Whether the store answered the last readiness probe. */
  ready(): boolean;
}

/**
 * The Prometheus metrics of one server (prom-client, one registry per server), served as text at
 * `GET /metrics`. Names and labels are listed in the README ("Operating userport").
 */
export function createMetrics(sources: MetricSources) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const requests = new Counter({
    name: "userport_requests_total",
    help: "Requests answered, by RPC (or HTTP route), protocol and gRPC code (or HTTP status for plain HTTP routes)",
    labelNames: ["rpc", "protocol", "code"] as const,
    registers,
  });
  const duration = new Histogram({
    name: "userport_request_duration_seconds",
    help: "Time from receiving a request to the end of its response, by RPC and protocol",
    labelNames: ["rpc", "protocol"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const batchSize = new Histogram({
    name: "userport_commit_batch_size",
    help: "Commands committed together in one transaction (group commit)",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers,
  });
  const batchDuration = new Histogram({
    name: "userport_commit_duration_seconds",
    help: "Time a commit batch took, from handing it to the writer to its durable commit",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers,
  });
  const batchFailures = new Counter({ name: "userport_commit_failures_total", help: "Commit batches that failed as a whole", registers });
  const deliveries = new Counter({
    name: "userport_mail_deliveries_total",
    help: "Mail delivery attempts from the outbox, by outcome (sent, failed)",
    labelNames: ["outcome"] as const,
    registers,
  });
  const checks = new Counter({
    name: "userport_sign_in_checks_total",
    help: "Committed sign-in checks (session API), by factor (password, totp) and outcome (succeeded, failed)",
    labelNames: ["factor", "outcome"] as const,
    registers,
  });
  const lockouts = new Counter({ name: "userport_lockouts_total", help: "Users locked by failed sign-in checks (lockout policy)", registers });
  new Gauge({
    name: "userport_outbox_unsent",
    help: "Mails in the outbox not yet sent",
    registers,
    async collect() {
      this.set(await sources.outboxUnsent());
    },
  });
  new Gauge({
    name: "userport_store_connections",
    help: "Store connections by state: open, idle, and waiting (requests waiting for a connection)",
    labelNames: ["state"] as const,
    registers,
    collect() {
      const { open, idle, waiting } = sources.connections();
      this.set({ state: "open" }, open);
      this.set({ state: "idle" }, idle);
      this.set({ state: "waiting" }, waiting);
    },
  });
  new Gauge({
    name: "userport_commit_queue_waiting",
    help: "Commands waiting for the next commit batch",
    registers,
    collect() {
      this.set(sources.commitsWaiting());
    },
  });
  new Gauge({
    name: "userport_ready",
    help: "1 while the store answers (the readiness endpoint says ready), else 0",
    registers,
    collect() {
      this.set(sources.ready() ? 1 : 0);
    },
  });

  return {
    registry,
    contentType: registry.contentType,
    request(rpc: string, protocol: string, code: string, seconds: number) {
      requests.inc({ rpc, protocol, code });
      duration.observe({ rpc, protocol }, seconds);
    },
    batch(size: number, seconds: number, failed: boolean) {
      batchSize.observe(size);
      batchDuration.observe(seconds);
      if (failed) batchFailures.inc();
    },
    delivery(outcome: "sent" | "failed") {
      deliveries.inc({ outcome });
    },
    /** Counts the committed sign-in events of a session or credential write. */
    events(types: readonly string[]) {
      for (const type of types) {
        const check = SIGN_IN_EVENTS[type];
        if (check) checks.inc(check);
        else if (type === "user.locked") lockouts.inc();
      }
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** ZITADEL's event types of sign-in checks. */
const SIGN_IN_EVENTS: Record<string, { factor: string; outcome: string }> = {
  "user.human.password.check.succeeded": { factor: "password", outcome: "succeeded" },
  "user.human.password.check.failed": { factor: "password", outcome: "failed" },
  "user.human.mfa.otp.check.succeeded": { factor: "totp", outcome: "succeeded" },
  "user.human.mfa.otp.check.failed": { factor: "totp", outcome: "failed" },
};
