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
import { invalidArgument, DomainError } from "../domain/errors.js";
import { IDPOwnerType, IDPState, IDPType, type Provider, ProviderSchema, ProviderType } from "../../gen/zitadel/idp_pb.js";
import { ObjectDetailsSchema } from "../../gen/zitadel/object_pb.js";
import { type Metadata, MetadataSchema } from "../../gen/zitadel/metadata_pb.js";
import { type Idp, type ProviderFilter, textMatches } from "../domain/idps.js";
import type { StoredMetadata } from "../domain/ports.js";
import type { UserStateCommands } from "../domain/user-states.js";
import type { CreateHumanInput } from "../domain/users.js";
import { queryLimit, TEXT_METHODS, V1_DEFAULT_QUERY_LIMIT } from "../domain/user-queries.js";
import { createOrgHandlers } from "./org-handlers.js";
import { createLockoutHandlersV1 } from "./lockout-handlers.js";
import { changeDetailsV1, objectDetailsV1, userToV1 } from "./convert.js";
import { checkBytes, checkLength, checkPrefix, embedded, required } from "./input-rules.js";
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

/** PGV limits of the v1 profile, shared by AddHumanUser and ImportHumanUser. */
function checkProfile(profile: ProfileFields, message: string) {
  checkLength(profile.firstName, 1, 200, `${message}.FirstName`);
  checkLength(profile.lastName, 1, 200, `${message}.LastName`);
  checkLength(profile.nickName, 0, 200, `${message}.NickName`);
  checkLength(profile.displayName, 0, 200, `${message}.DisplayName`);
  checkLength(profile.preferredLanguage, 0, 10, `${message}.PreferredLanguage`);
  return {
    givenName: profile.firstName,
    familyName: profile.lastName,
    nickName: profile.nickName,
    displayName: profile.displayName,
    preferredLanguage: profile.preferredLanguage,
    gender: profile.gender,
  };
}

function checkPhone(phone: { phone: string; isPhoneVerified: boolean } | undefined, message: string) {
  if (!phone) return undefined;
  checkLength(phone.phone, 1, 50, `${message}.Phone`);
  checkPrefix(phone.phone, "+", `${message}.Phone`);
  return { number: phone.phone, verification: phone.isPhoneVerified ? ("verified" as const) : ("send" as const) };
}

/**
 * The request-shape (PGV) rules of v1 ImportHumanUserRequest and what they let through, as the
 * user commands take it: shared by ImportHumanUser and admin ImportData's human users.
 */
