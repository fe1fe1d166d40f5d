import type { ServiceDeps } from "./service-deps.js";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  GetLockoutPolicyResponseSchema as AdminGetLockoutPolicyResponseSchema,
  type AdminService,
  UpdateLockoutPolicyResponseSchema,
} from "../../gen/zitadel/admin_pb.js";
import {
  AddCustomLockoutPolicyResponseSchema,
  GetDefaultLockoutPolicyResponseSchema,
  GetLockoutPolicyResponseSchema,
  type ManagementService,
  ResetLockoutPolicyToDefaultResponseSchema,
  UpdateCustomLockoutPolicyResponseSchema,
} from "../../gen/zitadel/management_pb.js";
import { type ObjectDetails, ObjectDetailsSchema } from "../../gen/zitadel/object_pb.js";
import { type LockoutPolicy as LockoutPolicyPb, LockoutPolicySchema } from "../../gen/zitadel/policy_pb.js";
import type { EffectiveLockoutPolicy } from "../domain/lockout.js";

const policyOf = (req: { maxPasswordAttempts: number; maxOtpAttempts: number }) => ({
  maxPasswordAttempts: req.maxPasswordAttempts,
  maxOtpAttempts: req.maxOtpAttempts,
});

const changeDetails = (change: { sequence: number; at: number }, resourceOwner: string): ObjectDetails =>
  create(ObjectDetailsSchema, { sequence: BigInt(change.sequence), changeDate: timestampFromMs(change.at), resourceOwner });

/**
 * `zitadel.policy.v1.LockoutPolicy` with the change metadata of the stored policy; the configured
 * default nobody stored yet has only its owner, the instance, as ZITADEL's defaults do.
 */
function lockoutPolicyToPb(found: EffectiveLockoutPolicy, owner: string): LockoutPolicyPb {
  const { policy, stored, isDefault } = found;
  return create(LockoutPolicySchema, {
    details: stored
      ? create(ObjectDetailsSchema, {
          sequence: BigInt(stored.sequence),
          creationDate: timestampFromMs(stored.createdAt),
          changeDate: timestampFromMs(stored.changedAt),
          resourceOwner: owner,
        })
      : create(ObjectDetailsSchema, { resourceOwner: owner }),
    maxPasswordAttempts: BigInt(policy.maxPasswordAttempts),
    maxOtpAttempts: BigInt(policy.maxOtpAttempts),
    isDefault,
  });
}

type LockoutMethodsV1 = "getLockoutPolicy" | "getDefaultLockoutPolicy" | "addCustomLockoutPolicy" | "updateCustomLockoutPolicy" | "resetLockoutPolicyToDefault";

/** Management v1: the lockout policy of the context organisation. */
export function createLockoutHandlersV1({ lockout, access }: ServiceDeps): Pick<ServiceImpl<typeof ManagementService>, LockoutMethodsV1> {
  return {
    async getLockoutPolicy(_req, ctx) {
      const target = await access.target(ctx);
      const found = await lockout.orgPolicy(target.instanceId, target.orgId);
      return create(GetLockoutPolicyResponseSchema, {
        policy: lockoutPolicyToPb(found, found.isDefault ? target.instanceId : target.orgId),
        isDefault: found.isDefault,
      });
    },
    async getDefaultLockoutPolicy(_req, ctx) {
      // The instance's policy whichever organisation the context names, as ZITADEL's
      // DefaultLockoutPolicy query; policy.read on that organisation is the permission asked.
      const target = await access.target(ctx);
      return create(GetDefaultLockoutPolicyResponseSchema, {
        policy: lockoutPolicyToPb(await lockout.instancePolicy(target.instanceId), target.instanceId),
      });
    },
    async addCustomLockoutPolicy(req, ctx) {
      const target = await access.target(ctx);
      const change = await lockout.setOrgPolicy(target, "add", policyOf(req));
      return create(AddCustomLockoutPolicyResponseSchema, { details: changeDetails(change, target.orgId) });
    },
    async updateCustomLockoutPolicy(req, ctx) {
      const target = await access.target(ctx);
      const change = await lockout.setOrgPolicy(target, "change", policyOf(req));
      return create(UpdateCustomLockoutPolicyResponseSchema, { details: changeDetails(change, target.orgId) });
    },
    async resetLockoutPolicyToDefault(_req, ctx) {
      const target = await access.target(ctx);
      const change = await lockout.setOrgPolicy(target, "remove", undefined);
      return create(ResetLockoutPolicyToDefaultResponseSchema, { details: changeDetails(change, target.orgId) });
    },
  };
}

/** Admin v1: the instance's lockout policy, the default of every organisation without its own. */
export function createLockoutAdminHandlers({
  lockout,
  access,
}: ServiceDeps): Pick<ServiceImpl<typeof AdminService>, "getLockoutPolicy" | "updateLockoutPolicy"> {
  return {
    async getLockoutPolicy(_req, ctx) {
      const target = await access.target(ctx);
      return create(AdminGetLockoutPolicyResponseSchema, {
        policy: lockoutPolicyToPb(await lockout.instancePolicy(target.instanceId), target.instanceId),
      });
    },
    async updateLockoutPolicy(req, ctx) {
      const target = await access.target(ctx);
      const change = await lockout.setInstancePolicy(target, policyOf(req));
      return create(UpdateLockoutPolicyResponseSchema, { details: changeDetails(change, target.instanceId) });
    },
  };
}
