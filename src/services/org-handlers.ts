import type { ServiceDeps } from "./service-deps.js";
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type AddMachineUserRequest,
  AddMachineUserResponseSchema,
  AddOrgDomainResponseSchema,
  AddOrgMemberResponseSchema,
  AddOrgResponseSchema,
  AddPersonalAccessTokenResponseSchema,
  GetDomainPolicyResponseSchema,
  GetMyOrgResponseSchema,
  ListOrgDomainsResponseSchema,
  ListOrgMembersResponseSchema,
  ListPersonalAccessTokensResponseSchema,
  type ManagementService,
  RemoveOrgDomainResponseSchema,
  RemoveOrgMemberResponseSchema,
  RemovePersonalAccessTokenResponseSchema,
  SetPrimaryOrgDomainResponseSchema,
  UpdateOrgMemberResponseSchema,
} from "../../gen/zitadel/management_pb.js";
import { type Member, MemberSchema, type SearchQuery as MemberQuery } from "../../gen/zitadel/member_pb.js";
import { type ObjectDetails, ObjectDetailsSchema } from "../../gen/zitadel/object_pb.js";
import { type Domain, type DomainSearchQuery, DomainSchema, type Org as OrgPb, OrgSchema, OrgState } from "../../gen/zitadel/org_pb.js";
import { type DomainPolicy as DomainPolicyPb, DomainPolicySchema } from "../../gen/zitadel/policy_pb.js";
import { PersonalAccessTokenSchema } from "../../gen/zitadel/user_pb.js";
import { hasInstancePermission } from "../domain/access.js";
import type { DomainPolicy, Org, OrgDomain, OrgMember } from "../domain/orgs.js";
import type { CreateMachineInput } from "../domain/users.js";
import { generateToken, tokenDigest } from "../domain/secrets.js";
import { foldCase, MAX_QUERY_LIMIT, queryLimit, type TextMethod, TEXT_METHODS, V1_DEFAULT_QUERY_LIMIT } from "../domain/user-queries.js";
import { principalKey } from "../edge/access.js";
import type { Target } from "../domain/authentication.js";
import { changeDetailsV1, objectDetailsV1 } from "./convert.js";
import { listDetailsV1, listOffset } from "./user-reads.js";

type OrgMethods =
  | "addMachineUser"
  | "listPersonalAccessTokens"
  | "addPersonalAccessToken"
  | "removePersonalAccessToken"
  | "getMyOrg"
  | "addOrg"
  | "addOrgDomain"
  | "listOrgDomains"
  | "setPrimaryOrgDomain"
  | "listOrgMembers"
  | "addOrgMember"
  | "removeOrgMember"
  | "removeOrgDomain"
  | "updateOrgMember"
  | "getDomainPolicy";

/**
 * The request-shape (PGV) rules of v1 AddMachineUserRequest and what they let through: shared by
 * AddMachineUser and admin ImportData's machine users.
 */
/** AddMachineUser's request as the domain's creation input (also ImportData's machine users); PGV's rules were checked before. */
export function addMachineInput(req: AddMachineUserRequest): Omit<CreateMachineInput, keyof Target> {
  return {
    ...(req.userId !== undefined ? { userId: req.userId } : {}),
    username: req.userName,
    name: req.name,
    description: req.description,
  };
}

/** `zitadel.v1.ObjectDetails` of an organisation after a change. */
export function orgChangeDetails(org: Org): ObjectDetails {
  return create(ObjectDetailsSchema, { sequence: BigInt(org.sequence), changeDate: timestampFromMs(org.changedAt), resourceOwner: org.id });
}

function orgToPb(org: Org): OrgPb {
  return create(OrgSchema, {
    id: org.id,
    details: create(ObjectDetailsSchema, {
      sequence: BigInt(org.sequence),
      creationDate: timestampFromMs(org.createdAt),
      changeDate: timestampFromMs(org.changedAt),
      resourceOwner: org.id,
    }),
    state: org.state === "ACTIVE" ? OrgState.ACTIVE : OrgState.INACTIVE,
    name: org.name,
    primaryDomain: org.primaryDomain,
  });
}

function domainToPb(domain: OrgDomain, org: Org): Domain {
  return create(DomainSchema, {
    orgId: domain.orgId,
    details: create(ObjectDetailsSchema, {
      sequence: BigInt(org.sequence),
      creationDate: timestampFromMs(domain.createdAt),
      changeDate: timestampFromMs(domain.changedAt),
      resourceOwner: domain.orgId,
    }),
    domainName: domain.domain,
    isVerified: domain.verified,
    isPrimary: domain.primary,
    validationType: domain.validationType,
  });
}

function memberToPb(member: OrgMember, org: Org): Member {
  const human = member.user?.human;
  return create(MemberSchema, {
    userId: member.userId,
    details: create(ObjectDetailsSchema, {
      sequence: BigInt(org.sequence),
      creationDate: timestampFromMs(member.createdAt),
      changeDate: timestampFromMs(member.changedAt),
      resourceOwner: org.id,
    }),
    roles: member.roles,
    preferredLoginName: member.user?.preferredLoginName ?? member.user?.username ?? "",
    email: human?.email.address ?? "",
    firstName: human?.profile.givenName ?? "",
    lastName: human?.profile.familyName ?? "",
    displayName: human?.profile.displayName ?? member.user?.machine?.name ?? "",
  });
}

