import type { ServiceDeps } from "./service-deps.js";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { IDPLink } from "../../gen/zitadel/user/v2/idp_pb.js";
import type { SetHumanEmail } from "../../gen/zitadel/user/v2/email_pb.js";
import type { SetHumanPhone } from "../../gen/zitadel/user/v2/phone_pb.js";
import type { SetHumanProfile } from "../../gen/zitadel/user/v2/user_pb.js";
import {
  type AddHumanUserRequest,
  AddHumanUserResponseSchema,
  AddIDPLinkResponseSchema,
  CreateUserResponseSchema,
  ListIDPLinksResponseSchema,
  RemoveIDPLinkResponseSchema,
  GetUserByIDResponseSchema,
  ListUsersResponseSchema,
  ResendEmailCodeResponseSchema,
  ResendPhoneCodeResponseSchema,
  SetEmailResponseSchema,
  SetPhoneResponseSchema,
  type UserService,
  VerifyEmailResponseSchema,
  VerifyPhoneResponseSchema,
} from "../../gen/zitadel/user/v2/user_service_pb.js";
import type { User } from "../domain/ports.js";
import type { CodeDelivery, } from "../domain/verification.js";
import { requireCommandPermission, requireSelfOrPermission } from "../domain/access.js";
import { DomainError, invalidArgument } from "../domain/errors.js";
import type { EmailVerification } from "../domain/users.js";
import type { ChangeTarget, UserStateCommands } from "../domain/user-states.js";
import { DEFAULT_QUERY_LIMIT, queryLimit, } from "../domain/user-queries.js";
import { principalKey } from "./access.js";
import { changeDetailsV2, detailsV2, readDetailsV2, userToV2 } from "./convert.js";
import { checkBytes, checkLength, embedded, required } from "./input-rules.js";
import { createPasswordHandlersV2 } from "./password-handlers.js";
import { listDetailsV2, listOffset, userFilters, userSortField } from "./user-reads.js";

