import { CLAIMS, claimError, losesClaim } from "./claims.js";
import { type CatalogueError, PingOneErrors } from "./error-catalogue.js";
import type { Org } from "./orgs.js";
import type { DirectoryStore } from "./ports.js";
import { foldCase } from "./user-queries.js";
import type { InstanceTarget } from "./authentication.js";

/**
 * Objects of PingOne's Platform API that ZITADEL has no model for: a population's description
 * (the population itself is an organisation), custom attributes of the user schema and LDAP
 * gateways. Each has a kind, an id, a name unique per kind in the instance (case-insensitively)
 * and a JSON body; a secret (a gateway's bind password) is kept sealed, apart from the body.
 */
export interface DirectoryObject {
  kind: DirectoryObjectKind;
  id: string;
  name: string;
  body: Record<string, unknown>;
  /** Sealed with the master key (SecretBox); never part of `body`. */
  sealedSecret: string | undefined;
  createdAt: number;
  changedAt: number;
}

export type DirectoryObjectKind = "population" | "schema_attribute" | "gateway";

/** A population as PingOne shows it: an organisation with its PingOne-only attributes. */
export interface OrgSummary {
  id: string;
  name: string;
  createdAt: number;
  changedAt: number;
  userCount: number;
}

export interface PopulationInput {
  name: string;
  description?: string;
  isDefault?: boolean;
  /** Further PingOne attributes kept as they came (passwordPolicy, theme, preferredLanguage, …). */
  extra?: Record<string, unknown>;
}

export interface Population extends OrgSummary {
  description: string | undefined;
  isDefault: boolean;
  extra: Record<string, unknown>;
}

export interface PopulationDeps {
  store: DirectoryStore;
  /** ZITADEL's AddOrg (src/domain/orgs.ts), so that a population is an organisation in every respect. */
  addOrg(target: InstanceTarget, name: string, id: string): Promise<Org>;
  getOrg(instanceId: string, orgId: string): Promise<Org>;
  newUuid(): string;
  /** Called once an organisation is removed, so that nothing keeps treating it as existing. */
  onRemoved?(instanceId: string, orgId: string): void;
  now?: () => number;
}

/**
 * PingOne's populations: the organisations of the instance. Creating one is ZITADEL's AddOrg
 * (with a UUID id); the description and PingOne's other attributes are a directory object of
 * the same id; the default population is the instance's default organisation.
 */
export function createPopulationCommands(deps: PopulationDeps) {
  const now = deps.now ?? Date.now;

  async function assemble(instanceId: string, summary: OrgSummary, defaultOrgId: string): Promise<Population> {
    const object = await deps.store.getObject(instanceId, "population", summary.id);
    const { description, ...extra } = (object?.body ?? {}) as { description?: string } & Record<string, unknown>;
    return { ...summary, description, isDefault: summary.id === defaultOrgId, extra };
  }

  async function defaultOrgId(instanceId: string): Promise<string> {
    return (await deps.store.instance(instanceId))?.defaultOrgId ?? "";
  }

  async function get(instanceId: string, orgId: string): Promise<Population> {
    const summary = await deps.store.getOrgSummary(instanceId, orgId);
    if (!summary) throw PingOneErrors.populationNotFound();
    return assemble(instanceId, summary, await defaultOrgId(instanceId));
  }

  async function list(instanceId: string): Promise<Population[]> {
    const fallback = await defaultOrgId(instanceId);
    return Promise.all((await deps.store.listOrgs(instanceId)).map((summary) => assemble(instanceId, summary, fallback)));
  }

  async function writeAttributes(target: InstanceTarget, orgId: string, input: PopulationInput, at: number) {
    const { instanceId } = target;
    const previous = await deps.store.getObject(instanceId, "population", orgId);
    const body: Record<string, unknown> = { ...(input.extra ?? {}) };
    if (input.description !== undefined) body.description = input.description;
    await deps.store.putObject(
      instanceId,
      { kind: "population", id: orgId, name: orgId, body, sealedSecret: undefined, createdAt: previous?.createdAt ?? at, changedAt: at },
      previous,
      target.request,
    );
  }

  function checkName(name: string): string {
    const trimmed = name.trim();
    if (trimmed === "") throw PingOneErrors.nameRequired();
    if (trimmed.length > 256) throw PingOneErrors.nameTooLong();
    return trimmed;
  }

  async function create(target: InstanceTarget, input: PopulationInput): Promise<Population> {
    const name = checkName(input.name);
    const org = await deps.addOrg(target, name, deps.newUuid());
    const at = now();
    await writeAttributes(target, org.id, input, at);
    if (input.isDefault) await deps.store.setDefaultOrg(target.instanceId, org.id, at, target.creator, target.request);
    return get(target.instanceId, org.id);
  }

  /** PUT: the name, the description and the other attributes are replaced; `default: true` makes it the default. */
  async function replace(target: InstanceTarget, orgId: string, input: PopulationInput): Promise<Population> {
    const name = checkName(input.name);
    const org = await deps.getOrg(target.instanceId, orgId);
    const at = now();
    if (org.name !== name) {
      try {
        await deps.store.renameOrg(
          {
            instanceId: target.instanceId,
            orgId,
            expectedSequence: org.sequence,
            name,
            at,
            creator: target.creator,
            event: { type: "org.changed", payload: { name } },
          },
          target.request,
        );
      } catch (err) {
        throw claimError(err, CLAIMS.orgName);
      }
    }
    await writeAttributes(target, orgId, input, at);
    const current = await defaultOrgId(target.instanceId);
    if (input.isDefault && current !== orgId) await deps.store.setDefaultOrg(target.instanceId, orgId, at, target.creator, target.request);
    return get(target.instanceId, orgId);
  }

  /** Refused for the default population, the last one, and one that still has users, as in PingOne. */
  async function remove(target: InstanceTarget, orgId: string): Promise<void> {
    const population = await get(target.instanceId, orgId);
    const all = await deps.store.listOrgs(target.instanceId);
    if (all.length <= 1) throw PingOneErrors.lastPopulation();
    if (population.isDefault) throw PingOneErrors.defaultPopulation();
    if (population.userCount > 0) {
      throw PingOneErrors.populationHasUsers(population.userCount);
    }
    const org = await deps.getOrg(target.instanceId, orgId);
    await deps.store.removeOrg({ instanceId: target.instanceId, orgId, expectedSequence: org.sequence, at: now(), creator: target.creator }, target.request);
    deps.onRemoved?.(target.instanceId, orgId);
  }

  /** Whether the population exists; cheap (no user count), for every user write that names one. */
  const exists = (instanceId: string, orgId: string) => deps.store.orgExists(instanceId, orgId);

  /** The population whose name is `name`, case-insensitively (filter support). */
  const nameMatches = (population: Population, prefix: string) => foldCase(population.name).startsWith(foldCase(prefix));

  return { get, list, create, replace, remove, nameMatches, exists, defaultOrgId };
}

