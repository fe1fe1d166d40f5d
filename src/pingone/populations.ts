import type { Population, PopulationInput } from "../domain/directory-objects.js";
import { foldCase } from "../domain/user-queries.js";
import type { Call } from "./context.js";
import { invalidData, MESSAGES, PingOneError } from "./errors.js";
import type { Handle } from "./index.js";

/**
 * PingOne's populations (Platform API "Populations"; the Go SDK's `Population` model): the
 * instance's organisations. Reading needs `org.read` on the organisation, changing it
 * `org.write`; creating and deleting one needs `org.create` from an instance role (IAM_OWNER,
 * IAM_ORG_MANAGER), as ZITADEL's AddOrg does.
 */
function resource(call: Call, population: Population) {
  return {
    _links: { self: call.link("populations", population.id), environment: { href: `${call.deps.externalUrl}/v1/environments/${call.envId}` } },
    id: population.id,
    environment: { id: call.envId },
    name: population.name,
    ...(population.description !== undefined ? { description: population.description } : {}),
    ...population.extra,
    // Terraform waits for a theme id after creating a population (resource_population.go); there is one theme.
    theme: (population.extra.theme as object | undefined) ?? { id: call.envId },
    userCount: population.userCount,
    default: population.isDefault,
    createdAt: new Date(population.createdAt).toISOString(),
    updatedAt: new Date(population.changedAt).toISOString(),
  };
}

const READ_ONLY = new Set(["id", "_links", "environment", "userCount", "createdAt", "updatedAt", "name", "description", "default"]);

function readInput(body: Record<string, unknown>): PopulationInput {
  if (typeof body.name !== "string" || body.name.trim() === "") {
    throw new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [{ code: "REQUIRED_VALUE", target: "name", message: "name is required" }]);
  }
  if (body.description !== undefined && body.description !== null && typeof body.description !== "string") {
    throw invalidData("description", "description must be a string");
  }
  if (body.default !== undefined && body.default !== null && typeof body.default !== "boolean") {
    throw invalidData("default", "default must be a boolean");
  }
  const extra: Record<string, unknown> = {};
  for (const key of ["passwordPolicy", "theme", "preferredLanguage", "alternativeIdentifiers"]) {
    if (body[key] !== undefined && body[key] !== null && !READ_ONLY.has(key)) extra[key] = body[key];
  }
  return {
    name: body.name,
    ...(typeof body.description === "string" ? { description: body.description } : {}),
    isDefault: body.default === true,
    extra,
  };
}

export function registerPopulationRoutes(handle: Handle) {
  const base = "/environments/:envId/populations";

  async function load(call: Call, id: string, permission: string): Promise<Population> {
    const population = await call.deps.populations.get(call.instanceId, id).catch(() => undefined);
    if (!population || !(call.may("org.read", id) || call.may(permission, id))) throw call.notFound(`population with ID ${id}`);
    call.require(permission, id);
    return population;
  }

  handle("GET", base, async (call) => {
    const query = call.request.query as Record<string, string | undefined>;
    let populations = (await call.deps.populations.list(call.instanceId)).filter((p) => call.may("org.read", p.id));
    if (query.filter !== undefined && query.filter.trim() !== "") {
      // PingOne supports `name sw "…"` and `id eq "…"` here (Read All Populations).
      const match = /^\s*(name|id)\s+(sw|eq)\s+"((?:[^"\\]|\\.)*)"\s*$/i.exec(query.filter);
      if (!match) {
        throw invalidData("filter", 'Only name sw "…" and id eq "…" filter populations', "INVALID_FILTER", {
          supportedAttributes: ["name", "id"],
          supportedOperators: ["sw", "eq"],
        });
      }
      const value = JSON.parse(`"${match[3]}"`) as string;
      const attribute = match[1]!.toLowerCase();
      const op = match[2]!.toLowerCase();
      populations = populations.filter((p) =>
        attribute === "id" ? p.id === value : op === "sw" ? foldCase(p.name).startsWith(foldCase(value)) : foldCase(p.name) === foldCase(value),
      );
    }
    let limit = 250;
    if (query.limit !== undefined) {
      const parsed = Number(query.limit);
      if (!Number.isInteger(parsed) || parsed < 1) throw invalidData("limit", "limit must be a positive integer", "OUT_OF_RANGE");
      limit = parsed;
    }
    const page = populations.slice(0, limit).map((p) => resource(call, p));
    return {
      status: 200,
      body: { _links: { self: call.link("populations") }, _embedded: { populations: page }, count: populations.length, size: page.length },
    };
  });

  handle("POST", base, async (call) => {
    call.accept("application/json");
    const input = readInput(call.json());
    call.requireInstance("org.create");
    const created = await call.deps.populations.create({ instanceId: call.instanceId, creator: call.principal.userId }, input);
    return { status: 201, body: resource(call, created) };
  });

  handle("GET", `${base}/:popId`, async (call, params) => ({
    status: 200,
    body: resource(call, await load(call, params.popId!, "org.read")),
  }));

  handle("PUT", `${base}/:popId`, async (call, params) => {
    call.accept("application/json");
    const input = readInput(call.json());
    await load(call, params.popId!, "org.write");
    if (input.isDefault) call.requireInstance("org.create");
    const updated = await call.deps.populations.replace({ instanceId: call.instanceId, creator: call.principal.userId }, params.popId!, input);
    return { status: 200, body: resource(call, updated) };
  });

  handle("DELETE", `${base}/:popId`, async (call, params) => {
    await load(call, params.popId!, "org.read");
    call.requireInstance("org.create");
    await call.deps.populations.remove({ instanceId: call.instanceId, creator: call.principal.userId }, params.popId!);
    return { status: 204 };
  });
}
