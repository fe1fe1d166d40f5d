/**
 * The HTTP client of bench/password-check.ts. It runs in a worker thread so that the client never
 * shares an event loop with the server under test, whose event-loop delay the main thread measures.
 *
 * A batch is a list of JSON requests sent over fetch (keep-alive HTTP/1.1) with a fixed number in
 * flight; every request is awaited, and its status and latency are reported back.
 */
import { performance } from "node:perf_hooks";
import { parentPort } from "node:worker_threads";

export interface Batch {
  /** Server base URL, e.g. http://127.0.0.1:1234. */
  url: string;
  token: string;
  /** Requests in flight at any time. */
  concurrency: number;
  /** The HTTP status every request must answer with. */
  expectStatus: number;
  requests: Array<{ path: string; body: unknown }>;
  /** The requests' media type; application/json when absent. */
  contentType?: string;
}

export interface BatchResult {
  /** From the first request sent to the last one answered. */
  wallMs: number;
  latenciesMs: number[];
  ok: number;
  failed: number;
  /** The first few failures: status and the error's message (ZITADEL's error text and id, no secrets). */
  failureSamples: string[];
}

async function runBatch(batch: Batch): Promise<BatchResult> {
  const result: BatchResult = { wallMs: 0, latenciesMs: [], ok: 0, failed: 0, failureSamples: [] };
  const fail = (detail: string) => {
    result.failed++;
    if (result.failureSamples.length < 10) result.failureSamples.push(detail);
  };
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < batch.requests.length) {
      const { path, body } = batch.requests[next++]!;
      const sent = performance.now();
      try {
        const response = await fetch(batch.url + path, {
          method: "POST",
          headers: { authorization: `Bearer ${batch.token}`, "content-type": batch.contentType ?? "application/json" },
          body: JSON.stringify(body),
        });
        const text = await response.text();
        if (response.status === batch.expectStatus) {
          result.ok++;
          result.latenciesMs.push(performance.now() - sent);
        } else {
          let message = "";
          try {
            message = String((JSON.parse(text) as { message?: unknown }).message ?? "");
          } catch {
            message = "(body is not JSON)";
          }
          fail(`${path}: HTTP ${response.status} ${message}`);
        }
      } catch (err) {
        fail(`${path}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(batch.concurrency, batch.requests.length) }, lane));
  result.wallMs = performance.now() - started;
  return result;
}

parentPort?.on("message", (batch: Batch) => {
  runBatch(batch).then(
    (result) => parentPort!.postMessage({ type: "result", result }),
    (err: unknown) => parentPort!.postMessage({ type: "error", error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
  );
});
