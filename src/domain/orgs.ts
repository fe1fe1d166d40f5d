import { CLAIMS, claimError } from "./claims.js";
import { AuthErrors, OrgErrors, PolicyErrors } from "./error-catalogue.js";
import { ORG_ROLES } from "./access.js";
import type { IdGenerator } from "./ids.js";
import type { NewEvent, OrgStore, User } from "./ports.js";
import { retryAfterConflict } from "./conflicts.js";
import type { InstanceTarget, Target } from "./authentication.js";

/** An organisation as the domain reads it. */
export interface Org {
  instanceId: string;
  id: string;
  name: string;
  state: "ACTIVE" | "INACTIVE";
  createdAt: number;
  changedAt: number;
  /** The organisation's own event count: its `details.sequence`. */
  sequence: number;
  /** The primary domain, "" while the organisation has none. */
  primaryDomain: string;
  /** The effective domain policy flag: usernames unique per organisation, login names `user@domain`. */
  userLoginMustBeDomain: boolean;
}

export interface OrgDomain {
  orgId: string;
  /** Lower-cased. */
  domain: string;
  verified: boolean;
  primary: boolean;
  /** ZITADEL's DomainValidationType number (0 unspecified). */
  validationType: number;
  createdAt: number;
  changedAt: number;
}

export interface OrgMember {
  userId: string;
  roles: string[];
  createdAt: number;
  changedAt: number;
  /** The member's user, for display (absent if it was removed meanwhile). */
  user: User | undefined;
}

/** A custom domain policy of an organisation. */
export interface DomainPolicy {
  userLoginMustBeDomain: boolean;
  validateOrgDomains: boolean;
  smtpSenderAddressMatchesInstanceDomain: boolean;
}

/** ZITADEL's default domain policy (cmd/defaults.yaml): everything off. */
export const DEFAULT_DOMAIN_POLICY: DomainPolicy = {
  userLoginMustBeDomain: false,
  validateOrgDomains: false,
  smtpSenderAddressMatchesInstanceDomain: false,
};

/** One change to an organisation's rows, written with the organisation's events. */
export type OrgWrite =
  | { kind: "addDomain"; domain: OrgDomain }
  | { kind: "setPrimaryDomain"; domain: string }
  /** Removes the domain and, when it was verified, its instance-wide claim. */
  | { kind: "removeDomain"; domain: string; verified: boolean }
  | { kind: "addMember"; userId: string; roles: string[] }
  | { kind: "removeMember"; userId: string }
  | { kind: "changeMember"; userId: string; roles: string[] }
  /**
   * Sets (or with `policy` undefined, removes) the custom domain policy, and the effective
   * flag; when the flag changes, every username of the organisation is claimed anew in its new
   * scope, so that the database judges the new uniqueness rule.
   */
  | { kind: "setDomainPolicy"; policy: DomainPolicy | undefined; effectiveMustBeDomain: boolean; reclaimUsernames: boolean };

export interface OrgChange {
  instanceId: string;
  orgId: string;
  /** The sequence the organisation had when the change was decided: a concurrent change fails it. */
  expectedSequence: number;
  events: NewEvent[];
  writes: OrgWrite[];
  at: number;
  creator: string;
}

/**
 * ZITADEL's NewIAMDomainName: the organisation's generated domain, `<label>.<instance domain>`,
 * where the label is the name with spaces as hyphens, only letters, marks, digits and hyphens
 * kept, at most 63 characters and no leading or trailing hyphen.
 */
export function generatedOrgDomain(name: string, instanceDomain: string): string {
  let label = name
    .trim()
    .replaceAll(" ", "-")
    .replace(/[^\p{L}\p{M}0-9-]/gu, "");
  // Go slices bytes; a label of multi-byte letters is cut by code points here instead.
  label = Array.from(label).slice(0, 63).join("");
  label = label.replace(/^-/, "").replace(/-$/, "");
  // The key has no English text in ZITADEL, so clients see it raw.
  if (label === "") throw OrgErrors.domainLabelEmpty();
  return `${label}.${instanceDomain}`.toLowerCase();
}

/** The role names ZITADEL accepts on an organisation (its ORG_ roles). */
export function invalidOrgRoles(roles: readonly string[]): string[] {
  return roles.filter((role) => !ORG_ROLES.includes(role));
}

