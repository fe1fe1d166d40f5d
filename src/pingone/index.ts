import type { FastifyError, FastifyInstance, HTTPMethods } from "fastify";
import { Call, environmentId, type PingOneDeps } from "./context.js";
import { MESSAGES, notFoundError, PingOneError, toPingOneError } from "./errors.js";
import { registerGatewayRoutes } from "./gateways.js";
import { registerPasswordRoutes } from "./passwords.js";
import { registerPopulationRoutes } from "./populations.js";
import { registerSchemaRoutes } from "./schemas.js";
import { registerUserRoutes } from "./users.js";

export type { PingOneDeps } from "./context.js";

/** What a handler returns: a status and a JSON body (none for 204). */
export interface Answer {
  status: number;
  body?: unknown;
}

/** Every route of the facade, as "METHOD /v1/…" (filled when a server registers it): the cross-organisation test enumerates them. */
export const PINGONE_ROUTES = new Set<string>();

export type Handle = (method: HTTPMethods, url: string, handler: (call: Call, params: Record<string, string | undefined>) => Promise<Answer>) => void;

/**
 * PingOne's Platform API (`/v1/environments/{envID}/…`) over the same domain and store as
 * ZITADEL's APIs: the environment is the instance, a population an organisation. Bodies are
 * JSON whatever the media type (`application/json` or PingOne's `application/vnd.pingidentity.*`,
 * matched without parameters; others get 415); errors are PingOne's shape (src/pingone/errors.ts).
 */
export async function registerPingOne(app: FastifyInstance, deps: PingOneDeps): Promise<void> {
  await app.register(
    async (scope) => {
      // Every body arrives as text and is parsed by the handler, so that a malformed body or an
      // unknown media type is answered in PingOne's shape instead of fastify's.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser("*", { parseAs: "string" }, (_request, body, done) => done(null, body));

      const methodsByRoute = new Map<string, Set<string>>();

      const handle: Handle = (method, url, handler) => {
        const methods = methodsByRoute.get(url) ?? new Set<string>();
        methods.add(String(method));
        methodsByRoute.set(url, methods);
        PINGONE_ROUTES.add(`${String(method)} /v1${url}`);
        scope.route({
          method,
          url,
          handler: async (request, reply) => {
            const authorization = request.headers.authorization;
            const principal = await deps.authenticate(typeof authorization === "string" ? authorization : undefined).catch((err: unknown) => {
              throw toPingOneError(err, request.log);
            });
            const params = request.params as Record<string, string | undefined>;
            // The environment is this instance: its UUID, or the instance's own id.
            if (params.envId !== undefined && params.envId !== environmentId(principal.instanceId) && params.envId !== principal.instanceId) {
              throw notFoundError(`Unable to find environment with ID ${params.envId}.`);
            }
            const answer = await handler(new Call(request, reply, principal, deps), params);
            reply.code(answer.status);
            if (answer.body === undefined) return reply.send();
            return reply.type("application/json").send(answer.body);
          },
        });
      };

      registerEnvironmentRoutes(handle, deps);
      registerUserRoutes(handle);
      registerPopulationRoutes(handle);
      registerPasswordRoutes(handle);
      registerSchemaRoutes(handle);
      registerGatewayRoutes(handle);

      // A known path with another method is 405 (PingOne's conventions page); others 404.
      const patterns = [...methodsByRoute.keys()].map((url) => new RegExp(`^/v1${url.replace(/:[A-Za-z]+/g, "[^/]+")}/?$`));
      scope.setNotFoundHandler((request, reply) => {
        const path = request.url.split("?")[0]!;
        const error = patterns.some((pattern) => pattern.test(path)) ? new PingOneError(405, "INVALID_REQUEST", MESSAGES.methodNotAllowed) : notFoundError();
        void reply.code(error.status).type("application/json").send(error.body());
      });

      scope.setErrorHandler((error: FastifyError | PingOneError, request, reply) => {
        let failure: PingOneError;
        if (error instanceof PingOneError) failure = error;
        else if (error.statusCode === 413) {
          failure = new PingOneError(413, "INVALID_REQUEST", "The request body is larger than this service accepts.", [
            { code: "SIZE_LIMIT_EXCEEDED", target: "body", message: "The request body is too large" },
          ]);
        } else if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
          failure = new PingOneError(400, "INVALID_REQUEST", MESSAGES.requestFailed, [
            { code: "INVALID_VALUE", target: "body", message: "The request could not be read" },
          ]);
        } else failure = toPingOneError(error, request.log);
        for (const [name, value] of Object.entries(failure.headers)) void reply.header(name, value);
        return reply.code(failure.status).type("application/json").send(failure.body());
      });
    },
    { prefix: "/v1" },
  );
}

function registerEnvironmentRoutes(handle: Handle, deps: PingOneDeps) {
  const environment = async (call: Call) => {
    const createdAt = await deps.instanceCreatedAt(call.instanceId);
    return {
      _links: {
        self: { href: `${deps.externalUrl}/v1/environments/${call.envId}` },
        populations: call.link("populations"),
        users: call.link("users"),
      },
      id: call.envId,
      name: "userport",
      description: "The userport instance",
      type: "PRODUCTION",
      region: "NA",
      license: { id: call.envId },
      createdAt: new Date(createdAt).toISOString(),
      updatedAt: new Date(createdAt).toISOString(),
    };
  };
  handle("GET", "/environments", async (call) => {
    const env = await environment(call);
    return {
      status: 200,
      body: { _links: { self: { href: `${deps.externalUrl}/v1/environments` } }, _embedded: { environments: [env] }, count: 1, size: 1 },
    };
  });
  handle("GET", "/environments/:envId", async (call) => ({ status: 200, body: await environment(call) }));
}
