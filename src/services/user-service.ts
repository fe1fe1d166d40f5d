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
import type { Channel, CodeDelivery } from "../domain/verification.js";
import { requireCommandPermission, requireSelfOrPermission } from "../domain/access.js";
import type { EmailVerification } from "../domain/users.js";
import type { ChangeTarget, UserStateCommands } from "../domain/user-states.js";
import { DEFAULT_QUERY_LIMIT, queryLimit } from "../domain/user-queries.js";
import { principalKey } from "../edge/access.js";
import { requestOf } from "../edge/calls.js";
import { changeDetailsV2, detailsV2, readDetailsV2, userToV2 } from "./convert.js";
import { createPasskeyHandlersV2 } from "./passkey-handlers.js";
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
      request: requestOf(ctx),
      api: "v2" as const,
      ...(checkPermission
        ? {
            authorize: (user: { id: string; orgId: string }) => requireSelfOrPermission(principal, "user.write", user),
          }
        : {}),
    };
  };

  /** How a request wants its new code delivered (PGV has refused `is_verified: false`). */
  const delivery = (
    verification: { case: "sendCode"; value: object } | { case: "returnCode" } | { case: "isVerified"; value: boolean } | { case: undefined },
  ): CodeDelivery => {
    if (verification.case === "returnCode") return { kind: "return" };
    if (verification.case === "isVerified") return { kind: "verified" };
    // Only the email's SendCode carries a template; the phone's is empty.
    const urlTemplate = verification.case === "sendCode" ? (verification.value as { urlTemplate?: string }).urlTemplate : undefined;
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
      request: requestOf(ctx),
      api: "v2",
      authorize: (user) => requireSelfOrPermission(principal, permission, user),
    };
  };

  /** A v2 human create (AddHumanUser, CreateUser): the caller's id if it chose one; an empty username falls back (src/domain/users.ts). */
  const createHumanV2 = (target: Awaited<ReturnType<typeof access.target>>, req: { userId?: string; username?: string }, human: ReturnType<typeof humanOf>) =>
    users.createHuman({ path: "v2", ...target, ...(req.userId !== undefined ? { userId: req.userId } : {}), username: req.username ?? "", ...human });
  /** The email and phone codes a create returns (those the request asked to have returned). */
  const returnedCodes = (created: { emailCode?: string; phoneCode?: string }) => ({
    ...(created.emailCode !== undefined ? { emailCode: created.emailCode } : {}),
    ...(created.phoneCode !== undefined ? { phoneCode: created.phoneCode } : {}),
  });

  /** The email and phone RPCs, one handler per step for both channels (their requests and responses have the same shape). */
  const contact = {
    async set(channel: Channel, req: { userId: string; verification: Parameters<typeof delivery>[0] }, value: string, ctx: HandlerContext) {
      return codeResponse(await verification.setContact(channel, contactTarget(ctx, true), req.userId, value, delivery(req.verification)));
    },
    async resend(channel: Channel, req: { userId: string; verification: Parameters<typeof delivery>[0] }, ctx: HandlerContext) {
      const how = delivery(req.verification) as Exclude<CodeDelivery, { kind: "verified" }>;
      return codeResponse(await verification.resendCode(channel, contactTarget(ctx, true), req.userId, how));
    },
    async verify(channel: Channel, req: { userId: string; verificationCode: string }, ctx: HandlerContext) {
      return { details: changeDetailsV2(await verification.verifyCode(channel, contactTarget(ctx, false), req.userId, req.verificationCode)) };
    },
  };

  /**
   * The v2 state changes: on a user of any organisation, checked against the caller's permission
   * on the user's own organisation, as ZITADEL's command layer does.
   */
  const stateChange = (transition: keyof UserStateCommands, permission: string) => async (req: { userId: string }, ctx: HandlerContext) => {
    const principal = ctx.values.get(principalKey)!;
    const user = await states[transition](
      {
        instanceId: principal.instanceId,
        orgId: undefined,
        creator: principal.userId,
        request: requestOf(ctx),
        api: "v2",
        authorize: (user) =>
          // ZITADEL lets a user change its own state (checkPermissionUpdateUser allows self), not delete itself.
          permission === "user.write" ? requireSelfOrPermission(principal, permission, user) : requireCommandPermission(principal, permission, user.orgId),
      },
      req.userId,
    );
    return { details: changeDetailsV2(user) };
  };

  return {
    ...createPasswordHandlersV2(deps),
    ...createPasskeyHandlersV2(deps),
    setEmail: async (req, ctx) => create(SetEmailResponseSchema, await contact.set("email", req, req.email, ctx)),
    resendEmailCode: async (req, ctx) => create(ResendEmailCodeResponseSchema, await contact.resend("email", req, ctx)),
    verifyEmail: async (req, ctx) => create(VerifyEmailResponseSchema, await contact.verify("email", req, ctx)),
    setPhone: async (req, ctx) => create(SetPhoneResponseSchema, await contact.set("phone", req, req.phone, ctx)),
    resendPhoneCode: async (req, ctx) => create(ResendPhoneCodeResponseSchema, await contact.resend("phone", req, ctx)),
    verifyPhone: async (req, ctx) => create(VerifyPhoneResponseSchema, await contact.verify("phone", req, ctx)),

    deactivateUser: stateChange("deactivate", "user.write"),
    reactivateUser: stateChange("reactivate", "user.write"),
    lockUser: stateChange("lock", "user.write"),
    unlockUser: stateChange("unlock", "user.write"),
    deleteUser: stateChange("remove", "user.delete"),

    async addHumanUser(req, ctx) {
      // The method's user.write on the organisation its `organization` names was checked before
      // the PGV rules, as in ZITADEL (the method option names that field); access.target answers it.
      const target = await access.target(ctx);
      const created = await createHumanV2(target, req, humanOf(req));
      return create(AddHumanUserResponseSchema, { userId: created.user.id, details: detailsV2(created.user), ...returnedCodes(created) });
    },

    /**
     * The newer v2 create, for humans as AddHumanUser; the organisation is a required field and
     * the permission is checked on it by the command, after the PGV rules, as in ZITADEL (its
     * method option only asks for an authenticated caller).
     */
    async createUser(req, ctx) {
      const target = await access.target(ctx, { orgId: req.organizationId });
      const principal = ctx.values.get(principalKey)!;
      requireCommandPermission(principal, "user.write", target.orgId);
      // PGV's required oneof: a user type is set.
      const type = req.userType as Exclude<typeof req.userType, { case: undefined }>;
      if (type.case === "machine") {
        const user = await users.createMachine({ ...target, ...machineOf(req, type.value) });
        return create(CreateUserResponseSchema, { id: user.id, creationDate: timestampFromMs(user.createdAt) });
      }
      const created = await createHumanV2(target, req, humanOf(type.value));
      return create(CreateUserResponseSchema, { id: created.user.id, creationDate: timestampFromMs(created.user.createdAt), ...returnedCodes(created) });
    },

    async addIDPLink(req, ctx) {
      // PGV: the link is required.
      const link = req.idpLink!;
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
      const user = await changes.removeIdpLink(v2Target(ctx, "user.write"), req.userId, req.idpId, req.linkedUserId);
      return create(RemoveIDPLinkResponseSchema, { details: changeDetailsV2(user) });
    },

    async getUserByID(req, ctx) {
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
      const filters = userFilters(req.queries, "v2");
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

/** A v2 machine user (CreateUser's machine) as the domain's creation input; PGV's rules were checked before. */
export function machineOf(req: { userId?: string; username?: string }, machine: { name: string; description?: string }) {
  return {
    ...(req.userId !== undefined ? { userId: req.userId } : {}),
    username: req.username ?? "",
    // v2: a machine without a username is named after its id (ZITADEL's AddMachineWithUsernameToIDFallback).
    usernameFallbackToId: true,
    name: machine.name,
    description: machine.description ?? "",
  };
}

/**
 * A v2 human (AddHumanUser, CreateUser's human) as the domain's creation input; PGV's rules
 * (profile and email required, lengths, `is_verified` true) were checked before.
 */
export function humanOf(req: HumanFields) {
  const profile = req.profile!;
  const email = req.email!;
  const urlTemplate = email.verification.case === "sendCode" ? email.verification.value.urlTemplate : undefined;
  const password = req.passwordType;
  const totpSecret = req.totpSecret;
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
