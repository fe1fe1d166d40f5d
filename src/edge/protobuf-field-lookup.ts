import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { EmptySchema } from "@bufbuild/protobuf/wkt";

/**
 * protobuf-es (2.13 to 2.17 at least) looks a field up by number, for every field it decodes,
 * through a `Map` it builds on first use for each message being decoded
 * (`ReflectMessageImpl.findNumber` in `@bufbuild/protobuf/dist/esm/reflect/reflect.js`): a bulk
 * import record of six messages makes six such maps, garbage the moment the record is decoded.
 * The fields of a message type never change, so the map is made here once per type and shared.
 *
 * Measured on a dry run of 300,000 users over ImportUsers (BENCHMARKS.md, "Bulk import"): main
 * thread 23-24 → 22 µs a user, 34,000 → 37,000 users/s, in alternating runs. Every decode in the
 * server takes the same path (gRPC, gRPC-Web and Connect binary requests), and so do the results
 * `userport import` decodes; both import this module.
 *
 * It replaces the method on the class's prototype, reached through a reflected message because
 * the class is not exported. When a protobuf-es release changes that method, the check in
 * test/protobuf-field-lookup.test.ts fails, and this can be dropped or redone.
 */
const byType = new WeakMap<DescMessage, Map<number, DescField>>();

interface FieldLookup {
  readonly desc: DescMessage;
  findNumber(number: number): DescField | undefined;
}

/** The prototype of protobuf-es's reflected messages, whose `findNumber` this replaces. */
export const reflectedMessagePrototype = Object.getPrototypeOf(reflect(EmptySchema)) as FieldLookup;

/** The field lookup as protobuf-es ships it, for the test that notices when it changes. */
export const shippedFindNumber = reflectedMessagePrototype.findNumber;

reflectedMessagePrototype.findNumber = function findNumber(this: FieldLookup, number: number): DescField | undefined {
  let fields = byType.get(this.desc);
  if (fields === undefined) {
    fields = new Map(this.desc.fields.map((field) => [field.number, field]));
    byType.set(this.desc, fields);
  }
  return fields.get(number);
};
