import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  AddPasswordlessRegistrationResponseSchema,
  ListHumanPasswordlessResponseSchema,
  type ManagementService,
  RemoveHumanPasswordlessResponseSchema,
  SendPasswordlessRegistrationResponseSchema,
} from "../../gen/zitadel/management_pb.js";
import { PasskeyAuthenticator } from "../../gen/zitadel/user/v2/auth_pb.js";
import { AuthFactorState } from "../../gen/zitadel/user/v2/user_pb.js";
import {
  CreatePasskeyRegistrationLinkResponseSchema,
  ListPasskeysResponseSchema,
  RegisterPasskeyResponseSchema,
  RemovePasskeyResponseSchema,
  type UserService,
  VerifyPasskeyRegistrationResponseSchema,
} from "../../gen/zitadel/user/v2/user_service_pb.js";
import { AuthFactorState as AuthFactorStateV1 } from "../../gen/zitadel/user_pb.js";
import type { AuthenticatorAttachment } from "../domain/passkeys.js";
import { principalKey } from "../edge/access.js";
import { requestOf } from "../edge/calls.js";
import { changeDetailsV1, changeDetailsV2 } from "./convert.js";
import type { ServiceDeps } from "./service-deps.js";
import { listDetailsV2 } from "./user-reads.js";

const ATTACHMENTS: Record<PasskeyAuthenticator, AuthenticatorAttachment> = {
  [PasskeyAuthenticator.UNSPECIFIED]: "",
  [PasskeyAuthenticator.PLATFORM]: "platform",
  [PasskeyAuthenticator.CROSS_PLATFORM]: "cross-platform",
};

type V2Handlers = Pick<
  ServiceImpl<typeof UserService>,
  "registerPasskey" | "verifyPasskeyRegistration" | "createPasskeyRegistrationLink" | "listPasskeys" | "removePasskey"
>;

/**
 * The v2 passkey RPCs (ZITADEL's internal/api/grpc/user/v2/passkey.go). They declare
 * "authenticated" (CreatePasskeyRegistrationLink: user.passkey.write, without an organisation
 * field): the command checks the caller, the user itself or the permission on its organisation;
 * RegisterPasskey with a registration code needs no permission, the code is the proof.
 */
export function createPasskeyHandlersV2({ passkeys }: ServiceDeps): V2Handlers {
  const principalOf = (ctx: HandlerContext) => ctx.values.get(principalKey)!;
  return {
    async registerPasskey(req, ctx) {
      const principal = principalOf(ctx);
      const started = await passkeys.registerPasskey({
        principal,
        request: requestOf(ctx),
        instanceId: principal.instanceId,
        userId: req.userId,
        ...(req.code ? { code: { id: req.code.id, code: req.code.code, consume: true } } : {}),
        authenticator: ATTACHMENTS[req.authenticator] ?? "",
        domain: req.domain,
      });
      return create(RegisterPasskeyResponseSchema, {
        details: changeDetailsV2(started.user),
        passkeyId: started.passkeyId,
        publicKeyCredentialCreationOptions: started.creationOptions,
      });
    },

    async verifyPasskeyRegistration(req, ctx) {
      const principal = principalOf(ctx);
      const verified = await passkeys.verifyRegistration({
        principal,
        request: requestOf(ctx),
        instanceId: principal.instanceId,
        userId: req.userId,
        passkeyId: req.passkeyId,
        credential: req.publicKeyCredential ?? {},
        name: req.passkeyName,
      });
      return create(VerifyPasskeyRegistrationResponseSchema, { details: changeDetailsV2(verified.user) });
    },

    async createPasskeyRegistrationLink(req, ctx) {
      const medium = req.medium;
      const created = await passkeys.createRegistrationCode({
        principal: principalOf(ctx),
        request: requestOf(ctx),
        userId: req.userId,
        permission: "user.passkey.write",
        delivery:
          medium.case === "returnCode"
            ? { kind: "return" }
            : { kind: "send", ...(medium.case === "sendLink" && medium.value.urlTemplate !== undefined ? { urlTemplate: medium.value.urlTemplate } : {}) },
      });
      return create(CreatePasskeyRegistrationLinkResponseSchema, {
        details: changeDetailsV2(created.user),
        ...(medium.case === "returnCode" ? { code: { id: created.codeId, code: created.code } } : {}),
      });
    },

    async listPasskeys(req, ctx) {
      const listed = await passkeys.listPasskeys({ principal: principalOf(ctx), userId: req.userId, checkPermission: true });
      return create(ListPasskeysResponseSchema, {
        details: listDetailsV2(listed.passkeys.length, Date.now()),
        result: listed.passkeys.map((p) => ({ id: p.id, state: AuthFactorState.READY, name: p.name })),
      });
    },

    async removePasskey(req, ctx) {
      const user = await passkeys.removePasskey({
        principal: principalOf(ctx),
        request: requestOf(ctx),
        userId: req.userId,
        passkeyId: req.passkeyId,
        checkPermission: true,
      });
      return create(RemovePasskeyResponseSchema, { details: changeDetailsV2(user) });
    },
  };
}

type V1Handlers = Pick<
  ServiceImpl<typeof ManagementService>,
  "listHumanPasswordless" | "addPasswordlessRegistration" | "sendPasswordlessRegistration" | "removeHumanPasswordless"
>;

/**
 * The v1 passwordless RPCs (ZITADEL's internal/api/grpc/management/user.go): their declared
 * permission was checked on the context organisation, and the user must be one of its users.
 */
export function createPasskeyHandlersV1({ passkeys, access }: ServiceDeps): V1Handlers {
  const principalOf = (ctx: HandlerContext) => ctx.values.get(principalKey)!;
  return {
    async listHumanPasswordless(req, ctx) {
      const target = await access.target(ctx);
      const listed = await passkeys.listPasskeys({ principal: principalOf(ctx), userId: req.userId, orgId: target.orgId, checkPermission: false });
      return create(ListHumanPasswordlessResponseSchema, {
        result: listed.passkeys.map((p) => ({ id: p.id, state: AuthFactorStateV1.READY, name: p.name })),
      });
    },

    async addPasswordlessRegistration(req, ctx) {
      const target = await access.target(ctx);
      const created = await passkeys.createRegistrationCode({
        principal: principalOf(ctx),
        request: requestOf(ctx),
        userId: req.userId,
        orgId: target.orgId,
        delivery: { kind: "link" },
      });
      return create(AddPasswordlessRegistrationResponseSchema, {
        details: changeDetailsV1(created.user),
        link: created.link,
        expiration: durationFromMs(created.expirySeconds * 1000),
      });
    },

    async sendPasswordlessRegistration(req, ctx) {
      const target = await access.target(ctx);
      const created = await passkeys.createRegistrationCode({
        principal: principalOf(ctx),
        request: requestOf(ctx),
        userId: req.userId,
        orgId: target.orgId,
        delivery: { kind: "send" },
      });
      return create(SendPasswordlessRegistrationResponseSchema, { details: changeDetailsV1(created.user) });
    },

    async removeHumanPasswordless(req, ctx) {
      const target = await access.target(ctx);
      const user = await passkeys.removePasskey({
        principal: principalOf(ctx),
        request: requestOf(ctx),
        userId: req.userId,
        passkeyId: req.tokenId,
        orgId: target.orgId,
        checkPermission: false,
      });
      return create(RemoveHumanPasswordlessResponseSchema, { details: changeDetailsV1(user) });
    },
  };
}
