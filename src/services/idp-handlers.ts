import type { ServiceDeps } from "./service-deps.js";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type ManagementService,
  AddGenericOIDCProviderResponseSchema,
  GetProviderByIDResponseSchema,
  ListHumanLinkedIDPsResponseSchema,
  ListProvidersResponseSchema,
  RemoveHumanLinkedIDPResponseSchema,
} from "../../gen/zitadel/management_pb.js";
import { IDPOwnerType, IDPState, IDPType, type Provider, ProviderSchema, ProviderType } from "../../gen/zitadel/idp_pb.js";
import { ObjectDetailsSchema } from "../../gen/zitadel/object_pb.js";
import type { Idp, ProviderFilter } from "../domain/idps.js";
import { queryLimit, TEXT_METHODS, V1_DEFAULT_QUERY_LIMIT } from "../domain/user-queries.js";
import { changeDetailsV1 } from "./convert.js";
import { listDetailsV1, listOffset } from "./user-reads.js";

/** Management v1: the identity providers of the context organisation and the links of its users. */
export function createIdpHandlersV1({
  access,
  userCreation: users,
  userChanges: changes,
  idps,
}: ServiceDeps): Pick<
  ServiceImpl<typeof ManagementService>,
  "addGenericOIDCProvider" | "listProviders" | "getProviderByID" | "listHumanLinkedIDPs" | "removeHumanLinkedIDP"
> {
  return {
    /** A generic OIDC provider of the context organisation; its secret is sealed and never returned. */
    async addGenericOIDCProvider(req, ctx) {
      const target = await access.target(ctx);
      const options = req.providerOptions;
      const idp = await idps.addOidcProvider(target, {
        name: req.name,
        issuer: req.issuer,
        clientId: req.clientId,
        clientSecret: req.clientSecret,
        scopes: req.scopes,
        isIdTokenMapping: req.isIdTokenMapping,
        usePkce: req.usePkce,
        options: {
          isLinkingAllowed: options?.isLinkingAllowed ?? false,
          isCreationAllowed: options?.isCreationAllowed ?? false,
          isAutoCreation: options?.isAutoCreation ?? false,
          isAutoUpdate: options?.isAutoUpdate ?? false,
          autoLinking: options?.autoLinking ?? 0,
        },
      });
      return create(AddGenericOIDCProviderResponseSchema, { id: idp.id, details: idpDetails(idp) });
    },

    /** The providers of the context organisation and of the instance. */
    async listProviders(req, ctx) {
      const target = await access.target(ctx);
      // The PGV rules (enum values defined, lengths) were checked before the handler runs.
      const filters = req.queries.map((query): ProviderFilter => {
        const q = query.query;
        switch (q.case) {
          case "idpIdQuery":
            return { kind: "id", id: q.value.id };
          case "idpNameQuery":
            return { kind: "name", name: q.value.name, method: TEXT_METHODS[q.value.method]! };
          case "ownerTypeQuery": {
            const owner = q.value.ownerType;
            return {
              kind: "owner",
              owner: owner === IDPOwnerType.IDP_OWNER_TYPE_SYSTEM ? "system" : owner === IDPOwnerType.IDP_OWNER_TYPE_ORG ? "org" : undefined,
            };
          }
          default:
            // An empty query matches everything, as an unset oneof adds no condition in ZITADEL.
            return { kind: "name", name: "", method: "startsWith" };
        }
      });
      const page = await idps.listProviders(target.instanceId, target.orgId, filters, {
        offset: listOffset(req.query?.offset ?? 0n),
        limit: queryLimit(req.query?.limit ?? 0, V1_DEFAULT_QUERY_LIMIT),
        asc: req.query?.asc ?? false,
      });
      return create(ListProvidersResponseSchema, {
        details: listDetailsV1(page.total, Date.now()),
        result: page.idps.map((idp) => providerToPb(idp, target.orgId)),
      });
    },

    async getProviderByID(req, ctx) {
      const target = await access.target(ctx);
      const idp = await idps.getProvider(target.instanceId, target.orgId, req.id);
      return create(GetProviderByIDResponseSchema, { idp: providerToPb(idp, target.orgId) });
    },

    /** The links of a user of the context organisation; of no user, none. */
    async listHumanLinkedIDPs(req, ctx) {
      const target = await access.target(ctx);
      const user = await users.getUser(target.instanceId, target.orgId, req.userId).catch(() => undefined);
      const links = user ? await changes.listIdpLinks(target.instanceId, user.id) : [];
      if (!req.query?.asc) links.reverse();
      const offset = listOffset(req.query?.offset ?? 0n);
      const limit = queryLimit(req.query?.limit ?? 0, V1_DEFAULT_QUERY_LIMIT);
      return create(ListHumanLinkedIDPsResponseSchema, {
        details: listDetailsV1(links.length, Date.now()),
        result: links.slice(offset, offset + limit).map((link) => ({
          userId: req.userId,
          idpId: link.idpId,
          idpName: link.idp?.name ?? "",
          providedUserId: link.externalUserId,
          providedUserName: link.displayName,
          idpType: link.idp ? IDPType.IDP_TYPE_OIDC : IDPType.IDP_TYPE_UNSPECIFIED,
        })),
      });
    },

    async removeHumanLinkedIDP(req, ctx) {
      const target = await access.target(ctx);
      const user = await changes.removeIdpLink({ ...target, api: "v1" }, req.userId, req.idpId, req.linkedUserId);
      return create(RemoveHumanLinkedIDPResponseSchema, { details: changeDetailsV1(user) });
    },
  };
}

function idpDetails(idp: Idp) {
  return create(ObjectDetailsSchema, {
    sequence: BigInt(idp.sequence),
    creationDate: timestampFromMs(idp.createdAt),
    changeDate: timestampFromMs(idp.changedAt),
    resourceOwner: idp.orgId === "" ? idp.instanceId : idp.orgId,
  });
}

/** `zitadel.idp.v1.Provider`, without the client secret. */
function providerToPb(idp: Idp, orgId: string): Provider {
  return create(ProviderSchema, {
    id: idp.id,
    details: idpDetails(idp),
    state: idp.state === "ACTIVE" ? IDPState.IDP_STATE_ACTIVE : IDPState.IDP_STATE_INACTIVE,
    name: idp.name,
    owner:
      idp.orgId === "" ? IDPOwnerType.IDP_OWNER_TYPE_SYSTEM : idp.orgId === orgId ? IDPOwnerType.IDP_OWNER_TYPE_ORG : IDPOwnerType.IDP_OWNER_TYPE_UNSPECIFIED,
    type: ProviderType.OIDC,
    config: {
      options: idp.options,
      config: {
        case: "oidc",
        value: {
          issuer: idp.issuer,
          clientId: idp.clientId,
          scopes: idp.scopes,
          isIdTokenMapping: idp.isIdTokenMapping,
          usePkce: idp.usePkce,
        },
      },
    },
  });
}

/** `zitadel.metadata.v1.Metadata` of a user's entry. */
