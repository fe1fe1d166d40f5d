/**
 * The hand-written encoding of ImportUsers results (src/edge/import-results.ts) against
 * protobuf-es's own: the same bytes for every kind of result, and a guard that fails when the
 * messages gain a field the hand-written encoding does not write. Over the wire, every
 * ImportUsers test in test/bulk-import.test.ts reads its results through it (binary transports)
 * or without it (Connect JSON).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  ImportErrorSchema,
  ImportOutcome,
  ImportProgressSchema,
  ImportResultSchema,
  ImportUsersResponseSchema,
} from "../gen/userport/migration/v1/migration_pb.js";
import { preEncoded } from "../src/edge/import-results.js";

const results = [
  create(ImportResultSchema, { index: 0n, key: "", outcome: ImportOutcome.CREATED, userId: "" }),
  create(ImportResultSchema, { index: 1n, key: "alice", outcome: ImportOutcome.CREATED, userId: "312909075212468632" }),
  create(ImportResultSchema, { index: 2n ** 53n + 7n, key: "zoë@example.com ✓", outcome: ImportOutcome.UPDATED, userId: "u", replayed: true }),
  create(ImportResultSchema, { index: 300n, key: "k", outcome: ImportOutcome.SKIPPED, userId: "other" }),
  create(ImportResultSchema, {
    index: 301n,
    key: "bad",
    outcome: ImportOutcome.FAILED,
    error: create(ImportErrorSchema, { code: 3, id: "V2-zzad3", message: "Username is empty (V2-zzad3)" }),
  }),
  create(ImportResultSchema, { index: 302n, key: "empty error", outcome: ImportOutcome.FAILED, error: create(ImportErrorSchema, {}) }),
  create(ImportResultSchema, { index: 303n, outcome: ImportOutcome.UNSPECIFIED, replayed: true }),
  // Negative int32s go out as ten-byte varints.
  create(ImportResultSchema, { index: 304n, outcome: -1 as ImportOutcome, error: create(ImportErrorSchema, { code: -2147483648, id: "é" }) }),
  create(ImportResultSchema, { index: 18446744073709551615n, key: "x".repeat(300), outcome: 99 as ImportOutcome }),
];

describe("ImportUsers results encoded by hand", () => {
  it.each([
    ["one result, progress", [results[1]!], create(ImportProgressSchema, { recordsDone: 1n, created: 1n })],
    [
      "every kind of result, every count",
      results,
      create(ImportProgressSchema, { recordsDone: 2n ** 63n, created: 2n ** 32n, updated: 3n, skipped: 4n, failed: 5n }),
    ],
    ["every kind of result, small counts", results, create(ImportProgressSchema, { recordsDone: 9n, created: 2n, updated: 3n, skipped: 4n, failed: 5n })],
    ["results without progress", results, undefined],
    ["progress of zeros", [results[0]!], create(ImportProgressSchema, {})],
  ])("writes the bytes protobuf-es writes: %s", (_name, list, progress) => {
    const message = create(ImportUsersResponseSchema, { results: list, ...(progress ? { progress } : {}) });
    const fast = preEncoded(message);
    expect(fast).not.toBe(message);
    expect(fast.results).toEqual([]);
    const bytes = toBinary(ImportUsersResponseSchema, fast);
    expect(Buffer.from(bytes).toString("hex")).toBe(Buffer.from(toBinary(ImportUsersResponseSchema, message)).toString("hex"));
    expect(fromBinary(ImportUsersResponseSchema, bytes)).toEqual(message);
  });

  it("leaves a response without results, or with the job, to protobuf-es", () => {
    const first = create(ImportUsersResponseSchema, { job: { id: "job" } });
    expect(preEncoded(first)).toBe(first);
    const empty = create(ImportUsersResponseSchema, { progress: { recordsDone: 1n } });
    expect(preEncoded(empty)).toBe(empty);
  });

  it("knows every field of the messages it writes (a new field must be written there too)", () => {
    const numbers = (fields: ReadonlyArray<{ number: number }>) => fields.map((field) => field.number);
    expect(numbers(ImportUsersResponseSchema.fields)).toEqual([1, 2, 3]);
    expect(numbers(ImportResultSchema.fields)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(numbers(ImportErrorSchema.fields)).toEqual([1, 2, 3]);
    expect(numbers(ImportProgressSchema.fields)).toEqual([1, 2, 3, 4, 5]);
  });
});
