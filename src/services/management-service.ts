import type { ServiceImpl } from "@connectrpc/connect";
import type { ManagementService } from "../../gen/zitadel/management_pb.js";
import { createIdpHandlersV1 } from "./idp-handlers.js";
import { createLockoutHandlersV1 } from "./lockout-handlers.js";
import { createMachineSecretHandlers } from "./machine-secret-handlers.js";
import { createMetadataHandlersV1 } from "./metadata-handlers.js";
import { createOrgHandlers } from "./org-handlers.js";
import { createPasskeyHandlersV1 } from "./passkey-handlers.js";
import { createPasswordHandlersV1 } from "./password-handlers.js";
import type { ServiceDeps } from "./service-deps.js";
import { createUserHandlersV1 } from "./user-handlers-v1.js";

/**
 * `zitadel.management.v1.ManagementService`, composed of its handler modules by concern: users,
 * organisations, passwords, passkeys, lockout policy, machine secrets, identity providers and metadata.
 */
export function createManagementService(deps: ServiceDeps): ServiceImpl<typeof ManagementService> {
  return {
    ...createUserHandlersV1(deps),
    ...createOrgHandlers(deps),
    ...createPasswordHandlersV1(deps),
    ...createLockoutHandlersV1(deps),
    ...createMachineSecretHandlers(deps),
    ...createPasskeyHandlersV1(deps),
    ...createIdpHandlersV1(deps),
    ...createMetadataHandlersV1(deps),
  };
}
