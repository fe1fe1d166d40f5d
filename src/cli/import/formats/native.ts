/**
 * `native`: NDJSON of the bulk API's records, one `userport.migration.v1.ImportRecord` in
 * protobuf JSON per line (proto/userport/migration/v1/migration.proto) — the same lines an import
 * job's NDJSON upload takes: `{"key": "crm-1", "human": <AddHumanUserRequest>}` or
 * `{"key": "svc-1", "machine": <CreateUserRequest with "machine">}`. `key` is optional (the
 * username, else the user id or email, else the line). Each line is checked against the message's
 * schema and a hash against the hash families, and passes on unchanged otherwise.
 */
import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import type { Readable } from "node:stream";
import { ImportRecordSchema } from "../../../../gen/userport/migration/v1/migration_pb.js";
import { ndjson } from "./lines.js";
import { checkHash, describe, RecordError } from "./record.js";
import type { Converted, ConvertOptions } from "./types.js";

const isObject = (value: unknown): value is JsonObject => value !== null && typeof value === "object" && !Array.isArray(value);
const text = (value: unknown) => (typeof value === "string" && value !== "" ? value : undefined);

export async function* convertNative(input: Readable, options: ConvertOptions = {}): AsyncGenerator<Converted> {
  for await (const { line, value, error } of ndjson(input)) {
    if (error !== undefined) {
      yield { line, error };
      continue;
    }
    if (!isObject(value)) {
      yield { line, error: "line is not a JSON object" };
      continue;
    }
    const human = isObject(value.human) ? value.human : undefined;
    const machine = isObject(value.machine) ? value.machine : undefined;
    const user = human ?? machine ?? {};
    const key = text(value.key) ?? text(user.username) ?? text(user.userId) ?? text((user.email as JsonObject | undefined)?.email);
    try {
      if (value.key !== undefined && typeof value.key !== "string") throw new RecordError("key is not a string");
      if (!human && !machine) throw new RecordError('not an ImportRecord: it needs "human" (AddHumanUserRequest) or "machine" (CreateUserRequest)');
      // The organisation goes in before the parse, so that the message carries it too.
      if (options.orgId && human && human.organization === undefined) human.organization = { orgId: options.orgId };
      if (options.orgId && !human && machine && machine.organizationId === undefined) machine.organizationId = options.orgId;
      const message = fromJson(ImportRecordSchema, value);
      message.key = key ?? `line ${line}`;
      if (message.user.case === "human") {
        if (message.user.value.passwordType.case === "hashedPassword") checkHash(message.user.value.passwordType.value.hash);
        yield { line, key: message.key, record: human!, message };
      } else if (message.user.case === "machine") {
        if (message.user.value.userType.case !== "machine")
          throw new RecordError('"machine" must hold a CreateUserRequest with "machine" (humans go into "human")');
        yield { line, key: message.key, record: machine!, machine: true, message };
      } else throw new RecordError('not an ImportRecord: it needs "human" or "machine"');
    } catch (err) {
      const text = err instanceof RecordError ? err.message : `not a valid ImportRecord: ${describe(err)}`;
      yield { line, ...(key !== undefined ? { key } : {}), error: text };
    }
  }
}
