import { RequestErrors, UserCreationErrors } from "../domain/error-catalogue.js";
import type { ServiceDeps } from "./service-deps.js";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
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
  ResendHumanInitializationResponseSchema,
  UpdateUserNameResponseSchema,
} from "../../gen/zitadel/management_pb.js";
import type { UserStateCommands } from "../domain/user-states.js";
import type { CreateHumanInput } from "../domain/users.js";
import { queryLimit, V1_DEFAULT_QUERY_LIMIT } from "../domain/user-queries.js";
import type { Target } from "../domain/authentication.js";
import { changeDetailsV1, objectDetailsV1, userToV1 } from "./convert.js";
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
 * ImportHumanUser's request as the domain's creation input (also ImportData's users); its PGV
 * rules were checked with the request before.
 */
export function importHumanInput(req: ImportHumanUserRequest): Omit<CreateHumanInput, keyof Target> {
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

/** Management v1: the users of the context organisation (creation, state, username, reads). */
export function createUserHandlersV1(
  deps: ServiceDeps,
): Pick<
  ServiceImpl<typeof ManagementService>,
  | "deactivateUser"
  | "reactivateUser"
  | "lockUser"
  | "unlockUser"
  | "removeUser"
  | "resendHumanInitialization"
  | "updateUserName"
  | "importHumanUser"
  | "addHumanUser"
  | "getUserByID"
  | "listUsers"
  | "listUserChanges"
  | "isUserUnique"
> {
  const { access, userCreation: users, userStates: states, userQueries: queries, userChanges: changes, orgs } = deps;
  /** The v1 state changes: on a user of the context organisation, answered with its details. */
  const stateChange = (transition: keyof UserStateCommands) => async (req: { id: string }, ctx: HandlerContext) => {
    const target = await access.target(ctx);
    return { details: changeDetailsV1(await states[transition]({ ...target, api: "v1" }, req.id)) };
  };

  return {
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
