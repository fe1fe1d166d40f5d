import type { ServiceDeps } from "./service-deps.js";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type ManagementService,
  BulkRemoveUserMetadataResponseSchema,
  BulkSetUserMetadataResponseSchema,
  GetUserMetadataResponseSchema,
  ListUserMetadataResponseSchema,
  RemoveUserMetadataResponseSchema,
  SetUserMetadataResponseSchema,
} from "../../gen/zitadel/management_pb.js";
import { ObjectDetailsSchema } from "../../gen/zitadel/object_pb.js";
import { type Metadata, MetadataSchema } from "../../gen/zitadel/metadata_pb.js";
import { textMatches } from "../domain/idps.js";
import type { StoredMetadata } from "../domain/ports.js";
import { queryLimit, TEXT_METHODS, V1_DEFAULT_QUERY_LIMIT } from "../domain/user-queries.js";
import { changeDetailsV1 } from "./convert.js";
import { listDetailsV1, listOffset } from "./user-reads.js";

/** Management v1: the metadata of users of the context organisation. */
export function createMetadataHandlersV1({
  access,
  userChanges: changes,
}: ServiceDeps): Pick<
  ServiceImpl<typeof ManagementService>,
  "setUserMetadata" | "bulkSetUserMetadata" | "listUserMetadata" | "getUserMetadata" | "removeUserMetadata" | "bulkRemoveUserMetadata"
> {
  return {
    async setUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      const user = await changes.setMetadata({ ...target, api: "v1" }, req.id, [{ key: req.key, value: req.value }], false);
      return create(SetUserMetadataResponseSchema, { details: changeDetailsV1(user) });
    },

    async bulkSetUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      const entries = req.metadata.map((entry) => ({ key: entry.key, value: entry.value }));
      const user = await changes.setMetadata({ ...target, api: "v1" }, req.id, entries, true);
      return create(BulkSetUserMetadataResponseSchema, { details: changeDetailsV1(user) });
    },

    /** The metadata of a user of the context organisation, by key; of no user, none. */
    async listUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      // PGV (MetadataQuery's required oneof, a defined method) has run: every query is a key query.
      const filters = req.queries.map((query) => {
        const keyQuery = query.query.value!;
        return { key: keyQuery.key, method: TEXT_METHODS[keyQuery.method]! };
      });
      const entries = (await changes.listMetadata(target, req.id)).filter((entry) =>
        filters.every((filter) => textMatches(entry.key, filter.key, filter.method)),
      );
      if (!req.query?.asc) entries.reverse();
      const offset = listOffset(req.query?.offset ?? 0n);
      const limit = queryLimit(req.query?.limit ?? 0, V1_DEFAULT_QUERY_LIMIT);
      return create(ListUserMetadataResponseSchema, {
        details: listDetailsV1(entries.length, Date.now()),
        result: entries.slice(offset, offset + limit).map((entry) => metadataToPb(entry, target.orgId)),
      });
    },

    async getUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      const entry = await changes.getMetadata(target, req.id, req.key);
      return create(GetUserMetadataResponseSchema, { metadata: metadataToPb(entry, target.orgId) });
    },

    async removeUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      const user = await changes.removeMetadata({ ...target, api: "v1" }, req.id, [req.key], false);
      return create(RemoveUserMetadataResponseSchema, { details: changeDetailsV1(user) });
    },

    async bulkRemoveUserMetadata(req, ctx) {
      const target = await access.target(ctx);
      const user = await changes.removeMetadata({ ...target, api: "v1" }, req.id, req.keys, true);
      return create(BulkRemoveUserMetadataResponseSchema, { details: changeDetailsV1(user) });
    },
  };
}

function metadataToPb(entry: StoredMetadata, orgId: string): Metadata {
  return create(MetadataSchema, {
    key: entry.key,
    value: entry.value,
    details: create(ObjectDetailsSchema, {
      sequence: BigInt(entry.sequence),
      creationDate: timestampFromMs(entry.createdAt),
      changeDate: timestampFromMs(entry.changedAt),
      resourceOwner: orgId,
    }),
  });
}