/** `zitadel.user.v2.UserService`: the v2 user RPCs. */
export function createUserService(deps: ServiceDeps): ServiceImpl<typeof UserService> {
  const { access, userCreation: users, userStates: states, userQueries: queries, userChanges: changes, verification } = deps;
  /** Where a v2 email or phone command acts: the user of any organisation the caller may write. */
  const contactTarget = (ctx: HandlerContext, checkPermission: boolean) => {
    const principal = ctx.values.get(principalKey)!;
    return {
      instanceId: principal.instanceId,
      orgId: undefined,
      creator: principal.userId,
      api: "v2" as const,
      ...(checkPermission
        ? {
            authorize: (user: { id: string; orgId: string }) => requireSelfOrPermission(principal, "user.write", user),
          }
        : {}),
    };
  };

  /** How a request wants its new code delivered, with PGV's checks of the template and flag. */
  const delivery = (
    verification: { case: "sendCode"; value: object } | { case: "returnCode" } | { case: "isVerified"; value: boolean } | { case: undefined },
    request: string,
  ): CodeDelivery => {
    if (verification.case === "returnCode") return { kind: "return" };
    if (verification.case === "isVerified") {
      if (!verification.value) throw invalidArgument("", `invalid ${request}.IsVerified: value must equal true`);
      return { kind: "verified" };
    }
    // Only the email's SendCode carries a template; the phone's is empty.
    const urlTemplate =
      verification.case === "sendCode" ? (verification.value as { urlTemplate?: string }).urlTemplate : undefined;
    if (urlTemplate !== undefined) {
      embedded(`${request}.SendCode`, () => checkLength(urlTemplate, 1, 200, "SendEmailVerificationCode.UrlTemplate"));
    }
    return { kind: "send", ...(urlTemplate !== undefined ? { urlTemplate } : {}) };
  };

  const codeResponse = (result: { user: User; code?: string }) => ({
    details: changeDetailsV2(result.user),
    ...(result.code !== undefined ? { verificationCode: result.code } : {}),
  });
  /**
   * Where a v2 change of a user acts: any organisation, checked against the caller's
   * `permission` on the user's own organisation once the user is found; users may change
   * themselves (ZITADEL's checkPermissionUpdateUser).
   */
  const v2Target = (ctx: HandlerContext, permission: string): ChangeTarget => {
    const principal = ctx.values.get(principalKey)!;
    return {
      instanceId: principal.instanceId,
      orgId: undefined,
      creator: principal.userId,
      api: "v2",
      authorize: (user) => requireSelfOrPermission(principal, permission, user),
    };
  };

  /**
   * The v2 state changes: on a user of any organisation, checked against the caller's permission
   * on the user's own organisation, as ZITADEL's command layer does.
   */
  const stateChange =
    (transition: keyof UserStateCommands, permission: string, request: string) =>
    async (req: { userId: string }, ctx: HandlerContext) => {
      checkLength(req.userId, 1, 200, `${request}.UserId`);
      const principal = ctx.values.get(principalKey)!;
      const user = await states[transition](
        {
          instanceId: principal.instanceId,
          orgId: undefined,
          creator: principal.userId,
          api: "v2",
          authorize: (user) =>
            // ZITADEL lets a user change its own state (checkPermissionUpdateUser allows self), not delete itself.
            permission === "user.write"
              ? requireSelfOrPermission(principal, permission, user)
              : requireCommandPermission(principal, permission, user.orgId),
        },
        req.userId,
      );
      return { details: changeDetailsV2(user) };
    };

  return {
    ...createPasswordHandlersV2(deps),
    async setEmail(req, ctx) {
      checkLength(req.userId, 1, 200, "SetEmailRequest.UserId");
      checkLength(req.email, 1, 200, "SetEmailRequest.Email");
      const how = delivery(req.verification, "SetEmailRequest");
      return create(SetEmailResponseSchema, codeResponse(await verification.setEmail(contactTarget(ctx, true), req.userId, req.email, how)));
    },
    async resendEmailCode(req, ctx) {
      checkLength(req.userId, 1, 200, "ResendEmailCodeRequest.UserId");
      const how = delivery(req.verification, "ResendEmailCodeRequest") as Exclude<CodeDelivery, { kind: "verified" }>;
      return create(ResendEmailCodeResponseSchema, codeResponse(await verification.resendEmailCode(contactTarget(ctx, true), req.userId, how)));
    },
    async verifyEmail(req, ctx) {
      checkLength(req.userId, 1, 200, "VerifyEmailRequest.UserId");
      checkLength(req.verificationCode, 1, 20, "VerifyEmailRequest.VerificationCode");
      const user = await verification.verifyEmail(contactTarget(ctx, false), req.userId, req.verificationCode);
      return create(VerifyEmailResponseSchema, { details: changeDetailsV2(user) });
    },
    async setPhone(req, ctx) {
      checkLength(req.userId, 1, 200, "SetPhoneRequest.UserId");
      checkLength(req.phone, 1, 200, "SetPhoneRequest.Phone");
      const how = delivery(req.verification, "SetPhoneRequest");
      return create(SetPhoneResponseSchema, codeResponse(await verification.setPhone(contactTarget(ctx, true), req.userId, req.phone, how)));
    },
    async resendPhoneCode(req, ctx) {
      checkLength(req.userId, 1, 200, "ResendPhoneCodeRequest.UserId");
      const how = delivery(req.verification, "ResendPhoneCodeRequest") as Exclude<CodeDelivery, { kind: "verified" }>;
      return create(ResendPhoneCodeResponseSchema, codeResponse(await verification.resendPhoneCode(contactTarget(ctx, true), req.userId, how)));
    },
    async verifyPhone(req, ctx) {
      checkLength(req.userId, 1, 200, "VerifyPhoneRequest.UserId");
      checkLength(req.verificationCode, 1, 20, "VerifyPhoneRequest.VerificationCode");
      const user = await verification.verifyPhone(contactTarget(ctx, false), req.userId, req.verificationCode);
      return create(VerifyPhoneResponseSchema, { details: changeDetailsV2(user) });
    },

    deactivateUser: stateChange("deactivate", "user.write", "DeactivateUserRequest"),
    reactivateUser: stateChange("reactivate", "user.write", "ReactivateUserRequest"),
    lockUser: stateChange("lock", "user.write", "LockUserRequest"),
    unlockUser: stateChange("unlock", "user.write", "UnlockUserRequest"),
    deleteUser: stateChange("remove", "user.delete", "DeleteUserRequest"),

    async addHumanUser(req, ctx) {
      // As in ZITADEL, authorisation (organisation, permission) runs before the PGV rules.
      const org = req.organization?.org;
      const target = await access.target(ctx, {
        ...(org?.case === "orgId" ? { orgId: org.value } : {}),
        ...(org?.case === "orgDomain" ? { orgDomain: org.value } : {}),
      });
      if (req.userId !== undefined) checkLength(req.userId, 1, 200, "AddHumanUserRequest.UserId");
      if (req.username !== undefined) checkLength(req.username, 1, 200, "AddHumanUserRequest.Username");
      const human = checkHuman(req, "AddHumanUserRequest");
      const created = await users.createHuman({
        path: "v2",
        ...target,
        ...(req.userId !== undefined ? { userId: req.userId } : {}),
        username: req.username ?? "",
        ...human,
      });
      return create(AddHumanUserResponseSchema, {
        userId: created.user.id,
        details: detailsV2(created.user),
        ...(created.emailCode !== undefined ? { emailCode: created.emailCode } : {}),
        ...(created.phoneCode !== undefined ? { phoneCode: created.phoneCode } : {}),
      });
    },

    /**
     * The newer v2 create, for humans as AddHumanUser; the organisation is a required field and
     * the permission is checked on it by the command, as in ZITADEL (its method option only asks
     * for an authenticated caller).
     */
    async createUser(req, ctx) {
      checkLength(req.organizationId, 1, 200, "CreateUserRequest.OrganizationId");
      const target = await access.target(ctx, { orgId: req.organizationId });
      const principal = ctx.values.get(principalKey)!;
      requireCommandPermission(principal, "user.write", target.orgId);
      if (req.userId !== undefined) checkLength(req.userId, 1, 200, "CreateUserRequest.UserId");
      if (req.username !== undefined) checkLength(req.username, 1, 200, "CreateUserRequest.Username");
      const type = req.userType;
      if (type.case === undefined) throw invalidArgument("", "invalid CreateUserRequest.UserType: value is required");
      if (type.case === "machine") {
        const user = await users.createMachine({ ...target, ...checkMachine(req, type.value) });
        return create(CreateUserResponseSchema, { id: user.id, creationDate: timestampFromMs(user.createdAt) });
      }
      const human = embedded("CreateUserRequest.Human", () => checkHuman(type.value, "CreateUserRequest_Human"));
      const created = await users.createHuman({
        path: "v2",
        ...target,
        ...(req.userId !== undefined ? { userId: req.userId } : {}),
        username: req.username ?? "",
        ...human,
      });
      return create(CreateUserResponseSchema, {
        id: created.user.id,
        creationDate: timestampFromMs(created.user.createdAt),
        ...(created.emailCode !== undefined ? { emailCode: created.emailCode } : {}),
        ...(created.phoneCode !== undefined ? { phoneCode: created.phoneCode } : {}),
      });
    },

    async addIDPLink(req, ctx) {
      checkLength(req.userId, 1, 200, "AddIDPLinkRequest.UserId");
      const link = required(req.idpLink, "AddIDPLinkRequest.IdpLink");
      embedded("AddIDPLinkRequest.IdpLink", () => {
        checkLength(link.idpId, 1, 200, "IDPLink.IdpId");
        checkLength(link.userId, 1, 200, "IDPLink.UserId");
        checkLength(link.userName, 1, 200, "IDPLink.UserName");
      });
      const user = await changes.addIdpLink(v2Target(ctx, "user.write"), req.userId, {
        idpId: link.idpId,
        externalUserId: link.userId,
        displayName: link.userName,
      });
      return create(AddIDPLinkResponseSchema, { details: changeDetailsV2(user) });
    },

    /**
     * The links of a user the caller may read: its own, or with user.read on the user's
     * organisation. As ZITADEL's IDPUserLinks (internal/query/idp_user_link.go: with a user id in
     * the query, one permission check on the first link found), a caller without it gets
     * PERMISSION_DENIED when the user has links, and an empty list when there are none.
     */
    async listIDPLinks(req, ctx) {
      checkLength(req.userId, 1, 200, "ListIDPLinksRequest.UserId");
      const principal = ctx.values.get(principalKey)!;
      const user = await users.getUser(principal.instanceId, undefined, req.userId).catch(() => undefined);
      const links = user ? await changes.listIdpLinks(principal.instanceId, user.id) : [];
      if (links.length > 0) requireSelfOrPermission(principal, "user.read", user!);
      if (!req.query?.asc) links.reverse();
      const offset = listOffset(req.query?.offset ?? 0n);
      const limit = queryLimit(req.query?.limit ?? 0, DEFAULT_QUERY_LIMIT);
      return create(ListIDPLinksResponseSchema, {
        details: listDetailsV2(links.length, Date.now()),
        result: links.slice(offset, offset + limit).map((link) => ({
          idpId: link.idpId,
          userId: link.externalUserId,
          userName: link.displayName,
        })),
      });
    },

    async removeIDPLink(req, ctx) {
      checkLength(req.userId, 1, 200, "RemoveIDPLinkRequest.UserId");
      checkLength(req.idpId, 1, 200, "RemoveIDPLinkRequest.IdpId");
      checkLength(req.linkedUserId, 1, 200, "RemoveIDPLinkRequest.LinkedUserId");
      const user = await changes.removeIdpLink(v2Target(ctx, "user.write"), req.userId, req.idpId, req.linkedUserId);
      return create(RemoveIDPLinkResponseSchema, { details: changeDetailsV2(user) });
    },

    async getUserByID(req, ctx) {
      checkLength(req.userId, 1, 200, "GetUserByIDRequest.UserId");
      const principal = ctx.values.get(principalKey)!;
      const user = await users.getUser(principal.instanceId, undefined, req.userId);
      // v2 checks the permission on the user's own organisation; everyone may read themselves.
      requireSelfOrPermission(principal, "user.read", user);
      return create(GetUserByIDResponseSchema, { details: readDetailsV2(user), user: userToV2(user) });
    },

    /**
     * The users of every organisation the caller may read users of, and the caller itself, as
     * ZITADEL's permission check filters them (here in the query, so totals and pages agree).
     */
    async listUsers(req, ctx) {
      const principal = ctx.values.get(principalKey)!;
      const filters = userFilters(req.queries, "v2", "ListUsersRequest");
      const limit = queryLimit(req.query?.limit ?? 0, DEFAULT_QUERY_LIMIT);
      const page = await queries.listReadableUsers(principal, {
        filters,
        sort: userSortField(req.sortingColumn, "v2"),
        asc: req.query?.asc ?? false,
        offset: listOffset(req.query?.offset ?? 0n),
        limit,
      });
      return create(ListUsersResponseSchema, { details: listDetailsV2(page.total, Date.now()), result: page.users.map(userToV2) });
    },
  };
}

