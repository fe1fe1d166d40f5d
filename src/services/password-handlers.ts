import type { ServiceDeps } from "./service-deps.js";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  type SetHumanInitialPasswordRequest,
  SetHumanInitialPasswordResponseSchema,
  type SetHumanPasswordRequest,
  SetHumanPasswordResponseSchema,
} from "../../gen/zitadel/management_pb.js";
import {
  type PasswordResetRequest,
  PasswordResetResponseSchema,
  type SetPasswordRequest,
  SetPasswordResponseSchema,
} from "../../gen/zitadel/user/v2/user_service_pb.js";
import { requireCommandPermission, requireSelfOrPermission } from "../domain/access.js";
import type { PasswordVerification } from "../domain/passwords.js";
import { principalKey } from "../edge/access.js";
import { requestOf } from "../edge/calls.js";
import { changeDetailsV1, changeDetailsV2 } from "./convert.js";

/** management v1 SetHumanInitialPassword and SetHumanPassword: administrators set passwords. */
export function createPasswordHandlersV1({ passwords, access }: ServiceDeps) {
  async function set(ctx: HandlerContext, userId: string, password: string, changeRequired: boolean) {
    const target = await access.target(ctx);
    // The RPC's user.write on the context organisation was checked above; nothing else to prove.
    return passwords.setPassword({
      ...target,
      userId,
      password,
      changeRequired,
      verification: undefined,
      authorize: () => {},
    });
  }
  return {
    /** Deprecated in ZITADEL; the password must be changed at the next sign-in. */
    async setHumanInitialPassword(req: SetHumanInitialPasswordRequest, ctx: HandlerContext) {
      const user = await set(ctx, req.userId, req.password, true);
      return create(SetHumanInitialPasswordResponseSchema, { details: changeDetailsV1(user) });
    },
    async setHumanPassword(req: SetHumanPasswordRequest, ctx: HandlerContext) {
      const user = await set(ctx, req.userId, req.password, !req.noChangeRequired);
      return create(SetHumanPasswordResponseSchema, { details: changeDetailsV1(user) });
    },
  };
}

/** user v2 PasswordReset and SetPassword. */
export function createPasswordHandlersV2({ passwords }: ServiceDeps) {
  /** user.write on the user's organisation, or the user itself (ZITADEL's checkPermissionUpdateUser). */
  const mayWrite = (ctx: HandlerContext) => (user: { id: string; orgId: string }) => requireSelfOrPermission(ctx.values.get(principalKey)!, "user.write", user);
  return {
    async passwordReset(req: PasswordResetRequest, ctx: HandlerContext) {
      const medium = req.medium;
      const urlTemplate = medium.case === "sendLink" ? medium.value.urlTemplate : undefined;
      const principal = ctx.values.get(principalKey)!;
      const { user, code } = await passwords.requestReset({
        instanceId: principal.instanceId,
        userId: req.userId,
        creator: principal.userId,
        request: requestOf(ctx),
        medium: medium.case === "returnCode" ? { kind: "return" } : { kind: "send", ...(urlTemplate !== undefined ? { urlTemplate } : {}) },
        authorize: mayWrite(ctx),
      });
      return create(PasswordResetResponseSchema, { details: changeDetailsV2(user), ...(code !== undefined ? { verificationCode: code } : {}) });
    },

    async setPassword(req: SetPasswordRequest, ctx: HandlerContext) {
      // PGV (the new password required, the lengths) ran before the handler.
      const newPassword = req.newPassword!;
      const v = req.verification;
      let verification: PasswordVerification;
      if (v.case === "currentPassword") {
        verification = { currentPassword: v.value };
      } else if (v.case === "verificationCode") {
        verification = { code: v.value };
      }
      const principal = ctx.values.get(principalKey)!;
      const user = await passwords.setPassword({
        instanceId: principal.instanceId,
        orgId: undefined,
        userId: req.userId,
        creator: principal.userId,
        request: requestOf(ctx),
        password: newPassword.password,
        changeRequired: newPassword.changeRequired,
        verification,
        // Without the current password or a code, only those who may write the user may set it.
        authorize: (user) => requireCommandPermission(principal, "user.write", user.orgId),
      });
      return create(SetPasswordResponseSchema, { details: changeDetailsV2(user) });
    },
  };
}