/**
 * `zitadel.policy.v1.DomainPolicy`: the organisation's own, with its change metadata, or the
 * default (is_default), whose details name the instance as ZITADEL's do.
 */
export function domainPolicyToPb(found: { policy: DomainPolicy; isDefault: boolean; org: Org }): DomainPolicyPb {
  const { policy, isDefault, org } = found;
  return create(DomainPolicySchema, {
    details: isDefault ? create(ObjectDetailsSchema, { resourceOwner: org.instanceId }) : orgChangeDetails(org),
    userLoginMustBeDomain: policy.userLoginMustBeDomain,
    validateOrgDomains: policy.validateOrgDomains,
    isDefault,
    smtpSenderAddressMatchesInstanceDomain: policy.smtpSenderAddressMatchesInstanceDomain,
  });
}

/** A text comparison as ZITADEL's TextQueryMethod makes it, for the small lists filtered in memory. */
export function textMatches(value: string, query: string, method: TextMethod): boolean {
  const ignoreCase = method.endsWith("IgnoreCase");
  const a = ignoreCase ? foldCase(value) : value;
  const b = ignoreCase ? foldCase(query) : query;
  if (method.startsWith("equals")) return a === b;
  if (method.startsWith("startsWith")) return a.startsWith(b);
  if (method.startsWith("contains")) return a.includes(b);
  return a.endsWith(b);
}

/** The comparison of a text query; PGV's defined_only rule has refused an unknown method. */
function textMethod(method: number): TextMethod {
  return TEXT_METHODS[method]!;
}

/** One page of a list filtered in memory; `asc` false lists newest first as ZITADEL's lists do by default. */
function page<T>(items: T[], query: { offset: bigint; limit: number; asc: boolean } | undefined): { total: number; items: T[] } {
  const limit = queryLimit(query?.limit ?? 0, V1_DEFAULT_QUERY_LIMIT);
  const offset = listOffset(query?.offset ?? 0n);
  return { total: items.length, items: items.slice(offset, offset + Math.min(limit, MAX_QUERY_LIMIT)) };
}

/** The queries of ListOrgDomains, after PGV's rules (a query set, lengths, defined methods). */
function domainFilter(queries: readonly DomainSearchQuery[]): (domain: OrgDomain) => boolean {
  const tests = queries.map((query) => {
    const { name, method } = query.query.value!;
    const how = textMethod(method);
    return (domain: OrgDomain) => textMatches(domain.domain, name, how);
  });
  return (domain) => tests.every((test) => test(domain));
}

/** The queries of ListOrgMembers, after PGV's rules (a query set, lengths, defined methods). */
function memberFilter(queries: readonly MemberQuery[]): (member: OrgMember) => boolean {
  const human = (member: OrgMember) => member.user?.human;
  const tests = queries.map((query): ((m: OrgMember) => boolean) => {
    const q = query.query;
    switch (q.case) {
      case "firstNameQuery": {
        const how = textMethod(q.value.method);
        return (m) => textMatches(human(m)?.profile.givenName ?? "", q.value.firstName, how);
      }
      case "lastNameQuery": {
        const how = textMethod(q.value.method);
        return (m) => textMatches(human(m)?.profile.familyName ?? "", q.value.lastName, how);
      }
      case "emailQuery": {
        const how = textMethod(q.value.method);
        return (m) => textMatches(human(m)?.email.address ?? "", q.value.email, how);
      }
      case "userIdQuery":
        return (m) => m.userId === q.value.userId;
      default:
        return () => true;
    }
  });
  return (member) => tests.every((test) => test(member));
}

/**
 * The management v1 RPCs of organisations, their domains and members, machine users and their
 * personal access tokens. Every one acts on the context organisation (`x-zitadel-orgid`, else the
 * caller's own) after `access.target` checked it exists and the RPC's permission on it.
 */