/**
 * The PGV rules of CreateUser's machine user and its conversion to the domain's input (without
 * the target); `userId` and `username` are checked by the caller.
 */
export function checkMachine(req: { userId?: string; username?: string }, machine: { name: string; description?: string }) {
  embedded("CreateUserRequest.Machine", () => {
    checkLength(machine.name, 1, 200, "CreateUserRequest_Machine.Name");
    if (machine.description !== undefined) checkLength(machine.description, 1, 500, "CreateUserRequest_Machine.Description");
  });
  return {
    ...(req.userId !== undefined ? { userId: req.userId } : {}),
    username: req.username ?? "",
    // v2: a machine without a username is named after its id (ZITADEL's AddMachineWithUsernameToIDFallback).
    usernameFallbackToId: true,
    name: machine.name,
    description: machine.description ?? "",
  };
}

/** The human fields AddHumanUser and CreateUser share. */
interface HumanFields {
  profile?: SetHumanProfile;
  email?: SetHumanEmail;
  phone?: SetHumanPhone;
  passwordType: AddHumanUserRequest["passwordType"];
  idpLinks: IDPLink[];
  metadata: Array<{ key: string; value: Uint8Array }>;
  totpSecret?: string;
}

/**
 * The PGV rules of a v2 human (`message` names it as PGV does, e.g. "AddHumanUserRequest") and
 * its conversion to the domain's creation input.
 */
