/**
 * `native`: NDJSON, one bulk-API record per line: the protobuf-JSON of ZITADEL v2
 * `AddHumanUserRequest` with an optional `key` (the user's id in the source; defaults to
 * `userId`, `username` or the email). Each line is checked against the message's schema and its
 * hash against the hash families, and passes on unchanged otherwise.
 */
import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import type { Readable } from "node:stream";
import { AddHumanUserRequestSchema } from "../../../../gen/zitadel/user/v2/user_service_pb.js";
import { ndjson } from "./lines.js";
import { checkHash, describe, RecordError } from "./record.js";
import type { Converted, ConvertOptions } from "./types.js";

export async function* convertNative(input: Readable, options: ConvertOptions = {}): AsyncGenerator<Converted> {
  for await (const { line, value, error } of ndjson(input)) {
    if (error !== undefined) {
      yield { line, error };
      continue;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      yield { line, error: "line is not a JSON object" };
      continue;
    }
    const { key: rawKey, ...record } = value as JsonObject;
    const email = (record.email as JsonObject | undefined)?.email;
    const key = [rawKey, record.userId, record.username, email].find((k) => typeof k === "string" && k !== "") as string | undefined;
    try {
      if (rawKey !== undefined && typeof rawKey !== "string") throw new RecordError("key is not a string");
      const message = fromJson(AddHumanUserRequestSchema, record);
      if (message.passwordType.case === "hashedPassword") checkHash(message.passwordType.value.hash);
      if (options.orgId && record.organization === undefined) record.organization = { orgId: options.orgId };
      yield { line, key: key ?? `line ${line}`, record };
    } catch (err) {
      const text = err instanceof RecordError ? err.message : `not a valid AddHumanUserRequest: ${describe(err)}`;
      yield { line, ...(key !== undefined ? { key } : {}), error: text };
    }
  }
}
