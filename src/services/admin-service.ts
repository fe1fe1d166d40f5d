import type { ServiceDeps } from "./service-deps.js";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  AddCustomDomainPolicyResponseSchema,
  type AdminService,
  GetCustomDomainPolicyResponseSchema,
  ResetCustomDomainPolicyToDefaultResponseSchema,
  UpdateCustomDomainPolicyResponseSchema,
} from "../../gen/zitadel/admin_pb.js";
import type { DomainPolicy } from "../domain/orgs.js";
import type { ImportData } from "../domain/import-data.js";
import { createImportDataHandler } from "./import-data.js";
import { createLockoutAdminHandlers } from "./lockout-handlers.js";
import { domainPolicyToPb, orgChangeDetails } from "./org-handlers.js";

interface PolicyFields {
  userLoginMustBeDomain: boolean;
  validateOrgDomains: boolean;
  smtpSenderAddressMatchesInstanceDomain: boolean;
}

const policyOf = (req: PolicyFields): DomainPolicy => ({
  userLoginMustBeDomain: req.userLoginMustBeDomain,
  validateOrgDomains: req.validateOrgDomains,
  smtpSenderAddressMatchesInstanceDomain: req.smtpSenderAddressMatchesInstanceDomain,
});

/**
 * `zitadel.admin.v1.AdminService`: the instance-level RPCs userport serves, the custom domain
 * policies of organisations, the instance's lockout policy and ImportData. Their permissions (iam.policy.*)
 * come with instance roles only.
 */
export function createAdminService(deps: ServiceDeps, importData: ImportData): ServiceImpl<typeof AdminService> {
  const { orgs, access } = deps;
  /**
   * The organisation named by the request's org_id, which the service wrapper checked to exist
   * and against the RPC's permission before the request's PGV rules, as in ZITADEL (an empty id
   * checks the permission on the caller's organisation, then fails the length rule).
   */
  const targetOf = (ctx: HandlerContext) => access.target(ctx);
  return {
    ...createLockoutAdminHandlers(deps),
    ...createImportDataHandler({ access, importData }),
    async getCustomDomainPolicy(_req, ctx) {
      const target = await targetOf(ctx);
      return create(GetCustomDomainPolicyResponseSchema, { policy: domainPolicyToPb(await orgs.domainPolicy(target.instanceId, target.orgId)) });
    },
    async addCustomDomainPolicy(req, ctx) {
      const target = await targetOf(ctx);
      const org = await orgs.setCustomDomainPolicy(target, "add", policyOf(req));
      return create(AddCustomDomainPolicyResponseSchema, { details: orgChangeDetails(org) });
    },
    async updateCustomDomainPolicy(req, ctx) {
      const target = await targetOf(ctx);
      const org = await orgs.setCustomDomainPolicy(target, "change", policyOf(req));
      return create(UpdateCustomDomainPolicyResponseSchema, { details: orgChangeDetails(org) });
    },
    async resetCustomDomainPolicyToDefault(_req, ctx) {
      const target = await targetOf(ctx);
      const org = await orgs.setCustomDomainPolicy(target, "remove", undefined);
      return create(ResetCustomDomainPolicyToDefaultResponseSchema, { details: orgChangeDetails(org) });
    },
  };
}