export type PopulationCommands = ReturnType<typeof createPopulationCommands>;

/**
 * Objects of one kind, with names unique in the instance (case-insensitively, as PingOne's
 * schema refuses attribute names differing only in case). Ids are given by the caller's
 * adapter (UUIDs for PingOne's clients).
 */
const MISSING: Record<DirectoryObjectKind, CatalogueError> = {
  population: PingOneErrors.populationObjectNotFound,
  schema_attribute: PingOneErrors.schemaAttributeNotFound,
  gateway: PingOneErrors.gatewayNotFound,
};

export function createDirectoryObjects(store: DirectoryStore, kind: DirectoryObjectKind, now: () => number = Date.now) {
  const missing = MISSING[kind];
  const taken = (name: string) => PingOneErrors.nameTaken(kind.replace("_", " "), name);

  async function get(instanceId: string, id: string): Promise<DirectoryObject> {
    const object = await store.getObject(instanceId, kind, id);
    if (!object) throw missing();
    return object;
  }

  async function put(
    instanceId: string,
    input: { id: string; name: string; body: Record<string, unknown>; sealedSecret?: string | undefined },
    mode: "create" | "replace",
  ): Promise<DirectoryObject> {
    const previous = await store.getObject(instanceId, kind, input.id);
    if (mode === "replace" && !previous) throw missing();
    if (mode === "create" && previous) throw taken(input.name);
    const at = now();
    const object: DirectoryObject = {
      kind,
      id: input.id,
      name: input.name,
      body: input.body,
      // A replace without a new secret keeps the stored one (PingOne never returns it, so clients cannot send it back).
      sealedSecret: input.sealedSecret ?? previous?.sealedSecret,
      createdAt: previous?.createdAt ?? at,
      changedAt: at,
    };
    try {
      await store.putObject(instanceId, object, previous);
    } catch (err) {
      if (losesClaim(err, `${kind}_name`)) throw taken(input.name);
      throw err;
    }
    return object;
  }

  return {
    get,
    find: (instanceId: string, id: string) => store.getObject(instanceId, kind, id),
    list: (instanceId: string) => store.listObjects(instanceId, kind),
    create: (instanceId: string, input: Parameters<typeof put>[1]) => put(instanceId, input, "create"),
    replace: (instanceId: string, input: Parameters<typeof put>[1]) => put(instanceId, input, "replace"),
    async remove(instanceId: string, id: string): Promise<void> {
      await store.removeObject(instanceId, await get(instanceId, id));
    },
  };
}

export type DirectoryObjects = ReturnType<typeof createDirectoryObjects>;