export function importHumanInput(req: ImportHumanUserRequest): Omit<CreateHumanInput, "instanceId" | "orgId" | "creator"> {
  checkLength(req.userName, 1, 200, "ImportHumanUserRequest.UserName");
  const requestedProfile = required(req.profile, "ImportHumanUserRequest.Profile");
  const profile = embedded("ImportHumanUserRequest.Profile", () => checkProfile(requestedProfile, "ImportHumanUserRequest_Profile"));
  const email = required(req.email, "ImportHumanUserRequest.Email");
  embedded("ImportHumanUserRequest.Email", () => checkLength(email.email, 1, 200, "ImportHumanUserRequest_Email.Email"));
  const phone = embedded("ImportHumanUserRequest.Phone", () => checkPhone(req.phone, "ImportHumanUserRequest_Phone"));
  req.idps.forEach((idp, i) =>
    embedded(`ImportHumanUserRequest.Idps[${i}]`, () => {
      checkLength(idp.configId, 1, 200, "ImportHumanUserRequest_IDP.ConfigId");
      checkLength(idp.externalUserId, 1, 200, "ImportHumanUserRequest_IDP.ExternalUserId");
      checkLength(idp.displayName, 0, 200, "ImportHumanUserRequest_IDP.DisplayName");
    }),
  );
  const hash = req.hashedPassword?.value ?? "";
  if (req.password !== "" && hash !== "") {
    throw invalidArgument("", "invalid ImportHumanUserRequest: set either password or hashedPassword, not both");
  }
  if (req.recoveryCodes.length > 0) {
    throw new DomainError("Unimplemented", "", "recovery codes cannot be imported yet");
  }
  return {
    path: "v1-import",
    username: req.userName,
    profile,
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
  const stateChange =
    (transition: keyof UserStateCommands, request: string) => async (req: { id: string }, ctx: HandlerContext) => {
      const target = await access.target(ctx);
      checkLength(req.id, 1, 200, `${request}.Id`);
      return { details: changeDetailsV1(await states[transition]({ ...target, api: "v1" }, req.id)) };
    };

  return {
    ...createOrgHandlers(deps),
    ...createPasswordHandlersV1(deps),
    ...createLockoutHandlersV1(deps),
    deactivateUser: stateChange("deactivate", "DeactivateUserRequest"),
    reactivateUser: stateChange("reactivate", "ReactivateUserRequest"),
    lockUser: stateChange("lock", "LockUserRequest"),
    unlockUser: stateChange("unlock", "UnlockUserRequest"),
    removeUser: stateChange("remove", "RemoveUserRequest"),

    /** A new init code for a user of the context organisation still in state INITIAL. */
    async resendHumanInitialization(req, ctx) {
      const target = await access.target(ctx);
      checkLength(req.userId, 1, 200, "ResendHumanInitializationRequest.UserId");
      const user = await changes.resendInitialization({ ...target, api: "v1" }, req.userId, req.email);
      return create(ResendHumanInitializationResponseSchema, { details: changeDetailsV1(user) });
    },

    /** A generic OIDC provider of the context organisation; its secret is sealed and never returned. */
    async addGenericOIDCProvider(req, ctx) {
      const target = await access.target(ctx);
      checkLength(req.name, 1, 200, "AddGenericOIDCProviderRequest.Name");
      checkLength(req.issuer, 1, 200, "AddGenericOIDCProviderRequest.Issuer");
      checkLength(req.clientId, 1, 200, "AddGenericOIDCProviderRequest.ClientId");
      checkLength(req.clientSecret, 1, 1000, "AddGenericOIDCProviderRequest.ClientSecret");
      if (req.scopes.length > 20) {
        throw invalidArgument("", "invalid AddGenericOIDCProviderRequest.Scopes: value must contain no more than 20 item(s)");
      }
      req.scopes.forEach((scope, i) => checkLength(scope, 1, 100, `AddGenericOIDCProviderRequest.Scopes[${i}]`));
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
      const filters = req.queries.map((query, i): ProviderFilter => {
        const q = query.query;
        switch (q.case) {
          case "idpIdQuery":
            checkLength(q.value.id, 0, 200, `ProviderQuery.IdpIdQuery[${i}].Id`);
            return { kind: "id", id: q.value.id };
          case "idpNameQuery": {
            checkLength(q.value.name, 0, 200, `ProviderQuery.IdpNameQuery[${i}].Name`);
            const method = TEXT_METHODS[q.value.method];
            if (method === undefined) throw invalidArgument("", "invalid IDPNameQuery.Method: value must be one of the defined enum values");
            return { kind: "name", name: q.value.name, method };
          }
          case "ownerTypeQuery": {
            const owner = q.value.ownerType;
            if (owner < 0 || owner > 2) throw invalidArgument("", "invalid IDPOwnerTypeQuery.OwnerType: value must be one of the defined enum values");
            return { kind: "owner", owner: owner === IDPOwnerType.IDP_OWNER_TYPE_SYSTEM ? "system" : owner === IDPOwnerType.IDP_OWNER_TYPE_ORG ? "org" : undefined };
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
      checkLength(req.id, 1, 200, "GetProviderByIDRequest.Id");
      const idp = await idps.getProvider(target.instanceId, target.orgId, req.id);
      return create(GetProviderByIDResponseSchema, { idp: providerToPb(idp, target.orgId) });
    },

    /** The links of a user of the context organisation; of no user, none. */
    async listHumanLinkedIDPs(req, ctx) {
      const target = await access.target(ctx);
      checkLength(req.userId, 1, 200, "ListHumanLinkedIDPsRequest.UserId");
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
      checkLength(req.userId, 1, 200, "RemoveHumanLinkedIDPRequest.UserId");
      checkLength(req.idpId, 1, 200, "RemoveHumanLinkedIDPRequest.IdpId");
      checkLength(req.linkedUserId, 1, 200, "RemoveHumanLinkedIDPRequest.LinkedUserId");
      const user = await changes.removeIdpLink({ ...target, api: "v1" }, req.userId, req.idpId, req.linkedUserId);
      return create(RemoveHumanLinkedIDPResponseSchema, { details: changeDetailsV1(user) });
    },

    async setUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      checkLength(req.id, 1, 200, "SetUserMetadataRequest.Id");
      checkLength(req.key, 1, 200, "SetUserMetadataRequest.Key");
      checkBytes(req.value, 1, 500000, "SetUserMetadataRequest.Value");
      const user = await changes.setMetadata({ ...target, api: "v1" }, req.id, [{ key: req.key, value: req.value }], false);
      return create(SetUserMetadataResponseSchema, { details: changeDetailsV1(user) });
    },

    async bulkSetUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      checkLength(req.id, 1, 200, "BulkSetUserMetadataRequest.Id");
      req.metadata.forEach((entry, i) =>
        embedded(`BulkSetUserMetadataRequest.Metadata[${i}]`, () => {
          checkLength(entry.key, 1, 200, "BulkSetUserMetadataRequest_Metadata.Key");
          checkBytes(entry.value, 1, 500000, "BulkSetUserMetadataRequest_Metadata.Value");
        }),
      );
      const entries = req.metadata.map((entry) => ({ key: entry.key, value: entry.value }));
      const user = await changes.setMetadata({ ...target, api: "v1" }, req.id, entries, true);
      return create(BulkSetUserMetadataResponseSchema, { details: changeDetailsV1(user) });
    },

    /** The metadata of a user of the context organisation, by key; of no user, none. */
    async listUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      checkLength(req.id, 1, 200, "ListUserMetadataRequest.Id");
      const filters = req.queries.map((query) => {
        if (query.query.case !== "keyQuery") throw invalidArgument("", "invalid MetadataQuery.Query: value is required");
        checkLength(query.query.value.key, 0, 200, "MetadataKeyQuery.Key");
        const method = TEXT_METHODS[query.query.value.method];
        if (method === undefined) throw invalidArgument("", "invalid MetadataKeyQuery.Method: value must be one of the defined enum values");
        return { key: query.query.value.key, method };
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
      checkLength(req.id, 1, 200, "GetUserMetadataRequest.Id");
      checkLength(req.key, 1, 200, "GetUserMetadataRequest.Key");
      const entry = await changes.getMetadata(target, req.id, req.key);
      return create(GetUserMetadataResponseSchema, { metadata: metadataToPb(entry, target.orgId) });
    },

    async removeUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      checkLength(req.id, 1, 200, "RemoveUserMetadataRequest.Id");
      checkLength(req.key, 1, 200, "RemoveUserMetadataRequest.Key");
      const user = await changes.removeMetadata({ ...target, api: "v1" }, req.id, [req.key], false);
      return create(RemoveUserMetadataResponseSchema, { details: changeDetailsV1(user) });
    },

    async bulkRemoveUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      checkLength(req.id, 1, 200, "BulkRemoveUserMetadataRequest.Id");
      req.keys.forEach((key, i) => checkLength(key, 1, 200, `BulkRemoveUserMetadataRequest.Keys[${i}]`));
      const user = await changes.removeMetadata({ ...target, api: "v1" }, req.id, req.keys, true);
      return create(BulkRemoveUserMetadataResponseSchema, { details: changeDetailsV1(user) });
    },

    async updateUserName(req, ctx) {
      const target = await access.target(ctx);
      checkLength(req.userId, 1, 200, "UpdateUserNameRequest.UserId");
      checkLength(req.userName, 1, 200, "UpdateUserNameRequest.UserName");
      const user = await changes.changeUsername({ ...target, api: "v1" }, req.userId, req.userName);
      return create(UpdateUserNameResponseSchema, { details: changeDetailsV1(user) });
    },

    async importHumanUser(req, ctx) {
      // As in ZITADEL, authorisation (organisation, permission) runs before the PGV rules.
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
      checkLength(req.userName, 1, 200, "AddHumanUserRequest.UserName");
      const requestedProfile = required(req.profile, "AddHumanUserRequest.Profile");
      const profile = embedded("AddHumanUserRequest.Profile", () => checkProfile(requestedProfile, "AddHumanUserRequest_Profile"));
      const email = required(req.email, "AddHumanUserRequest.Email");
      embedded("AddHumanUserRequest.Email", () => checkLength(email.email, 1, 200, "AddHumanUserRequest_Email.Email"));
      const phone = embedded("AddHumanUserRequest.Phone", () => checkPhone(req.phone, "AddHumanUserRequest_Phone"));
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
      checkLength(req.id, 1, 200, "GetUserByIDRequest.Id");
      const user = await users.getUser(target.instanceId, target.orgId, req.id);
      return create(GetUserByIDResponseSchema, { user: userToV1(user) });
    },

    /** The users of the context organisation matching every query; v1's default limit is its maximum. */
    async listUsers(req, ctx) {
      const target = await access.target(ctx);
      const filters = userFilters(req.queries, "v1", "ListUsersRequest");
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
      checkLength(req.userId, 1, 200, "ListUserChangesRequest.UserId");
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
      checkLength(req.userName, 0, 200, "IsUserUniqueRequest.UserName");
      checkLength(req.email, 0, 200, "IsUserUniqueRequest.Email");
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
    owner: idp.orgId === "" ? IDPOwnerType.IDP_OWNER_TYPE_SYSTEM : idp.orgId === orgId ? IDPOwnerType.IDP_OWNER_TYPE_ORG : IDPOwnerType.IDP_OWNER_TYPE_UNSPECIFIED,
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
