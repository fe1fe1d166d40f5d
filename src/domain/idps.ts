import { IdpErrors } from "./error-catalogue.js";
import type { IdGenerator } from "./ids.js";
import type { SecretBox } from "./secrets.js";
import type { IdpStore, NewEvent } from "./ports.js";
import { retryAfterConflict } from "./conflicts.js";
import { foldCase, type TextMethod } from "./user-queries.js";
import type { Target } from "./authentication.js";

/** What users may do with an identity provider (ZITADEL's `idp.v1.Options`). */
export interface IdpOptions {
  isLinkingAllowed: boolean;
  isCreationAllowed: boolean;
  isAutoCreation: boolean;
  isAutoUpdate: boolean;
  /** ZITADEL's AutoLinkingOption number (0 unspecified, 1 username, 2 email). */
  autoLinking: number;
}

/** An identity provider as the domain reads it. Never carries its client secret. */
export interface Idp {
  instanceId: string;
  id: string;
  /** The owning organisation, or "" for a provider of the instance (usable in every organisation). */
  orgId: string;
  type: "oidc";
  state: "ACTIVE" | "INACTIVE";
  name: string;
  issuer: string;
  clientId: string;
  scopes: string[];
  isIdTokenMapping: boolean;
  usePkce: boolean;
  options: IdpOptions;
  createdAt: number;
  changedAt: number;
  sequence: number;
}

export interface NewOidcProvider {
  name: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
  scopes: string[];
  isIdTokenMapping: boolean;
  usePkce: boolean;
  options: IdpOptions;
}

/** A ListProviders criterion; a list of them is AND-combined. */
export type ProviderFilter =
  | { kind: "id"; id: string }
  | { kind: "name"; name: string; method: TextMethod }
  | { kind: "owner"; owner: "system" | "org" | undefined };

export interface IdpDeps {
  store: IdpStore;
  newId: IdGenerator;
  secretBox: SecretBox;
  now?: () => number;
}

/**
 * Identity providers: generic OIDC providers of an organisation, read together with the
 * instance's own, as ZITADEL's management API reads them. Links of users to accounts at them
 * are checked against these (src/domain/users.ts, src/domain/user-changes.ts).
 */
export function createIdpCommands(deps: IdpDeps) {
  const now = deps.now ?? Date.now;

  /** AddGenericOIDCProvider: ZITADEL's command trims and requires name, issuer, client id and secret. */
  async function addOidcProvider(target: Target, input: NewOidcProvider): Promise<Idp> {
    const name = input.name.trim();
    const issuer = input.issuer.trim();
    const clientId = input.clientId.trim();
    const clientSecret = input.clientSecret.trim();
    // ZITADEL has no English text for this key, so its clients see the raw key.
    if (name === "") throw IdpErrors.nameEmpty();
    if (issuer === "") throw IdpErrors.issuerEmpty();
    if (clientId === "") throw IdpErrors.clientIdEmpty();
    if (clientSecret === "") throw IdpErrors.clientSecretEmpty();
    const sealed = deps.secretBox.seal(clientSecret);
    const id = deps.newId();
    for (let attempt = 1; ; attempt++) {
      const previous = await deps.store.lastSequence(target.instanceId, target.orgId);
      const at = now();
      const idp: Idp = {
        instanceId: target.instanceId,
        id,
        orgId: target.orgId,
        type: "oidc",
        state: "ACTIVE",
        name,
        issuer,
        clientId,
        scopes: input.scopes,
        isIdTokenMapping: input.isIdTokenMapping,
        usePkce: input.usePkce,
        options: input.options,
        createdAt: at,
        changedAt: at,
        sequence: previous + 1,
      };
      // The event, like ZITADEL's, carries everything but the secret.
      const event: NewEvent = {
        type: "org.idp.oidc.added",
        payload: { id, name, issuer, clientId, scopes: input.scopes, isIdTokenMapping: input.isIdTokenMapping, usePKCE: input.usePkce, ...input.options },
      };
      try {
        await deps.store.createIdp(idp, sealed, event, previous, target.creator, target.request);
        return idp;
      } catch (err) {
        if (await retryAfterConflict(err, attempt)) continue;
        throw err;
      }
    }
  }

  /** A provider usable in the organisation: its own, or the instance's; undefined otherwise. */
  async function usableIdp(instanceId: string, orgId: string, id: string): Promise<Idp | undefined> {
    const idp = await deps.store.getIdp(instanceId, id);
    return idp && (idp.orgId === orgId || idp.orgId === "") ? idp : undefined;
  }

  /** GetProviderByID: providers of other organisations are not found. */
  async function getProvider(instanceId: string, orgId: string, id: string): Promise<Idp> {
    const idp = await usableIdp(instanceId, orgId, id);
    if (!idp) throw IdpErrors.notFound();
    return idp;
  }

  /**
   * ListProviders: the organisation's and the instance's providers matching every filter, by
   * name. An organisation has few providers, so they are filtered here rather than in SQL.
   */
  async function listProviders(
    instanceId: string,
    orgId: string,
    filters: readonly ProviderFilter[],
    page: { offset: number; limit: number; asc: boolean },
  ): Promise<{ idps: Idp[]; total: number }> {
    const all = await deps.store.listIdps(instanceId, [orgId, ""]);
    const matching = all.filter((idp) => filters.every((filter) => matches(idp, filter, orgId)));
    matching.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (!page.asc) matching.reverse();
    return { idps: matching.slice(page.offset, page.offset + page.limit), total: matching.length };
  }

  return {
    addOidcProvider,
    usableIdp,
    getProvider,
    listProviders,
    findIdp: (instanceId: string, id: string) => deps.store.getIdp(instanceId, id),
  };
}

export type IdpCommands = ReturnType<typeof createIdpCommands>;

function matches(idp: Idp, filter: ProviderFilter, orgId: string): boolean {
  switch (filter.kind) {
    case "id":
      return idp.id === filter.id;
    case "owner":
      return filter.owner === "system" ? idp.orgId === "" : filter.owner === "org" ? idp.orgId === orgId : false;
    case "name":
      return textMatches(idp.name, filter.name, filter.method);
  }
}

/** A text comparison of ZITADEL's TextQueryMethod, on a value held in memory. */
export function textMatches(value: string, wanted: string, method: TextMethod): boolean {
  const ignoreCase = method.endsWith("IgnoreCase");
  const a = ignoreCase ? foldCase(value) : value;
  const b = ignoreCase ? foldCase(wanted) : wanted;
  if (method.startsWith("equals")) return a === b;
  if (method.startsWith("startsWith")) return a.startsWith(b);
  if (method.startsWith("contains")) return a.includes(b);
  return a.endsWith(b);
}