/** Access checks the context organisation first; this only answers a race with its removal. */
const OrgNotFound = () => AuthErrors.orgNotFound();

export interface OrgCommandsDeps {
  store: OrgStore;
  newId: IdGenerator;
  /** The domain organisations' generated domains end in, e.g. "localhost" or "id.example.com". */
  instanceDomain: string;
  /** Told after a change that can affect who may call the API (roles, tokens). */
  onCallerChanged: () => void;
  now?: () => number;
}

/** Organisations, their domains, members and domain policy, and machine users' tokens. */
export function createOrgCommands(deps: OrgCommandsDeps) {
  const now = deps.now ?? Date.now;

  async function getOrg(instanceId: string, orgId: string): Promise<Org> {
    const org = await deps.store.getOrg(instanceId, orgId);
    if (!org) throw OrgNotFound();
    return org;
  }

  /** One of the organisation's domains (verified or not), or ZITADEL's NotFound. */
  async function domainOf(instanceId: string, orgId: string, domainName: string): Promise<OrgDomain> {
    const domain = (await deps.store.listDomains(instanceId, orgId)).find((d) => d.domain === domainName);
    if (!domain) throw OrgErrors.domainNotFound();
    return domain;
  }

  /**
   * Applies `decide` to the organisation as it is now and writes what it returns, retrying when a
   * concurrent change of the organisation won (the org's event sequence is unique).
   */
  async function change(target: Target, decide: (org: Org) => Promise<{ events: NewEvent[]; writes: OrgWrite[] }>): Promise<Org> {
    const { instanceId, orgId, creator } = target;
    for (let attempt = 1; ; attempt++) {
      const org = await getOrg(instanceId, orgId);
      const { events, writes } = await decide(org);
      // Nothing to change (ZITADEL answers such commands without an event): nothing is written.
      if (events.length === 0) return org;
      const at = now();
      try {
        await deps.store.changeOrg({ instanceId, orgId, expectedSequence: org.sequence, events, writes, at, creator }, target.request);
      } catch (err) {
        if (await retryAfterConflict(err, attempt)) continue;
        throw err;
      }
      return { ...org, changedAt: at, sequence: org.sequence + events.length };
    }
  }

  return {
    getOrg,

    /**
     * ZITADEL's AddOrg: the organisation, its generated domain (verified and primary) and the
     * caller as ORG_OWNER, in one commit. Names and verified domains are unique in the instance.
     */
    async addOrg(target: InstanceTarget, requestedName: string, id?: string): Promise<Org> {
      const name = requestedName.trim();
      // The key has no English text in ZITADEL, so clients see it raw.
      if (name === "") throw OrgErrors.nameEmpty();
      const domainName = generatedOrgDomain(name, deps.instanceDomain);
      const at = now();
      const org: Org = {
        instanceId: target.instanceId,
        // PingOne's populations are created with UUID ids (src/pingone); ZITADEL's with its own.
        id: id ?? deps.newId(),
        name,
        state: "ACTIVE",
        createdAt: at,
        changedAt: at,
        sequence: 5,
        primaryDomain: domainName,
        userLoginMustBeDomain: DEFAULT_DOMAIN_POLICY.userLoginMustBeDomain,
      };
      const domain: OrgDomain = {
        orgId: org.id,
        domain: domainName,
        verified: true,
        primary: true,
        validationType: 0,
        createdAt: at,
        changedAt: at,
      };
      const events: NewEvent[] = [
        { type: "org.added", payload: { name } },
        { type: "org.domain.added", payload: { domain: domainName } },
        { type: "org.domain.verified", payload: { domain: domainName } },
        { type: "org.domain.primary.set", payload: { domain: domainName } },
        { type: "org.member.added", payload: { userId: target.creator, roles: ["ORG_OWNER"] } },
      ];
      try {
        await deps.store.createOrg({ org, domain, owner: { userId: target.creator, roles: ["ORG_OWNER"] }, events, creator: target.creator }, target.request);
      } catch (err) {
        throw claimError(err, CLAIMS.newOrg);
      }
      deps.onCallerChanged();
      return org;
    },

    /**
     * ZITADEL's AddOrgDomain: verified at once unless the domain policy asks for validation
     * (there is no validation here yet, so such a domain stays unverified). A verified domain is
     * claimed instance-wide: no other organisation can have it verified.
     */
    async addDomain(target: Target, requested: string): Promise<Org> {
      const domainName = requested.trim().toLowerCase();
      if (domainName === "") throw OrgErrors.addDomainEmpty();
      try {
        return await change(target, async () => {
          const existing = await deps.store.listDomains(target.instanceId, target.orgId);
          // Untranslated in ZITADEL: clients see the key (as in the wild: "Errors.Already.Exists (V2-e1wse)").
          if (existing.some((d) => d.domain === domainName)) throw OrgErrors.domainAlreadyOnOrg();
          const policy = (await deps.store.customDomainPolicy(target.instanceId, target.orgId)) ?? DEFAULT_DOMAIN_POLICY;
          const verified = !policy.validateOrgDomains;
          const at = now();
          const events: NewEvent[] = [{ type: "org.domain.added", payload: { domain: domainName } }];
          if (verified) events.push({ type: "org.domain.verified", payload: { domain: domainName } });
          return {
            events,
            writes: [
              {
                kind: "addDomain",
                domain: { orgId: target.orgId, domain: domainName, verified, primary: false, validationType: 0, createdAt: at, changedAt: at },
              },
            ],
          };
        });
      } catch (err) {
        throw claimError(err, CLAIMS.orgDomain);
      }
    },

    listDomains: (instanceId: string, orgId: string) => deps.store.listDomains(instanceId, orgId),

    /** ZITADEL's SetPrimaryOrgDomain: only a verified domain of the organisation. */
    async setPrimaryDomain(target: Target, requested: string): Promise<Org> {
      const domainName = requested.trim().toLowerCase();
      if (domainName === "") throw OrgErrors.primaryDomainInvalid();
      return change(target, async () => {
        const domain = await domainOf(target.instanceId, target.orgId, domainName);
        if (!domain.verified) throw OrgErrors.domainNotVerified();
        return {
          events: [{ type: "org.domain.primary.set", payload: { domain: domainName } }],
          writes: [{ kind: "setPrimaryDomain", domain: domainName }],
        };
      });
    },

    /**
     * ZITADEL's RemoveOrgDomain: any domain but the primary one. Login names with the domain end
     * at once (they are derived from the domain rows), and a verified domain's instance-wide claim
     * is released, so that another organisation may add it and usernames may end in it.
     */
    async removeDomain(target: Target, requested: string): Promise<Org> {
      const domainName = requested.trim().toLowerCase();
      if (domainName === "") throw OrgErrors.removeDomainInvalid();
      return change(target, async () => {
        const domain = await domainOf(target.instanceId, target.orgId, domainName);
        if (domain.primary) throw OrgErrors.primaryDomainRemoved();
        return {
          events: [{ type: "org.domain.removed", payload: { domain: domainName } }],
          writes: [{ kind: "removeDomain", domain: domainName, verified: domain.verified }],
        };
      });
    },

    listMembers: (instanceId: string, orgId: string) => deps.store.listMembers(instanceId, orgId),

    /**
     * ZITADEL's AddOrgMember: known ORG_ roles only; the user must exist. ZITADEL accepts a user
     * of any organisation; here a user of another organisation needs an instance-level caller
     * (`mayUseForeignUsers`), so that an organisation's token never learns which user ids exist
     * elsewhere.
     */
    async addMember(target: Target & { mayUseForeignUsers: boolean }, userId: string, roles: string[]): Promise<Org> {
      // As ZITADEL's AddOrgMember.IsValid; neither key has English text there, so clients see it raw.
      if (roles.length === 0) throw OrgErrors.memberRolesEmpty();
      if (invalidOrgRoles(roles).length > 0) throw OrgErrors.memberRolesInvalid();
      const org = await change(target, async () => {
        const user = await deps.store.getUser(target.instanceId, userId);
        if (!user || (user.orgId !== target.orgId && !target.mayUseForeignUsers)) {
          throw OrgErrors.memberUserNotFound();
        }
        const members = await deps.store.listMembers(target.instanceId, target.orgId);
        if (members.some((m) => m.userId === userId)) throw OrgErrors.memberExists();
        return {
          events: [{ type: "org.member.added", payload: { userId, roles } }],
          writes: [{ kind: "addMember", userId, roles: [...new Set(roles)] }],
        };
      });
      deps.onCallerChanged();
      return org;
    },

    /**
     * ZITADEL's ChangeOrgMember: the roles replace the member's; only ORG_ roles, at least one.
     * The same roles again change nothing and succeed, as in ZITADEL. The new roles take effect
     * at once (the caller cache is cleared).
     */
    async changeMember(target: Target, userId: string, requested: string[]): Promise<Org> {
      // Neither key has English text in ZITADEL (only Errors.Instance.MemberInvalid has), so clients see it raw.
      if (requested.length === 0) throw OrgErrors.changedRolesEmpty();
      if (invalidOrgRoles(requested).length > 0) throw OrgErrors.changedRolesInvalid();
      const roles = [...new Set(requested)];
      let changed = false;
      const org = await change(target, async () => {
        const member = (await deps.store.listMembers(target.instanceId, target.orgId)).find((m) => m.userId === userId);
        if (!member) throw OrgErrors.memberNotFound();
        changed = !sameRoles(member.roles, roles);
        if (!changed) return { events: [], writes: [] };
        return {
          events: [{ type: "org.member.changed", payload: { userId, roles } }],
          writes: [{ kind: "changeMember", userId, roles }],
        };
      });
      if (changed) deps.onCallerChanged();
      return org;
    },

    /**
     * ZITADEL's RemoveOrgMember; the member's roles end at once (the caller cache is cleared).
     * Removing someone who is no member changes nothing and succeeds, as in ZITADEL.
     */
    async removeMember(target: Target, userId: string): Promise<Org> {
      const org = await change(target, async () => {
        const members = await deps.store.listMembers(target.instanceId, target.orgId);
        if (!members.some((m) => m.userId === userId)) return { events: [], writes: [] };
        return {
          events: [{ type: "org.member.removed", payload: { userId } }],
          writes: [{ kind: "removeMember", userId }],
        };
      });
      deps.onCallerChanged();
      return org;
    },

    /** The domain policy in force for the organisation, and whether it is the default. */
    async domainPolicy(instanceId: string, orgId: string): Promise<{ policy: DomainPolicy; isDefault: boolean; org: Org }> {
      const org = await getOrg(instanceId, orgId);
      const custom = await deps.store.customDomainPolicy(instanceId, orgId);
      return { policy: custom ?? DEFAULT_DOMAIN_POLICY, isDefault: custom === undefined, org };
    },

    /**
     * ZITADEL's Add/Change/RemoveOrgDomainPolicy. When `userLoginMustBeDomain` changes, every
     * username of the organisation is claimed anew in its new scope in the same commit: turning
     * it off fails (V3-DKcYh) if a username is already taken elsewhere in the instance.
     */
    async setCustomDomainPolicy(target: Target, mode: "add" | "change" | "remove", policy: DomainPolicy | undefined): Promise<Org> {
      try {
        return await change(target, async (org) => {
          const existing = await deps.store.customDomainPolicy(target.instanceId, target.orgId);
          if (mode === "add" && existing) throw PolicyErrors.domainPolicyExists();
          if (mode === "change" && !existing) throw PolicyErrors.domainPolicyNotFoundOnChange();
          if (mode === "remove" && !existing) throw PolicyErrors.domainPolicyNotFoundOnRemove();
          if (mode === "change" && existing && samePolicy(existing, policy!)) {
            throw PolicyErrors.domainPolicyNotChanged();
          }
          const effective = (policy ?? DEFAULT_DOMAIN_POLICY).userLoginMustBeDomain;
          const type = mode === "add" ? "org.policy.domain.added" : mode === "change" ? "org.policy.domain.changed" : "org.policy.domain.removed";
          return {
            events: [{ type, payload: policy ? { ...policy } : {} }],
            writes: [{ kind: "setDomainPolicy", policy, effectiveMustBeDomain: effective, reclaimUsernames: effective !== org.userLoginMustBeDomain }],
          };
        });
      } catch (err) {
        throw claimError(err, CLAIMS.username);
      }
    },
  };
}

export type OrgCommands = ReturnType<typeof createOrgCommands>;

/** ZITADEL compares the role lists in order (slices.Compare). */
function sameRoles(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((role, i) => role === b[i]);
}

function samePolicy(a: DomainPolicy, b: DomainPolicy): boolean {
  return (
    a.userLoginMustBeDomain === b.userLoginMustBeDomain &&
    a.validateOrgDomains === b.validateOrgDomains &&
    a.smtpSenderAddressMatchesInstanceDomain === b.smtpSenderAddressMatchesInstanceDomain
  );
}
