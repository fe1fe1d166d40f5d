import { ImportDataErrors, RequestErrors } from "../domain/error-catalogue.js";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { type DataOrg, type ImportDataRequest, type ImportDataResponse, ImportDataResponseSchema } from "../../gen/zitadel/admin_pb.js";
import type { BulkRecord } from "../domain/bulk-import.js";
import { isDomainError } from "../domain/errors.js";
import type { ImportData, ImportDataOrgInput, ImportDataUser } from "../domain/import-data.js";
import type { Access } from "../edge/access.js";
import { importHumanInput } from "./user-handlers-v1.js";
import { addMachineInput } from "./org-handlers.js";

/** Go's time.ParseDuration syntax (ZITADEL parses ImportDataRequest.timeout with it). */
const GO_DURATION = /^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$/;

/** DataOrg's fields userport does not import, by ZITADEL's ImportDataError type names. */
const NOT_IMPORTED_SINGLE = [
  ["labelPolicy", "label_policy"],
  ["lockoutPolicy", "lockout_policy"],
  ["loginPolicy", "login_policy"],
  ["passwordComplexityPolicy", "password_complexity_policy"],
  ["privacyPolicy", "privacy_policy"],
] as const;
const NOT_IMPORTED_LISTS = [
  ["projects", "project"],
  ["projectRoles", "project_role"],
  ["apiApps", "api_app"],
  ["oidcApps", "oidc_app"],
  ["triggerActions", "trigger_action"],
  ["actions", "action"],
  ["projectGrants", "project_grant"],
  ["userGrants", "user_grant"],
  ["projectMembers", "project_member"],
  ["projectGrantMembers", "project_grant_member"],
  ["loginTexts", "login_texts"],
  ["initMessages", "init_message"],
  ["passwordResetMessages", "password_reset_message"],
  ["verifyEmailMessages", "verify_email_message"],
  ["verifyPhoneMessages", "verify_phone_message"],
  ["domainClaimedMessages", "domain_claimed_message"],
  ["passwordlessRegistrationMessages", "passwordless_registration_message"],
  ["oidcIdps", "oidc_idp"],
  ["jwtIdps", "jwt_idp"],
  ["appKeys", "app_key"],
  ["machineKeys", "machine_user_key"],
  ["verifySmsOtpMessages", "verify_sms_otp_message"],
  ["verifyEmailOtpMessages", "verify_email_otp_message"],
] as const;

/** A user of the data as the bulk engine takes it: the data's user_id becomes the user's id and its key. */
function userRecord(userId: string, build: () => BulkRecord): ImportDataUser {
  try {
    return { userId, record: build() };
  } catch (err) {
    if (!isDomainError(err)) throw err;
    return { userId, record: { key: userId, invalid: err } };
  }
}

function orgInput(org: DataOrg): ImportDataOrgInput {
  const notImported: ImportDataOrgInput["notImported"] = [];
  for (const [field, type] of NOT_IMPORTED_SINGLE) if (org[field] !== undefined) notImported.push({ type, count: 1 });
  for (const [field, type] of NOT_IMPORTED_LISTS) if (org[field].length > 0) notImported.push({ type, count: org[field].length });
  const policy = org.domainPolicy;
  return {
    orgId: org.orgId,
    name: org.org?.name ?? "",
    ...(policy
      ? {
          domainPolicy: {
            userLoginMustBeDomain: policy.userLoginMustBeDomain,
            validateOrgDomains: policy.validateOrgDomains,
            smtpSenderAddressMatchesInstanceDomain: policy.smtpSenderAddressMatchesInstanceDomain,
          },
        }
      : {}),
    domains: org.domains.map((domain) => ({ name: domain.domainName, verified: domain.isVerified, primary: domain.isPrimary })),
    humans: org.humanUsers.map((data) =>
      userRecord(data.userId, () => {
        if (!data.user) throw RequestErrors.importHumanUserMissing();
        const human = importHumanInput(data.user);
        // ZITADEL's ImportData imports otp_code as a verified TOTP authenticator (ImportHumanTOTP).
        const totp = data.user.otpCode === "" ? {} : { totpSecret: data.user.otpCode };
        return { key: data.userId, human: { ...human, ...totp, ...(data.userId !== "" ? { userId: data.userId } : {}) } };
      }),
    ),
    machines: org.machineUsers.map((data) =>
      userRecord(data.userId, () => {
        if (!data.user) throw RequestErrors.importMachineUserMissing();
        const machine = addMachineInput(data.user);
        // The data's user_id is the id, unless the request names one itself.
        return { key: data.userId, machine: { ...(data.userId !== "" ? { userId: data.userId } : {}), ...machine } };
      }),
    ),
    metadata: org.userMetadata.map((entry) => ({
      userId: entry.id,
      key: entry.key,
      value: entry.value,
    })),
    links: org.userLinks.map((link) => ({
      userId: link.userId,
      idpId: link.idpId,
      externalUserId: link.providedUserId,
      displayName: link.providedUserName,
    })),
    members: org.orgMembers.map((member) => ({
      userId: member.userId,
      roles: member.roles,
    })),
    notImported,
  };
}

/** `zitadel.admin.v1.AdminService/ImportData` (internal/api/grpc/admin/import.go). */
export function createImportDataHandler(deps: { access: Access; importData: ImportData }) {
  return {
    async importData(req: ImportDataRequest, ctx: HandlerContext): Promise<ImportDataResponse> {
      const target = await deps.access.target(ctx);
      const data = req.data;
      if (data.case === undefined) throw ImportDataErrors.noData();
      if (data.case === "dataOrgsv1") {
        throw ImportDataErrors.v1FormatUnsupported();
      }
      if (data.case !== "dataOrgs") {
        // The server never reads files: the data comes with the request.
        throw ImportDataErrors.filesUnsupported(data.case);
      }
      if (req.timeout !== "" && !GO_DURATION.test(req.timeout)) {
        throw ImportDataErrors.timeoutInvalid();
      }
      const result = await deps.importData.importData(target, data.value.orgs.map(orgInput));
      return create(ImportDataResponseSchema, {
        errors: result.errors,
        success: {
          orgs: result.orgs.map((org) => ({
            orgId: org.orgId,
            humanUserIds: org.humanUserIds,
            machineUserIds: org.machineUserIds,
            userMetadata: org.userMetadata,
            userLinks: org.userLinks,
            orgMembers: org.orgMembers,
            domains: org.domains,
          })),
        },
      });
    },
  };
}
