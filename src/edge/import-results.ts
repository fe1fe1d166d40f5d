import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { Interceptor } from "@connectrpc/connect";
import { type ImportProgress, type ImportResult, type ImportUsersResponse, ImportUsersResponseSchema } from "../../gen/userport/migration/v1/migration_pb.js";

/**
 * The per-record results of `MigrationService/ImportUsers`, encoded for binary clients here
 * rather than by protobuf-es's reflection.
 *
 * Why: a stream answers every record with an `ImportResult`, and protobuf-es's `toBinary` walks
 * each one by reflection, about 2.3 µs a result on the benchmark machine, a tenth of a dry run's
 * main-thread time per record and a twentieth of a real import's (BENCHMARKS.md, "Bulk import").
 * Written field by field with protobuf-es's own `BinaryWriter`, a result costs a fraction of
 * that.
 *
 * How: the bytes of a response's `results` (field 2) and `progress` (field 3) are written here in
 * field order, as `toBinary` writes them, and the message is handed to Connect with them as its
 * one unknown field. `toBinary` writes an unknown field as its tag followed by the bytes stored
 * for it, so the message goes out byte for byte as the reflective encoding would send it
 * (test/import-results.test.ts compares the two). Unknown fields are binary-only: a JSON response
 * (Connect or gRPC with `+json`) would drop them, so JSON responses are left to Connect.
 */
export const importResultsEncoded: Interceptor = (next) => async (req) => {
  const res = await next(req);
  if (!res.stream || req.method.name !== "ImportUsers" || !isBinary(req.header.get("content-type"))) return res;
  return { ...res, message: encodedResults(res.message as AsyncIterable<ImportUsersResponse>) };
};

/** The request content types whose responses are binary protobuf (Connect answers in the request's codec). */
const BINARY_TYPES = new Set(["application/grpc", "application/grpc+proto", "application/grpc-web", "application/grpc-web+proto", "application/connect+proto"]);

function isBinary(contentType: string | null): boolean {
  if (contentType === null) return false;
  const semicolon = contentType.indexOf(";");
  return BINARY_TYPES.has((semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase());
}

async function* encodedResults(messages: AsyncIterable<ImportUsersResponse>): AsyncIterable<ImportUsersResponse> {
  for await (const message of messages) yield preEncoded(message);
}

/** `message` with its results and progress already encoded, or as it is when it has anything else to send. */
export function preEncoded(message: ImportUsersResponse): ImportUsersResponse {
  if (message.results.length === 0 || message.job !== undefined || (message.$unknown?.length ?? 0) > 0) return message;
  const writer = new BinaryWriter();
  for (const result of message.results) writeResult(writer.tag(2, WireType.LengthDelimited).fork(), result).join();
  if (message.progress) writeProgress(writer.tag(3, WireType.LengthDelimited).fork(), message.progress).join();
  const bytes = writer.finish();
  // The first byte is the first result's tag (field 2, length-delimited: 0x12), which toBinary
  // writes for the unknown field itself; the rest, later tags included, goes out as stored.
  return {
    $typeName: ImportUsersResponseSchema.typeName,
    job: undefined,
    results: [],
    progress: undefined,
    $unknown: [{ no: 2, wireType: WireType.LengthDelimited, data: bytes.subarray(1) }],
  };
}

/** An ImportResult's fields as toBinary writes them: in field order, proto3 defaults left out. */
function writeResult(writer: BinaryWriter, result: ImportResult): BinaryWriter {
  if (result.index !== 0n) writer.tag(1, WireType.Varint).uint64(result.index);
  if (result.key !== "") writer.tag(2, WireType.LengthDelimited).string(result.key);
  if (result.outcome !== 0) writer.tag(3, WireType.Varint).int32(result.outcome);
  if (result.userId !== "") writer.tag(4, WireType.LengthDelimited).string(result.userId);
  const { error } = result;
  if (error) {
    writer.tag(5, WireType.LengthDelimited).fork();
    if (error.code !== 0) writer.tag(1, WireType.Varint).int32(error.code);
    if (error.id !== "") writer.tag(2, WireType.LengthDelimited).string(error.id);
    if (error.message !== "") writer.tag(3, WireType.LengthDelimited).string(error.message);
    writer.join();
  }
  if (result.replayed) writer.tag(6, WireType.Varint).bool(true);
  return writer;
}

function writeProgress(writer: BinaryWriter, progress: ImportProgress): BinaryWriter {
  if (progress.recordsDone !== 0n) writer.tag(1, WireType.Varint).uint64(progress.recordsDone);
  if (progress.created !== 0n) writer.tag(2, WireType.Varint).uint64(progress.created);
  if (progress.updated !== 0n) writer.tag(3, WireType.Varint).uint64(progress.updated);
  if (progress.skipped !== 0n) writer.tag(4, WireType.Varint).uint64(progress.skipped);
  if (progress.failed !== 0n) writer.tag(5, WireType.Varint).uint64(progress.failed);
  return writer;
}
