import type { ServiceDeps } from "./service-deps.js";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { GenerateMachineSecretResponseSchema, type ManagementService, RemoveMachineSecretResponseSchema } from "../../gen/zitadel/management_pb.js";
import { changeDetailsV1 } from "./convert.js";

/** Management v1 GenerateMachineSecret / RemoveMachineSecret (ZITADEL's internal/api/grpc/management/user.go). */
export function createMachineSecretHandlers({
  machineSecrets: secrets,
  access,
}: ServiceDeps): Pick<ServiceImpl<typeof ManagementService>, "generateMachineSecret" | "removeMachineSecret"> {
  return {
    async generateMachineSecret(req, ctx) {
      const target = await access.target(ctx);
      const generated = await secrets.generate(target, req.userId);
      return create(GenerateMachineSecretResponseSchema, {
        clientId: generated.clientId,
        clientSecret: generated.clientSecret,
        details: changeDetailsV1(generated.user),
      });
    },
    async removeMachineSecret(req, ctx) {
      const target = await access.target(ctx);
      return create(RemoveMachineSecretResponseSchema, { details: changeDetailsV1(await secrets.remove(target, req.userId)) });
    },
  };
}
