import { WireType } from "@bufbuild/protobuf/wire";
import type { Interceptor } from "@connectrpc/connect";
import {
  type ImportError,
  type ImportProgress,
  type ImportResult,
  type ImportUsersResponse,
  ImportUsersResponseSchema,
} from "../../gen/userport/migration/v1/migration_pb.js";

/**
 * The per-record results of `MigrationService/ImportUsers`, encoded for binary clients here
 * rather than by protobuf-es's reflection.
 *
 * Why: a stream answers every record with an `ImportResult`, and protobuf-es's `toBinary` walks
 * each one by reflection, about 2.3 µs a result on the benchmark machine, a tenth of a dry run's
 * main-thread time per record and a twentieth of a real import's (BENCHMARKS.md, "Bulk import").
 * Written field by field here, a result costs a fraction of that (below).
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
  const { results, progress } = message;
  // Sizes first (a length-delimited field's length precedes it), then one buffer written once.
  const sizes = new Array<number>(results.length);
  let total = 0;
  for (let i = 0; i < results.length; i++) {
    sizes[i] = resultSize(results[i]!);
    total += fieldSize(sizes[i]!);
  }
  const progressBytes = progress ? progressSize(progress) : 0;
  if (progress) total += fieldSize(progressBytes);
  const buffer = Buffer.allocUnsafe(total);
  let at = 0;
  for (let i = 0; i < results.length; i++) {
    buffer[at++] = tag(2, WireType.LengthDelimited);
    at = writeResult(buffer, writeVarint(buffer, at, sizes[i]!), results[i]!);
  }
  if (progress) {
    buffer[at++] = tag(3, WireType.LengthDelimited);
    writeProgress(buffer, writeVarint(buffer, at, progressBytes), progress);
  }
  // The first byte is the first result's tag (field 2, length-delimited: 0x12), which toBinary
  // writes for the unknown field itself; the rest, later tags included, goes out as stored.
  return {
    $typeName: ImportUsersResponseSchema.typeName,
    job: undefined,
    results: [],
    progress: undefined,
    $unknown: [{ no: 2, wireType: WireType.LengthDelimited, data: buffer.subarray(1) }],
  };
}

/*
 * The writing itself, into one Buffer, rather than with protobuf-es's BinaryWriter: that writer
 * encodes every string into a new array and copies each nested message once more when it is
 * joined, and writes a uint64 through protoInt64's BigInt arithmetic; for a response of a
 * thousand results it took 3.0 µs a result, this 0.35 µs. Every field number here is below 16,
 * so every tag is one byte.
 */

const tag = (field: number, wireType: WireType): number => (field << 3) | wireType;

/** A length-delimited field of `size` bytes with its tag and length. */
const fieldSize = (size: number): number => 1 + varintSize(size) + size;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** An int32 as a varint: a negative one as its 64-bit two's complement, ten bytes. */
const int32Varint = (value: number): number | bigint => (value < 0 ? BigInt.asUintN(64, BigInt(value)) : value);

function varintSize(value: number | bigint): number {
  if (typeof value === "bigint") {
    if (value <= MAX_SAFE) return varintSize(Number(value));
    let size = 1;
    for (let rest = value >> 7n; rest > 0n; rest >>= 7n) size++;
    return size;
  }
  let size = 1;
  for (let rest = value; rest >= 128; rest = Math.floor(rest / 128)) size++;
  return size;
}

/** Writes `value` (a non-negative integer) at `at`; returns the offset after it. */
function writeVarint(buffer: Buffer, at: number, value: number | bigint): number {
  if (typeof value === "bigint") {
    if (value <= MAX_SAFE) return writeVarint(buffer, at, Number(value));
    let rest = value;
    for (; rest >= 128n; rest >>= 7n) buffer[at++] = Number(rest & 127n) | 128;
    buffer[at++] = Number(rest);
    return at;
  }
  let rest = value;
  // `& 127` reads the low bits of numbers beyond 32 bits too (ToInt32 keeps them).
  for (; rest >= 128; rest = Math.floor(rest / 128)) buffer[at++] = (rest & 127) | 128;
  buffer[at++] = rest;
  return at;
}

const stringSize = (value: string): number => fieldSize(Buffer.byteLength(value));

function writeString(buffer: Buffer, at: number, field: number, value: string): number {
  const length = Buffer.byteLength(value);
  buffer[at++] = tag(field, WireType.LengthDelimited);
  at = writeVarint(buffer, at, length);
  return at + buffer.write(value, at, length, "utf8");
}

function writeVarintField(buffer: Buffer, at: number, field: number, value: number | bigint): number {
  buffer[at++] = tag(field, WireType.Varint);
  return writeVarint(buffer, at, value);
}

// The fields in field order, as toBinary writes them; proto3 defaults left out.

function errorSize(error: ImportError): number {
  return (
    (error.code !== 0 ? 1 + varintSize(int32Varint(error.code)) : 0) +
    (error.id !== "" ? stringSize(error.id) : 0) +
    (error.message !== "" ? stringSize(error.message) : 0)
  );
}

function resultSize(result: ImportResult): number {
  return (
    (result.index !== 0n ? 1 + varintSize(result.index) : 0) +
    (result.key !== "" ? stringSize(result.key) : 0) +
    (result.outcome !== 0 ? 1 + varintSize(int32Varint(result.outcome)) : 0) +
    (result.userId !== "" ? stringSize(result.userId) : 0) +
    (result.error ? fieldSize(errorSize(result.error)) : 0) +
    (result.replayed ? 2 : 0)
  );
}

function writeResult(buffer: Buffer, at: number, result: ImportResult): number {
  if (result.index !== 0n) at = writeVarintField(buffer, at, 1, result.index);
  if (result.key !== "") at = writeString(buffer, at, 2, result.key);
  if (result.outcome !== 0) at = writeVarintField(buffer, at, 3, int32Varint(result.outcome));
  if (result.userId !== "") at = writeString(buffer, at, 4, result.userId);
  const { error } = result;
  if (error) {
    buffer[at++] = tag(5, WireType.LengthDelimited);
    at = writeVarint(buffer, at, errorSize(error));
    if (error.code !== 0) at = writeVarintField(buffer, at, 1, int32Varint(error.code));
    if (error.id !== "") at = writeString(buffer, at, 2, error.id);
    if (error.message !== "") at = writeString(buffer, at, 3, error.message);
  }
  if (result.replayed) at = writeVarintField(buffer, at, 6, 1);
  return at;
}

const PROGRESS_COUNTS = ["recordsDone", "created", "updated", "skipped", "failed"] as const;

function progressSize(progress: ImportProgress): number {
  let size = 0;
  for (const name of PROGRESS_COUNTS) if (progress[name] !== 0n) size += 1 + varintSize(progress[name]);
  return size;
}

function writeProgress(buffer: Buffer, at: number, progress: ImportProgress): number {
  PROGRESS_COUNTS.forEach((name, i) => {
    if (progress[name] !== 0n) at = writeVarintField(buffer, at, i + 1, progress[name]);
  });
  return at;
}
