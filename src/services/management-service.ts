import { RequestErrors, UserCreationErrors } from "../domain/error-catalogue.js";
import type { ServiceDeps } from "./service-deps.js";
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  AddHumanUserResponseSchema,
  GetUserByIDResponseSchema,
  type ImportHumanUserRequest,
  ImportHumanUserResponseSchema,
  IsUserUniqueResponseSchema,
  ListUserChangesResponseSchema,
  ListUsersResponseSchema,
  type ManagementService,
  AddGenericOIDCProviderResponseSchema,
  BulkRemoveUserMetadataResponseSchema,
  BulkSetUserMetadataResponseSchema,
  GetUserMetadataResponseSchema,
  ListUserMetadataResponseSchema,
  RemoveUserMetadataResponseSchema,
  SetUserMetadataResponseSchema,
  GetProviderByIDResponseSchema,
  ListHumanLinkedIDPsResponseSchema,
  ListProvidersResponseSchema,
  RemoveHumanLinkedIDPResponseSchema,
  ResendHumanInitializationResponseSchema,
  UpdateUserNameResponseSchema,
} from "../../gen/zitadel/management_pb.js";
import { IDPOwnerType, IDPState, IDPType, type Provider, ProviderSchema, ProviderType } from "../../gen/zitadel/idp_pb.js";
import { ObjectDetailsSchema } from "../../gen/zitadel/object_pb.js";
import { type Metadata, MetadataSchema } from "../../gen/zitadel/metadata_pb.js";
import { type Idp, type ProviderFilter, textMatches } from "../domain/idps.js";
import type { StoredMetadata } from "../domain/ports.js";
import type { UserStateCommands } from "../domain/user-states.js";
import type { CreateHumanInput } from "../domain/users.js";
import { queryLimit, TEXT_METHODS, V1_DEFAULT_QUERY_LIMIT } from "../domain/user-queries.js";
import { createOrgHandlers } from "./org-handlers.js";
import { createMachineSecretHandlers } from "./machine-secret-handlers.js";
import { createLockoutHandlersV1 } from "./lockout-handlers.js";
import { changeDetailsV1, objectDetailsV1, userToV1 } from "./convert.js";
import { createPasswordHandlersV1 } from "./password-handlers.js";
import { changeToPb, listDetailsV1, listOffset, userFilters, userSortField } from "./user-reads.js";

interface ProfileFields {
  firstName: string;
  lastName: string;
  nickName: string;
  displayName: string;
  preferredLanguage: string;
  gender: number;
}

/** The v1 profile (AddHumanUser, ImportHumanUser) as the domain takes it. */
function profileOf(profile: ProfileFields) {
  return {
    givenName: profile.firstName,
    familyName: profile.lastName,
    nickName: profile.nickName,
    displayName: profile.displayName,
    preferredLanguage: profile.preferredLanguage,
    gender: profile.gender,
  };
}

function phoneOf(phone: { phone: string; isPhoneVerified: boolean } | undefined) {
  if (!phone) return undefined;
  return { number: phone.phone, verification: phone.isPhoneVerified ? ("verified" as const) : ("send" as const) };
}

/**
 * The request-shape (PGV) rules of v1 ImportHumanUserRequest and what they let through, as the
 * user commands take it: shared by ImportHumanUser and admin ImportData's human users.
 */
/**
 * ImportHumanUser's request as the domain's creation input (also ImportData's users); its PGV
 * rules were checked with the request before.
 */
export function importHumanInput(req: ImportHumanUserRequest): Omit<CreateHumanInput, "instanceId" | "orgId" | "creator"> {
  const email = req.email!;
  const phone = phoneOf(req.phone);
  const hash = req.hashedPassword?.value ?? "";
  if (req.password !== "" && hash !== "") {
    throw RequestErrors.passwordAndHashBoth();
  }
  if (req.recoveryCodes.length > 0) {
    throw UserCreationErrors.recoveryCodesUnsupported();
  }
  return {
    path: "v1-import",
    username: req.userName,
    profile: profileOf(req.profile!),
    email: { address: email.email, verification: email.isEmailVerified ? { kind: "verified" } : { kind: "send" } },
    ...(phone ? { phone } : {}),
    ...(req.password !== "" ? { password: { plain: req.password } } : hash !== "" ? { password: { encodedHash: hash } } : {}),
    passwordChangeRequired: req.passwordChangeRequired,
    passwordlessRegistration: req.requestPasswordlessRegistration,
    idpLinks: req.idps.map((idp) => ({ idpId: idp.configId, externalUserId: idp.externalUserId, displayName: idp.displayName })),
  };
}