export function createOrgHandlers({
  access,
  userCreation: users,
  orgs,
  personalAccessTokens: tokens,
}: ServiceDeps): Pick<ServiceImpl<typeof ManagementService>, OrgMethods> {
  const principalOf = (ctx: HandlerContext) => ctx.values.get(principalKey)!;

  /**
   * ListOrgDomains and ListOrgMembers: the context organisation's domains or members, filtered
   * by the request's queries (read after the authorisation, as ZITADEL reads them) and paged.
   */
  async function listOfOrg<T, P>(
    ctx: HandlerContext,
    query: { offset: bigint; limit: number; asc: boolean } | undefined,
    filter: () => (item: T) => boolean,
    list: (instanceId: string, orgId: string) => Promise<T[]>,
    toPb: (item: T, org: Org) => P,
  ) {
    const target = await access.target(ctx);
    const matches = filter();
    const org = await orgs.getOrg(target.instanceId, target.orgId);
    const { total, items } = page((await list(target.instanceId, target.orgId)).filter(matches), query);
    return { details: listDetailsV1(total, Date.now()), result: items.map((item) => toPb(item, org)) };
  }

  return {
    async addMachineUser(req, ctx) {
      const target = await access.target(ctx);
      const user = await users.createMachine({ ...target, ...addMachineInput(req) });
      return create(AddMachineUserResponseSchema, { userId: user.id, details: objectDetailsV1(user) });
    },

    async listPersonalAccessTokens(req, ctx) {
      const target = await access.target(ctx);
      // Tokens of a user of another organisation are simply not there, as ZITADEL's query filters by owner.
      const user = await users.getUser(target.instanceId, target.orgId, req.userId).catch(() => undefined);
      const found = user ? await tokens.list(target.instanceId, req.userId) : [];
      const { total, items } = page(found, req.query);
      return create(ListPersonalAccessTokensResponseSchema, {
        details: listDetailsV1(total, Date.now()),
        result: items.map((token) =>
          create(PersonalAccessTokenSchema, {
            id: token.id,
            details: create(ObjectDetailsSchema, {
              sequence: BigInt(user!.sequence),
              creationDate: timestampFromMs(token.createdAt),
              changeDate: timestampFromMs(token.createdAt),
              resourceOwner: target.orgId,
            }),
            expirationDate: timestampFromMs(token.expiresAt),
          }),
        ),
      });
    },

    async addPersonalAccessToken(req, ctx) {
      const target = await access.target(ctx);
      const expiresAt = req.expirationDate ? timestampDate(req.expirationDate).getTime() : undefined;
      const added = await tokens.add(target, req.userId, expiresAt, () => {
        const token = generateToken();
        return { token, digest: tokenDigest(token) };
      });
      return create(AddPersonalAccessTokenResponseSchema, {
        tokenId: added.tokenId,
        token: added.token,
        details: changeDetailsV1(added.user),
      });
    },

    async removePersonalAccessToken(req, ctx) {
      const target = await access.target(ctx);
      const user = await tokens.remove(target, req.userId, req.tokenId);
      return create(RemovePersonalAccessTokenResponseSchema, { details: changeDetailsV1(user) });
    },

    async getMyOrg(_req, ctx) {
      const target = await access.target(ctx);
      return create(GetMyOrgResponseSchema, { org: orgToPb(await orgs.getOrg(target.instanceId, target.orgId)) });
    },

    async addOrg(req, ctx) {
      const target = await access.target(ctx);
      const org = await orgs.addOrg(target, req.name);
      return create(AddOrgResponseSchema, {
        id: org.id,
        details: create(ObjectDetailsSchema, {
          sequence: BigInt(org.sequence),
          creationDate: timestampFromMs(org.createdAt),
          changeDate: timestampFromMs(org.changedAt),
          resourceOwner: org.id,
        }),
      });
    },

    async addOrgDomain(req, ctx) {
      const target = await access.target(ctx);
      return create(AddOrgDomainResponseSchema, { details: orgChangeDetails(await orgs.addDomain(target, req.domain)) });
    },

    async listOrgDomains(req, ctx) {
      return create(ListOrgDomainsResponseSchema, await listOfOrg(ctx, req.query, () => domainFilter(req.queries), orgs.listDomains, domainToPb));
    },

    async setPrimaryOrgDomain(req, ctx) {
      const target = await access.target(ctx);
      return create(SetPrimaryOrgDomainResponseSchema, { details: orgChangeDetails(await orgs.setPrimaryDomain(target, req.domain)) });
    },

    async removeOrgDomain(req, ctx) {
      const target = await access.target(ctx);
      return create(RemoveOrgDomainResponseSchema, { details: orgChangeDetails(await orgs.removeDomain(target, req.domain)) });
    },

    async listOrgMembers(req, ctx) {
      return create(ListOrgMembersResponseSchema, await listOfOrg(ctx, req.query, () => memberFilter(req.queries), orgs.listMembers, memberToPb));
    },

    async addOrgMember(req, ctx) {
      const target = await access.target(ctx);
      const mayUseForeignUsers = hasInstancePermission(principalOf(ctx), "org.member.write");
      const org = await orgs.addMember({ ...target, mayUseForeignUsers }, req.userId, req.roles);
      return create(AddOrgMemberResponseSchema, { details: orgChangeDetails(org) });
    },

    async updateOrgMember(req, ctx) {
      const target = await access.target(ctx);
      return create(UpdateOrgMemberResponseSchema, { details: orgChangeDetails(await orgs.changeMember(target, req.userId, req.roles)) });
    },

    async getDomainPolicy(_req, ctx) {
      const target = await access.target(ctx);
      return create(GetDomainPolicyResponseSchema, { policy: domainPolicyToPb(await orgs.domainPolicy(target.instanceId, target.orgId)) });
    },

    async removeOrgMember(req, ctx) {
      const target = await access.target(ctx);
      return create(RemoveOrgMemberResponseSchema, { details: orgChangeDetails(await orgs.removeMember(target, req.userId)) });
    },
  };
}
