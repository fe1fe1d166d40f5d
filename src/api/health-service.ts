import type { ServiceImpl } from "@connectrpc/connect";
import { ConnectError, Code } from "@connectrpc/connect";
import { type Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";

/**
 * `grpc.health.v1.Health`: SERVING for the whole server ("") and for each service it serves,
 * NOT_FOUND for any other name, as the health protocol asks.
 */
export function createHealthService(serviceNames: readonly string[]): ServiceImpl<typeof Health> {
  const known = new Set(["", ...serviceNames]);
  const statusOf = (service: string) => {
    if (!known.has(service)) throw new ConnectError(`unknown service ${service}`, Code.NotFound);
    return { status: Status.SERVING };
  };
  return {
    check: (req) => statusOf(req.service),
    async *watch(req, ctx) {
      yield statusOf(req.service);
      // The status never changes while the process serves; hold the stream open until the client leaves.
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
    },
  };
}
