/**
 * The field lookup shared per message type (src/edge/protobuf-field-lookup.ts): it is the one
 * protobuf-es's decoder uses, it answers as the shipped one does, and the shipped one is still
 * the per-message map it replaces (when a protobuf-es release changes it, this says so).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { describe, expect, it } from "vitest";
import { ImportRecordSchema, ImportUsersRequestSchema } from "../gen/userport/migration/v1/migration_pb.js";
import { AddHumanUserRequestSchema } from "../gen/zitadel/user/v2/user_service_pb.js";
import { reflectedMessagePrototype, shippedFindNumber } from "../src/edge/protobuf-field-lookup.js";

describe("protobuf-es field lookup per message type", () => {
  it("is the lookup protobuf-es's reflected messages use, and the shipped one still builds a map per message", () => {
    const message = reflect(AddHumanUserRequestSchema);
    expect(Object.getPrototypeOf(message)).toBe(reflectedMessagePrototype);
    expect(message.findNumber).toBe(reflectedMessagePrototype.findNumber);
    expect(message.findNumber).not.toBe(shippedFindNumber);
    expect(String(shippedFindNumber)).toContain("this._fieldsByNumber = new Map(this.desc.fields.map(");
  });

  it("finds every field, and no other number, as the shipped lookup does", () => {
    for (const schema of [AddHumanUserRequestSchema, ImportRecordSchema, ImportUsersRequestSchema]) {
      const numbers = [0, ...schema.fields.map((field) => field.number), 999, 536870911];
      for (const number of numbers) {
        const shipped = shippedFindNumber.call(reflect(schema), number);
        expect(reflect(schema).findNumber(number)).toBe(shipped);
        if (number === 0 || number >= 999) expect(shipped).toBeUndefined();
        else expect(shipped?.number).toBe(number);
      }
    }
  });

  it("decodes nested messages, lists and oneofs as before", () => {
    const request = create(ImportUsersRequestSchema, {
      payload: {
        case: "records",
        value: {
          records: [
            create(ImportRecordSchema, {
              key: "k1",
              user: {
                case: "human",
                value: create(AddHumanUserRequestSchema, {
                  username: "alice",
                  profile: { givenName: "Alice", familyName: "Doe" },
                  email: { email: "alice@example.com", verification: { case: "isVerified", value: true } },
                  metadata: [{ key: "a", value: new Uint8Array([1, 2]) }],
                  passwordType: { case: "hashedPassword", value: { hash: "$2b$10$x" } },
                }),
              },
            }),
            create(ImportRecordSchema, { key: "k2" }),
          ],
        },
      },
    });
    expect(fromBinary(ImportUsersRequestSchema, toBinary(ImportUsersRequestSchema, request))).toEqual(request);
  });
});