/** `zitadel.management.v1.ManagementService`: the v1 user RPCs. */
export function createManagementService(deps: ServiceDeps): ServiceImpl<typeof ManagementService> {
  const { access, userCreation: users, userStates: states, userQueries: queries, userChanges: changes, orgs, idps } = deps;
  /** The v1 state changes: on a user of the context organisation, answered with its details. */
  const stateChange = (transition: keyof UserStateCommands) => async (req: { id: string }, ctx: HandlerContext) => {
    const target = await access.target(ctx);
    return { details: changeDetailsV1(await states[transition]({ ...target, api: "v1" }, req.id)) };
  };

  return {
    ...createOrgHandlers(deps),
    ...createPasswordHandlersV1(deps),
    ...createLockoutHandlersV1(deps),
    ...createMachineSecretHandlers(deps),
    deactivateUser: stateChange("deactivate"),
    reactivateUser: stateChange("reactivate"),
    lockUser: stateChange("lock"),
    unlockUser: stateChange("unlock"),
    removeUser: stateChange("remove"),

    /** A new init code for a user of the context organisation still in state INITIAL. */
    async resendHumanInitialization(req, ctx) {
      const target = await access.target(ctx);
      const user = await changes.resendInitialization({ ...target, api: "v1" }, req.userId, req.email);
      return create(ResendHumanInitializationResponseSchema, { details: changeDetailsV1(user) });
    },

    /** A generic OIDC provider of the context organisation; its secret is sealed and never returned. */
    async addGenericOIDCProvider(req, ctx) {
      const target = await access.target(ctx);
      const options = req.providerOptions;
      const idp = await idps.addOidcProvider(target, {
        name: req.name,
        issuer: req.issuer,
        clientId: req.clientId,
        clientSecret: req.clientSecret,
        scopes: req.scopes,
        isIdTokenMapping: req.isIdTokenMapping,
        usePkce: req.usePkce,
        options: {
          isLinkingAllowed: options?.isLinkingAllowed ?? false,
          isCreationAllowed: options?.isCreationAllowed ?? false,
          isAutoCreation: options?.isAutoCreation ?? false,
          isAutoUpdate: options?.isAutoUpdate ?? false,
          autoLinking: options?.autoLinking ?? 0,
        },
      });
      return create(AddGenericOIDCProviderResponseSchema, { id: idp.id, details: idpDetails(idp) });
    },

    /** The providers of the context organisation and of the instance. */
    async listProviders(req, ctx) {
      const target = await access.target(ctx);
      // The PGV rules (enum values defined, lengths) were checked before the handler runs.
      const filters = req.queries.map((query): ProviderFilter => {
        const q = query.query;
        switch (q.case) {
          case "idpIdQuery":
            return { kind: "id", id: q.value.id };
          case "idpNameQuery":
            return { kind: "name", name: q.value.name, method: TEXT_METHODS[q.value.method]! };
          case "ownerTypeQuery": {
            const owner = q.value.ownerType;
            return {
              kind: "owner",
              owner: owner === IDPOwnerType.IDP_OWNER_TYPE_SYSTEM ? "system" : owner === IDPOwnerType.IDP_OWNER_TYPE_ORG ? "org" : undefined,
            };
          }
          default:
            // An empty query matches everything, as an unset oneof adds no condition in ZITADEL.
            return { kind: "name", name: "", method: "startsWith" };
        }
      });
      const page = await idps.listProviders(target.instanceId, target.orgId, filters, {
        offset: listOffset(req.query?.offset ?? 0n),
        limit: queryLimit(req.query?.limit ?? 0, V1_DEFAULT_QUERY_LIMIT),
        asc: req.query?.asc ?? false,
      });
      return create(ListProvidersResponseSchema, {
        details: listDetailsV1(page.total, Date.now()),
        result: page.idps.map((idp) => providerToPb(idp, target.orgId)),
      });
    },

    async getProviderByID(req, ctx) {
      const target = await access.target(ctx);
      const idp = await idps.getProvider(target.instanceId, target.orgId, req.id);
      return create(GetProviderByIDResponseSchema, { idp: providerToPb(idp, target.orgId) });
    },

    /** The links of a user of the context organisation; of no user, none. */
    async listHumanLinkedIDPs(req, ctx) {
      const target = await access.target(ctx);
      const user = await users.getUser(target.instanceId, target.orgId, req.userId).catch(() => undefined);
      const links = user ? await changes.listIdpLinks(target.instanceId, user.id) : [];
      if (!req.query?.asc) links.reverse();
      const offset = listOffset(req.query?.offset ?? 0n);
      const limit = queryLimit(req.query?.limit ?? 0, V1_DEFAULT_QUERY_LIMIT);
      return create(ListHumanLinkedIDPsResponseSchema, {
        details: listDetailsV1(links.length, Date.now()),
        result: links.slice(offset, offset + limit).map((link) => ({
          userId: req.userId,
          idpId: link.idpId,
          idpName: link.idp?.name ?? "",
          providedUserId: link.externalUserId,
          providedUserName: link.displayName,
          idpType: link.idp ? IDPType.IDP_TYPE_OIDC : IDPType.IDP_TYPE_UNSPECIFIED,
        })),
      });
    },

    async removeHumanLinkedIDP(req, ctx) {
      const target = await access.target(ctx);
      const user = await changes.removeIdpLink({ ...target, api: "v1" }, req.userId, req.idpId, req.linkedUserId);
      return create(RemoveHumanLinkedIDPResponseSchema, { details: changeDetailsV1(user) });
    },

    async setUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      const user = await changes.setMetadata({ ...target, api: "v1" }, req.id, [{ key: req.key, value: req.value }], false);
      return create(SetUserMetadataResponseSchema, { details: changeDetailsV1(user) });
    },

    async bulkSetUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      const entries = req.metadata.map((entry) => ({ key: entry.key, value: entry.value }));
      const user = await changes.setMetadata({ ...target, api: "v1" }, req.id, entries, true);
      return create(BulkSetUserMetadataResponseSchema, { details: changeDetailsV1(user) });
    },

    /** The metadata of a user of the context organisation, by key; of no user, none. */
    async listUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      // PGV (MetadataQuery's required oneof, a defined method) has run: every query is a key query.
      const filters = req.queries.map((query) => {
        const keyQuery = query.query.value!;
        return { key: keyQuery.key, method: TEXT_METHODS[keyQuery.method]! };
      });
      const entries = (await changes.listMetadata(target, req.id)).filter((entry) =>
        filters.every((filter) => textMatches(entry.key, filter.key, filter.method)),
      );
      if (!req.query?.asc) entries.reverse();
      const offset = listOffset(req.query?.offset ?? 0n);
      const limit = queryLimit(req.query?.limit ?? 0, V1_DEFAULT_QUERY_LIMIT);
      return create(ListUserMetadataResponseSchema, {
        details: listDetailsV1(entries.length, Date.now()),
        result: entries.slice(offset, offset + limit).map((entry) => metadataToPb(entry, target.orgId)),
      });
    },

    async getUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      const entry = await changes.getMetadata(target, req.id, req.key);
      return create(GetUserMetadataResponseSchema, { metadata: metadataToPb(entry, target.orgId) });
    },

    async removeUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      const user = await changes.removeMetadata({ ...target, api: "v1" }, req.id, [req.key], false);
      return create(RemoveUserMetadataResponseSchema, { details: changeDetailsV1(user) });
    },

    async bulkRemoveUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      const user = await changes.removeMetadata({ ...target, api: "v1" }, req.id, req.keys, true);
      return create(BulkRemoveUserMetadataResponseSchema, { details: changeDetailsV1(user) });
    },

    async updateUserName(req, ctx) {
      const target = await access.target(ctx);
      const user = await changes.changeUsername({ ...target, api: "v1" }, req.userId, req.userName);
      return create(UpdateUserNameResponseSchema, { details: changeDetailsV1(user) });
    },

    async importHumanUser(req, ctx) {
      // Authorisation and then the PGV rules (profile and email required) ran before, as in ZITADEL.
      const target = await access.target(ctx);
      // otp_code is ignored, as ZITADEL's ImportHumanUser ignores it.
      const created = await users.createHuman({ ...target, ...importHumanInput(req) });
      const passwordless = created.passwordless && {
        link: created.passwordless.link,
        lifetime: durationFromMs(created.passwordless.expirySeconds * 1000),
        expiration: durationFromMs(created.passwordless.expirySeconds * 1000),
      };
      return create(ImportHumanUserResponseSchema, {
        userId: created.user.id,
        details: objectDetailsV1(created.user),
        ...(passwordless ? { passwordlessRegistration: passwordless } : {}),
      });
    },

    async addHumanUser(req, ctx) {
      const target = await access.target(ctx);
      const profile = profileOf(req.profile!);
      const email = req.email!;
      const phone = phoneOf(req.phone);
      const created = await users.createHuman({
        path: "v1-add",
        ...target,
        username: req.userName,
        profile,
        email: { address: email.email, verification: email.isEmailVerified ? { kind: "verified" } : { kind: "send" } },
        ...(phone ? { phone } : {}),
        ...(req.initialPassword !== "" ? { password: { plain: req.initialPassword } } : {}),
        passwordChangeRequired: true,
        passwordlessRegistration: false,
      });
      return create(AddHumanUserResponseSchema, { userId: created.user.id, details: objectDetailsV1(created.user) });
    },

    async getUserByID(req, ctx) {
      const target = await access.target(ctx);
      const user = await users.getUser(target.instanceId, target.orgId, req.id);
      return create(GetUserByIDResponseSchema, { user: userToV1(user) });
    },

    /** The users of the context organisation matching every query; v1's default limit is its maximum. */
    async listUsers(req, ctx) {
      const target = await access.target(ctx);
      const filters = userFilters(req.queries, "v1");
      const limit = queryLimit(req.query?.limit ?? 0, V1_DEFAULT_QUERY_LIMIT);
      const page = await queries.listOrgUsers({
        instanceId: target.instanceId,
        orgId: target.orgId,
        filters,
        sort: userSortField(req.sortingColumn, "v1"),
        asc: req.query?.asc ?? false,
        offset: listOffset(req.query?.offset ?? 0n),
        limit,
      });
      return create(ListUsersResponseSchema, { details: listDetailsV1(page.total, Date.now()), result: page.users.map(userToV1) });
    },

    /** The audit trail of a user of the context organisation, also after its removal. */
    async listUserChanges(req, ctx) {
      const target = await access.target(ctx);
      const limit = queryLimit(req.query?.limit ?? 0, V1_DEFAULT_QUERY_LIMIT);
      const changes = await queries.userChanges(target.instanceId, target.orgId, req.userId, {
        after: listOffset(req.query?.sequence ?? 0n),
        limit,
        asc: req.query?.asc ?? false,
      });
      return create(ListUserChangesResponseSchema, { result: changes.map(changeToPb) });
    },

    /** Instance-wide, or within the organisation when its domain policy scopes usernames to it. */
    async isUserUnique(req, ctx) {
      const target = await access.target(ctx);
      // As in ZITADEL: instance-wide, unless the organisation's domain policy scopes usernames to it.
      const org = await orgs.getOrg(target.instanceId, target.orgId);
      const isUnique = await queries.isUserUnique(target.instanceId, req.userName, req.email, org.userLoginMustBeDomain ? target.orgId : undefined);
      return create(IsUserUniqueResponseSchema, { isUnique });
    },
  };
}