export function checkHuman(req: HumanFields, message: string) {
  // AddHumanUser's entries are SetMetadataEntry messages, CreateUser's Metadata messages.
  const metadataMessage = message === "AddHumanUserRequest" ? "SetMetadataEntry" : "Metadata";
  const profile = required(req.profile, `${message}.Profile`);
  embedded(`${message}.Profile`, () => {
    checkLength(profile.givenName, 1, 200, "SetHumanProfile.GivenName");
    checkLength(profile.familyName, 1, 200, "SetHumanProfile.FamilyName");
    checkLength(profile.nickName ?? "", 0, 200, "SetHumanProfile.NickName");
    checkLength(profile.displayName ?? "", 0, 200, "SetHumanProfile.DisplayName");
    checkLength(profile.preferredLanguage ?? "", 0, 10, "SetHumanProfile.PreferredLanguage");
  });
  const email = required(req.email, `${message}.Email`);
  const urlTemplate = email.verification.case === "sendCode" ? email.verification.value.urlTemplate : undefined;
  embedded(`${message}.Email`, () => {
    checkLength(email.email, 1, 200, "SetHumanEmail.Email");
    if (urlTemplate !== undefined) {
      embedded("SetHumanEmail.SendCode", () => checkLength(urlTemplate, 1, 200, "SendEmailVerificationCode.UrlTemplate"));
    }
  });
  const requestedPhone = req.phone;
  if (requestedPhone) {
    embedded(`${message}.Phone`, () => {
      checkLength(requestedPhone.phone, 0, 200, "SetHumanPhone.Phone");
      if (requestedPhone.verification.case === "isVerified" && !requestedPhone.verification.value) {
        throw new DomainError("InvalidArgument", "", "invalid SetHumanPhone.IsVerified: value must equal true");
      }
    });
  }
  const password = req.passwordType;
  if (password.case === "password") {
    embedded(`${message}.Password`, () => checkLength(password.value.password, 1, 200, "Password.Password"));
  }
  if (password.case === "hashedPassword") {
    embedded(`${message}.HashedPassword`, () => checkLength(password.value.hash, 1, 200, "HashedPassword.Hash"));
  }
  req.idpLinks.forEach((link, i) =>
    embedded(`${message}.IdpLinks[${i}]`, () => {
      checkLength(link.idpId, 1, 200, "IDPLink.IdpId");
      checkLength(link.userId, 1, 200, "IDPLink.UserId");
      checkLength(link.userName, 1, 200, "IDPLink.UserName");
    }),
  );
  req.metadata.forEach((entry, i) =>
    embedded(`${message}.Metadata[${i}]`, () => {
      checkLength(entry.key, 1, 200, `${metadataMessage}.Key`);
      checkBytes(entry.value, 1, 500000, `${metadataMessage}.Value`);
    }),
  );
  const totpSecret = req.totpSecret;
  if (totpSecret !== undefined) {
    checkLength(totpSecret, 1, 200, `${message}.TotpSecret`);
  }
  const verification: EmailVerification =
    email.verification.case === "isVerified"
      ? { kind: email.verification.value ? "verified" : "none" }
      : email.verification.case === "returnCode"
        ? { kind: "return" }
        : { kind: "send", ...(urlTemplate !== undefined ? { urlTemplate } : {}) };
  const phone = req.phone && req.phone.phone.trim() !== "" ? req.phone : undefined;
  return {
    profile: {
      givenName: profile.givenName,
      familyName: profile.familyName,
      nickName: profile.nickName ?? "",
      displayName: profile.displayName ?? "",
      preferredLanguage: profile.preferredLanguage ?? "",
      gender: profile.gender ?? 0,
    },
    email: { address: email.email, verification },
    ...(phone
      ? {
          phone: {
            number: phone.phone,
            verification:
              phone.verification.case === "isVerified"
                ? ("verified" as const)
                : phone.verification.case === "returnCode"
                  ? ("return" as const)
                  : ("send" as const),
          },
        }
      : {}),
    ...(password.case === "password" ? { password: { plain: password.value.password } } : {}),
    ...(password.case === "hashedPassword" ? { password: { encodedHash: password.value.hash } } : {}),
    passwordChangeRequired: password.value?.changeRequired ?? false,
    passwordlessRegistration: false,
    idpLinks: req.idpLinks.map((link) => ({ idpId: link.idpId, externalUserId: link.userId, displayName: link.userName })),
    metadata: req.metadata.map((entry) => ({ key: entry.key, value: entry.value })),
    ...(totpSecret !== undefined ? { totpSecret } : {}),
  };
}
