import type { FastifyInstance, FastifyReply } from "fastify";
import type { MachineSecretCommands } from "../domain/machine-secrets.js";
import type { PersonalAccessTokenCommands } from "../domain/personal-access-tokens.js";
import { generateToken, tokenDigest } from "../domain/secrets.js";
import { logUnexpected } from "../edge/errors.js";
import { environmentId } from "./context.js";

/** How long a token from the token endpoint lives: PingOne's worker tokens last an hour. */
export const TOKEN_LIFETIME_SECONDS = 3600;

export interface TokenEndpointDeps {
  instanceId: string;
  machineSecrets: Pick<MachineSecretCommands, "authenticate">;
  personalAccessTokens: Pick<PersonalAccessTokenCommands, "add">;
  now: () => number;
}

/**
 * PingOne's token endpoint for worker applications, `POST /{envID}/as/token` with
 * `grant_type=client_credentials` (PingOne docs "Get an access token"; the Go SDK's
 * pingone/client.go uses golang.org/x/oauth2/clientcredentials, which sends the client in an
 * HTTP Basic header or in the form). The client is a machine user with a secret (management v1
 * GenerateMachineSecret): client id its username (or id), client secret the secret. The access
 * token is an opaque bearer token that works on every API for an hour; it is kept, like a
 * personal access token, as its digest. Errors are RFC 6749 section 5.2 JSON.
 */
export async function registerPingOneTokenEndpoint(app: FastifyInstance, deps: TokenEndpointDeps): Promise<void> {
  const envId = environmentId(deps.instanceId);
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "string" }, (_request, body, done) => done(null, body));

    const fail = (reply: FastifyReply, status: number, error: string, description: string, basic = false) => {
      if (basic) void reply.header("www-authenticate", 'Basic realm="token"');
      return reply.code(status).header("cache-control", "no-store").type("application/json").send({ error, error_description: description });
    };

    scope.post("/:envId/as/token", async (request, reply) => {
      const { envId: given } = request.params as { envId: string };
      if (given !== envId && given !== deps.instanceId) return fail(reply, 404, "invalid_request", `Unable to find environment with ID ${given}.`);
      const mediaType = (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
      if (mediaType !== "application/x-www-form-urlencoded") {
        return fail(reply, 400, "invalid_request", "The body must be application/x-www-form-urlencoded");
      }
      const form = new URLSearchParams(typeof request.body === "string" ? request.body : "");
      const grantType = form.get("grant_type");
      if (!grantType) return fail(reply, 400, "invalid_request", "grant_type is required");
      if (grantType !== "client_credentials") return fail(reply, 400, "unsupported_grant_type", "Only client_credentials is supported");

      // client_secret_basic: the id and secret form-encoded, then joined by ":" and base64-encoded (RFC 6749 section 2.3.1).
      let client: { id: string; secret: string; basic: boolean } | undefined;
      const authorization = request.headers.authorization;
      if (authorization !== undefined) {
        const encoded = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization)?.[1];
        const decoded = encoded === undefined ? "" : Buffer.from(encoded, "base64").toString("utf8");
        const colon = decoded.indexOf(":");
        if (colon < 0) return fail(reply, 401, "invalid_client", "The Authorization header is not HTTP Basic client authentication", true);
        const formDecode = (part: string) => {
          try {
            return decodeURIComponent(part.replace(/\+/g, " "));
          } catch {
            return undefined;
          }
        };
        const id = formDecode(decoded.slice(0, colon));
        const secret = formDecode(decoded.slice(colon + 1));
        if (id === undefined || secret === undefined) return fail(reply, 401, "invalid_client", "The client credentials are not form-encoded", true);
        client = { id, secret, basic: true };
        if (form.has("client_secret")) return fail(reply, 400, "invalid_request", "Use one client authentication method, not the header and the body");
      } else if (form.has("client_id") || form.has("client_secret")) {
        client = { id: form.get("client_id") ?? "", secret: form.get("client_secret") ?? "", basic: false };
      }
      if (!client) return fail(reply, 401, "invalid_client", "Client authentication is required", true);

      try {
        const user = await deps.machineSecrets.authenticate(deps.instanceId, client.id, client.secret);
        if (!user) return fail(reply, 401, "invalid_client", "The client id or secret is wrong", client.basic);
        const issued = await deps.personalAccessTokens.add(
          { instanceId: deps.instanceId, orgId: user.orgId, creator: user.id },
          user.id,
          deps.now() + TOKEN_LIFETIME_SECONDS * 1000,
          () => {
            const token = generateToken();
            return { token, digest: tokenDigest(token) };
          },
        );
        return reply
          .code(200)
          .header("cache-control", "no-store")
          .header("pragma", "no-cache")
          .type("application/json")
          .send({ access_token: issued.token, token_type: "Bearer", expires_in: TOKEN_LIFETIME_SECONDS });
      } catch (err) {
        logUnexpected(request.log, err);
        return fail(reply, 500, "server_error", "The token could not be issued");
      }
    });
  });
}
