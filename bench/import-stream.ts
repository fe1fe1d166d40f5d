import { fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  type ImportUsersRequest,
  ImportUsersRequestSchema,
  type ImportUsersResponse,
  ImportUsersResponseSchema,
  MigrationService,
} from "../gen/userport/migration/v1/migration_pb.js";

/**
 * A grpc-js ImportUsers stream to the server at `url`, as the benchmarks' own streaming client
 * (a client in the benchmark's process, not the CLI). Close `client` when the stream has ended.
 */
export function openImportStream<Response = ImportUsersResponse>(
  url: string,
  token: string,
  deserialize: (bytes: Buffer) => Response = (bytes) => fromBinary(ImportUsersResponseSchema, bytes) as Response,
) {
  const client = new grpc.Client(new URL(url).host, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": 64 * 1024 * 1024 });
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  const call = client.makeBidiStreamRequest<ImportUsersRequest | Uint8Array, Response>(
    `/${MigrationService.typeName}/ImportUsers`,
    // A message, or one already encoded (bench/bulk-import.ts encodes its batches from a template).
    (message: ImportUsersRequest | Uint8Array) => Buffer.from(message instanceof Uint8Array ? message : toBinary(ImportUsersRequestSchema, message)),
    deserialize,
    metadata,
    {},
  );
  return { client, call };
}