/** `zitadel.v1.ObjectDetails` of a provider: its owner's (an organisation's, or the instance's). */
function idpDetails(idp: Idp) {
  return create(ObjectDetailsSchema, {
    sequence: BigInt(idp.sequence),
    creationDate: timestampFromMs(idp.createdAt),
    changeDate: timestampFromMs(idp.changedAt),
    resourceOwner: idp.orgId === "" ? idp.instanceId : idp.orgId,
  });
}

/** `zitadel.idp.v1.Provider`, without the client secret. */
function providerToPb(idp: Idp, orgId: string): Provider {
  return create(ProviderSchema, {
    id: idp.id,
    details: idpDetails(idp),
    state: idp.state === "ACTIVE" ? IDPState.IDP_STATE_ACTIVE : IDPState.IDP_STATE_INACTIVE,
    name: idp.name,
    owner:
      idp.orgId === "" ? IDPOwnerType.IDP_OWNER_TYPE_SYSTEM : idp.orgId === orgId ? IDPOwnerType.IDP_OWNER_TYPE_ORG : IDPOwnerType.IDP_OWNER_TYPE_UNSPECIFIED,
    type: ProviderType.OIDC,
    config: {
      options: idp.options,
      config: {
        case: "oidc",
        value: {
          issuer: idp.issuer,
          clientId: idp.clientId,
          scopes: idp.scopes,
          isIdTokenMapping: idp.isIdTokenMapping,
          usePkce: idp.usePkce,
        },
      },
    },
  });
}

/** `zitadel.metadata.v1.Metadata` of a user's entry. */
function metadataToPb(entry: StoredMetadata, orgId: string): Metadata {
  return create(MetadataSchema, {
    key: entry.key,
    value: entry.value,
    details: create(ObjectDetailsSchema, {
      sequence: BigInt(entry.sequence),
      creationDate: timestampFromMs(entry.createdAt),
      changeDate: timestampFromMs(entry.changedAt),
      resourceOwner: orgId,
    }),
  });
}
