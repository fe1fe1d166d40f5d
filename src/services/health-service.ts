import type { ServiceImpl } from "@connectrpc/connect";
import { ConnectError, Code } from "@connectrpc/connect";
import { type Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";

/** Whether the server can serve: its store answers and it is not shutting down. */
export interface Readiness {
  ready(): Promise<boolean>;
  /** True once the server shuts down: watches end after saying NOT_SERVING. */
  closing(): boolean;
}

/** How often a Watch looks at the readiness again. */
const WATCH_INTERVAL_MS = 1000;

/**
 * `grpc.health.v1.Health`: for the whole server ("") and for each service it serves, SERVING
 * while the store answers and NOT_SERVING while it does not (or the server shuts down); NOT_FOUND
 * for any other name, as the health protocol asks. Watch sends the status, then each change.
 */
export function createHealthService(serviceNames: readonly string[], readiness: Readiness): ServiceImpl<typeof Health> {
  const known = new Set(["", ...serviceNames]);
  const statusOf = async (service: string) => {
    if (!known.has(service)) throw new ConnectError(`unknown service ${service}`, Code.NotFound);
    return (await readiness.ready()) ? Status.SERVING : Status.NOT_SERVING;
  };
  return {
    check: async (req) => ({ status: await statusOf(req.service) }),
    async *watch(req, ctx) {
      let last: Status | undefined;
      while (!ctx.signal.aborted) {
        const status = await statusOf(req.service);
        if (status !== last) yield { status };
        last = status;
        if (readiness.closing()) return;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, WATCH_INTERVAL_MS);
          ctx.signal.addEventListener(
            "abort",
            () => {
              clearTimeout(timer);
              resolve();
            },
            { once: true },
          );
        });
      }
    },
  };
}
