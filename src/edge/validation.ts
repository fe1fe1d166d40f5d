import { type DescField, type DescMessage, type DescOneof, getOption, hasOption, isFieldSet, type Message } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import {
  BoolRulesSchema,
  type BytesRules,
  BytesRulesSchema,
  type DurationRules,
  DurationRulesSchema,
  disabled as disabledOption,
  type EnumRules,
  EnumRulesSchema,
  type FieldRules,
  ignored as ignoredOption,
  required as oneofRequiredOption,
  type RepeatedRules,
  RepeatedRulesSchema,
  rules as fieldRulesOption,
  type StringRules,
  StringRulesSchema,
  file_validate_validate,
} from "../../gen/validate/validate_pb.js";
import { invalidArgument } from "../domain/errors.js";

/**
 * Request validation from the protos' protoc-gen-validate (PGV) annotations
 * (`[(validate.rules).string = {min_len: 1, max_len: 200}]` …), run as ZITADEL runs it
 * (internal/api/grpc/server/middleware/validation_interceptor.go calls the message's generated
 * `Validate()`): the first violation becomes InvalidArgument without a ZITADEL error id, with
 * the text PGV's Go templates generate (protoc-gen-validate templates/goshared/*.go), e.g.
 * `invalid AddHumanUserRequest.UserName: value length must be between 1 and 200 runes, inclusive`
 * or `invalid X.Profile: embedded message failed validation | caused by: invalid Y.FirstName: …`.
 *
 * Why not a library: `@bufbuild/protovalidate` validates `buf.validate` (protovalidate) rules
 * with CEL and reports its own violation texts; it neither reads PGV's `validate.rules` nor
 * words its errors as PGV does, and no maintained JS package reads PGV annotations from
 * protobuf-es descriptors. So this module interprets the annotations itself.
 *
 * The rule kinds implemented are the ones ZITADEL puts on the messages userport serves:
 * string (length in runes and bytes, const, in/not_in, prefix/suffix/contains/not_contains,
 * email, ignore_empty), bytes (lengths, ignore_empty), enum (const, defined_only, in/not_in),
 * bool const, numbers (const, lt/lte/gt/gte, in/not_in), repeated (item counts, unique,
 * items, ignore_empty), message required, duration (required, const, lt/lte/gt/gte), oneof
 * required, and embedded messages, repeated or not. Any other annotation fails when the
 * validator is compiled (at start-up), so a rule can never be silently ignored.
 *
 * Order as in PGV's generated code: the plain fields in declaration order, then the real oneofs,
 * then the proto3 `optional` fields that are set; the first violation wins.
 */

/** Checks a message; answers the PGV error text of the first violation, or undefined. */
type Check = (message: Record<string, unknown>) => string | undefined;

interface Compiled {
  /** Undefined while compiling (recursive types) and for messages without any rule. */
  check: Check | undefined;
  /** False while the message's own fields are being compiled (a recursive type refers to it). */
  done: boolean;
}

const compiled = new Map<DescMessage, Compiled>();

/**
 * Throws the PGV error of `message` (of type `desc`) as an InvalidArgument DomainError.
 * The rules of each message type are compiled once and cached: this runs on every request.
 */
export function validateMessage(desc: DescMessage, message: Message): void {
  const error = compile(desc).check?.(message as unknown as Record<string, unknown>);
  if (error !== undefined) throw invalidArgument("", error);
}

/** Compiles the rules of `desc` and every message it embeds; throws on an unsupported rule. */
export function compileValidator(desc: DescMessage): void {
  compile(desc);
}

function compile(desc: DescMessage): Compiled {
  let entry = compiled.get(desc);
  if (entry) return entry;
  entry = { check: undefined, done: false };
  compiled.set(desc, entry);
  const skipped =
    isWellKnown(desc) ||
    (hasOption(desc, ignoredOption) && getOption(desc, ignoredOption)) ||
    (hasOption(desc, disabledOption) && getOption(desc, disabledOption));
  if (skipped) {
    entry.done = true;
    return entry;
  }
  const typeName = goTypeName(desc);
  const plain: Check[] = [];
  const optional: Check[] = [];
  for (const field of desc.fields) {
    if (field.oneof) continue;
    const check = fieldCheck(field, typeName);
    if (!check) continue;
    if (field.proto.proto3Optional) {
      const local = field.localName;
      optional.push((m) => (m[local] === undefined ? undefined : check(m[local])));
    } else {
      const local = field.localName;
      plain.push((m) => check(m[local]));
    }
  }
  const oneofs = desc.oneofs.map((oneof) => oneofCheck(oneof, typeName)).filter((c): c is Check => c !== undefined);
  const all = [...plain, ...oneofs, ...optional];
  entry.done = true;
  if (all.length > 0) {
    entry.check = (m) => {
      for (const check of all) {
        const error = check(m);
        if (error !== undefined) return error;
      }
      return undefined;
    };
  }
  return entry;
}

/** A check of one field's value; undefined when the field can never fail. */
type ValueCheck = (value: unknown) => string | undefined;

function fieldCheck(field: DescField, typeName: string): ValueCheck | undefined {
  const rules = hasOption(field, fieldRulesOption) ? getOption(field, fieldRulesOption) : undefined;
  const name = goName(field.name);
  const err = (reason: string, fieldName = name) => `invalid ${typeName}.${fieldName}: ${reason}`;
  switch (field.fieldKind) {
    case "scalar":
    case "enum":
      return rules ? scalarCheck(field, rules, (reason) => err(reason)) : undefined;
    case "message":
      return messageCheck(field.message, rules, (reason) => err(reason));
    case "list": {
      const repeated = rules?.type.case === "repeated" ? rules.type.value : undefined;
      if (rules && rules.type.case !== undefined && !repeated) throw unsupported(field, rules.type.case);
      return listCheck(field, repeated, (reason, index) => err(reason, index === undefined ? name : `${name}[${index}]`));
    }
    case "map": {
      if (rules && rules.type.case !== undefined) throw unsupported(field, rules.type.case);
      if (field.mapKind !== "message") return undefined;
      const inner = compile(field.message);
      return (value) => {
        const check = inner.check;
        if (!check) return undefined;
        for (const [key, item] of Object.entries(value as Record<string, Record<string, unknown>>)) {
          const cause = check(item);
          if (cause !== undefined) return `${err("embedded message failed validation", `${name}[${key}]`)} | caused by: ${cause}`;
        }
        return undefined;
      };
    }
  }
}

function unsupported(field: DescField, kind: string): Error {
  return new Error(`PGV rule kind "${kind}" on ${field.parent.typeName}.${field.name} is not supported by src/edge/validation.ts`);
}

/** An embedded (or repeated) message: `required`, and the message's own rules. */
function messageCheck(desc: DescMessage, rules: FieldRules | undefined, err: (reason: string) => string): ValueCheck | undefined {
  if (rules?.type.case === "duration") return durationCheck(rules.type.value, err);
  if (rules && rules.type.case !== undefined) throw new Error(`PGV rule kind "${rules.type.case}" on a ${desc.typeName} field is not supported`);
  const required = rules?.message?.required === true;
  const skip = rules?.message?.skip === true;
  const inner = skip ? undefined : compile(desc);
  const neverFails = !inner || (inner.done && inner.check === undefined);
  if (!required && neverFails) return undefined;
  return (value) => {
    if (value === undefined) return required ? err("value is required") : undefined;
    const cause = inner?.check?.(value as Record<string, unknown>);
    return cause === undefined ? undefined : `${err("embedded message failed validation")} | caused by: ${cause}`;
  };
}

function listCheck(
  field: DescField & { fieldKind: "list" },
  rules: RepeatedRules | undefined,
  err: (reason: string, index?: number) => string,
): ValueCheck | undefined {
  let item: ((value: unknown, index: number) => string | undefined) | undefined;
  const itemRules = rules?.items;
  if (field.listKind === "message") {
    if (itemRules && itemRules.type.case !== undefined) throw unsupported(field, `items.${itemRules.type.case}`);
    const inner = itemRules?.message?.skip === true ? undefined : compile(field.message);
    if (inner && !(inner.done && inner.check === undefined)) {
      item = (value, index) => {
        const cause = inner.check?.(value as Record<string, unknown>);
        return cause === undefined ? undefined : `${err("embedded message failed validation", index)} | caused by: ${cause}`;
      };
    }
  } else if (itemRules && itemRules.type.case !== undefined) {
    const bound = (index: number) => scalarCheck(field, itemRules, (reason) => err(reason, index));
    const probe = bound(0);
    // The shared check runs first; the message naming the failing index is built only on failure.
    if (probe) item = (value, index) => (probe(value) === undefined ? undefined : bound(index)!(value));
  }
  const counts = rules ? itemCountCheck(rules, (reason) => err(reason)) : undefined;
  const unique = rules && isFieldSet(rules, RepeatedRulesSchema.field.unique) && rules.unique;
  const ignoreEmpty = rules?.ignoreEmpty === true;
  if (!item && !counts && !unique) return undefined;
  return (value) => {
    const list = value as unknown[];
    if (ignoreEmpty && list.length === 0) return undefined;
    const countError = counts?.(list.length);
    if (countError !== undefined) return countError;
    const seen = unique ? new Set<unknown>() : undefined;
    for (let i = 0; i < list.length; i++) {
      const entry = list[i];
      if (seen) {
        const key = entry instanceof Uint8Array ? Buffer.from(entry).toString("latin1") : entry;
        if (seen.has(key)) return err("repeated value must contain unique items", i);
        seen.add(key);
      }
      const error = item?.(entry, i);
      if (error !== undefined) return error;
    }
    return undefined;
  };
}

function itemCountCheck(rules: RepeatedRules, err: (reason: string) => string): ((count: number) => string | undefined) | undefined {
  const hasMin = isFieldSet(rules, RepeatedRulesSchema.field.minItems) && rules.minItems !== 0n;
  const hasMax = isFieldSet(rules, RepeatedRulesSchema.field.maxItems);
  const min = Number(rules.minItems);
  const max = Number(rules.maxItems);
  if (hasMin && min === max) return (n) => (n !== min ? err(`value must contain exactly ${min} item(s)`) : undefined);
  if (hasMin && hasMax) return (n) => (n < min || n > max ? err(`value must contain between ${min} and ${max} items, inclusive`) : undefined);
  if (hasMin) return (n) => (n < min ? err(`value must contain at least ${min} item(s)`) : undefined);
  if (hasMax) return (n) => (n > max ? err(`value must contain no more than ${max} item(s)`) : undefined);
  return undefined;
}

/** Rules of a string, bytes, bool, number or enum value (a field or a repeated item). */
function scalarCheck(field: DescField, rules: FieldRules, err: (reason: string) => string): ValueCheck | undefined {
  const type = rules.type;
  switch (type.case) {
    case undefined:
      return undefined;
    case "string":
      return stringCheck(type.value, err);
    case "bytes":
      return bytesCheck(type.value, err);
    case "enum": {
      const values = field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum") ? field.enum : undefined;
      if (!values) throw unsupported(field, "enum");
      return enumCheck(type.value, new Set(values.values.map((v) => v.number)), err);
    }
    case "bool": {
      const rule = type.value;
      if (!isFieldSet(rule, BoolRulesSchema.field.const)) return undefined;
      return (value) => (value !== rule.const ? err(`value must equal ${rule.const}`) : undefined);
    }
    case "float":
    case "double":
    case "int32":
    case "int64":
    case "uint32":
    case "uint64":
    case "sint32":
    case "sint64":
    case "fixed32":
    case "fixed64":
    case "sfixed32":
    case "sfixed64":
      return numberCheck(type.value as NumberRules, err);
    default:
      throw unsupported(field, type.case);
  }
}

type NumberRules = Message & {
  const: number | bigint;
  lt: number | bigint;
  lte: number | bigint;
  gt: number | bigint;
  gte: number | bigint;
  in: (number | bigint)[];
  notIn: (number | bigint)[];
  ignoreEmpty: boolean;
};

/** Whether a rule of a number's rules (FloatRules … SFixed64Rules, all alike) is set. */
function isSet(rules: NumberRules, name: string): boolean {
  const schema = file_validate_validate.messages.find((m) => m.typeName === rules.$typeName)!;
  return isFieldSet(rules as never, schema.fields.find((f) => f.localName === name)!);
}

function numberCheck(rules: NumberRules, err: (reason: string) => string): ValueCheck | undefined {
  const checks: ((value: number | bigint) => string | undefined)[] = [];
  if (isSet(rules, "const")) checks.push((v) => (v !== rules.const ? err(`value must equal ${rules.const}`) : undefined));
  if (rules.in.length > 0) checks.push((v) => (!rules.in.includes(v) ? err(`value must be in list [${rules.in.join(" ")}]`) : undefined));
  else if (rules.notIn.length > 0) {
    checks.push((v) => (rules.notIn.includes(v) ? err(`value must not be in list [${rules.notIn.join(" ")}]`) : undefined));
  }
  const range = rangeCheck(
    {
      lt: isSet(rules, "lt") ? rules.lt : undefined,
      lte: isSet(rules, "lte") ? rules.lte : undefined,
      gt: isSet(rules, "gt") ? rules.gt : undefined,
      gte: isSet(rules, "gte") ? rules.gte : undefined,
    },
    (x) => String(x),
    err,
  );
  if (range) checks.push(range);
  if (checks.length === 0) return undefined;
  const ignoreEmpty = rules.ignoreEmpty;
  return (value) => {
    const v = value as number | bigint;
    if (ignoreEmpty && (v === 0 || v === 0n)) return undefined;
    for (const check of checks) {
      const error = check(v);
      if (error !== undefined) return error;
    }
    return undefined;
  };
}

type Bound = number | bigint;

/** PGV's ltgt template: one message for the combination of bounds that is set. */
function rangeCheck(
  r: { lt: Bound | undefined; lte: Bound | undefined; gt: Bound | undefined; gte: Bound | undefined },
  show: (bound: Bound) => string,
  err: (reason: string) => string,
): ((value: Bound) => string | undefined) | undefined {
  const { lt, lte, gt, gte } = r;
  if (lt !== undefined) {
    if (gt !== undefined) {
      return lt > gt
        ? (v) => (v <= gt || v >= lt ? err(`value must be inside range (${show(gt)}, ${show(lt)})`) : undefined)
        : (v) => (v >= lt && v <= gt ? err(`value must be outside range [${show(lt)}, ${show(gt)}]`) : undefined);
    }
    if (gte !== undefined) {
      return lt > gte
        ? (v) => (v < gte || v >= lt ? err(`value must be inside range [${show(gte)}, ${show(lt)})`) : undefined)
        : (v) => (v >= lt && v < gte ? err(`value must be outside range [${show(lt)}, ${show(gte)})`) : undefined);
    }
    return (v) => (v >= lt ? err(`value must be less than ${show(lt)}`) : undefined);
  }
  if (lte !== undefined) {
    if (gt !== undefined) {
      return lte > gt
        ? (v) => (v <= gt || v > lte ? err(`value must be inside range (${show(gt)}, ${show(lte)}]`) : undefined)
        : (v) => (v > lte && v <= gt ? err(`value must be outside range (${show(lte)}, ${show(gt)}]`) : undefined);
    }
    if (gte !== undefined) {
      return lte > gte
        ? (v) => (v < gte || v > lte ? err(`value must be inside range [${show(gte)}, ${show(lte)}]`) : undefined)
        : (v) => (v > lte && v < gte ? err(`value must be outside range (${show(lte)}, ${show(gte)})`) : undefined);
    }
    return (v) => (v > lte ? err(`value must be less than or equal to ${show(lte)}`) : undefined);
  }
  if (gt !== undefined) return (v) => (v <= gt ? err(`value must be greater than ${show(gt)}`) : undefined);
  if (gte !== undefined) return (v) => (v < gte ? err(`value must be greater than or equal to ${show(gte)}`) : undefined);
  return undefined;
}

function enumCheck(rules: EnumRules, defined: Set<number>, err: (reason: string) => string): ValueCheck | undefined {
  const checks: ((value: number) => string | undefined)[] = [];
  if (isFieldSet(rules, EnumRulesSchema.field.const)) checks.push((v) => (v !== rules.const ? err(`value must equal ${rules.const}`) : undefined));
  if (rules.in.length > 0) checks.push((v) => (!rules.in.includes(v) ? err(`value must be in list [${rules.in.join(" ")}]`) : undefined));
  else if (rules.notIn.length > 0) checks.push((v) => (rules.notIn.includes(v) ? err(`value must not be in list [${rules.notIn.join(" ")}]`) : undefined));
  if (rules.definedOnly) checks.push((v) => (!defined.has(v) ? err("value must be one of the defined enum values") : undefined));
  if (checks.length === 0) return undefined;
  return (value) => {
    for (const check of checks) {
      const error = check(value as number);
      if (error !== undefined) return error;
    }
    return undefined;
  };
}

/** Go's %q for a string, as PGV's `lit` prints prefixes and the like. */
const goQuote = (s: string) => JSON.stringify(s);

function stringCheck(rules: StringRules, err: (reason: string) => string): ValueCheck | undefined {
  const f = StringRulesSchema.field;
  const set = (field: DescField) => isFieldSet(rules, field);
  const checks: ((value: string) => string | undefined)[] = [];
  if (set(f.const)) checks.push((v) => (v !== rules.const ? err(`value must equal ${rules.const}`) : undefined));
  if (rules.in.length > 0) checks.push((v) => (!rules.in.includes(v) ? err(`value must be in list [${rules.in.join(" ")}]`) : undefined));
  else if (rules.notIn.length > 0) checks.push((v) => (rules.notIn.includes(v) ? err(`value must not be in list [${rules.notIn.join(" ")}]`) : undefined));

  const hasMin = set(f.minLen);
  const hasMax = set(f.maxLen);
  const min = Number(rules.minLen);
  const max = Number(rules.maxLen);
  if (set(f.len) || (hasMin && hasMax && min === max)) {
    const len = set(f.len) ? Number(rules.len) : min;
    checks.push((v) => (runeCount(v) !== len ? err(`value length must be ${len} runes`) : undefined));
  } else if (hasMin && hasMax) {
    checks.push((v) => {
      const n = runeCount(v);
      return n < min || n > max ? err(`value length must be between ${min} and ${max} runes, inclusive`) : undefined;
    });
  } else if (hasMin) {
    checks.push((v) => (runeCount(v) < min ? err(`value length must be at least ${min} runes`) : undefined));
  } else if (hasMax) {
    checks.push((v) => (runeCount(v) > max ? err(`value length must be at most ${max} runes`) : undefined));
  }

  const hasMinBytes = set(f.minBytes);
  const hasMaxBytes = set(f.maxBytes);
  const minBytes = Number(rules.minBytes);
  const maxBytes = Number(rules.maxBytes);
  const bytes = (v: string) => Buffer.byteLength(v, "utf8");
  if (set(f.lenBytes) || (hasMinBytes && hasMaxBytes && minBytes === maxBytes)) {
    const len = set(f.lenBytes) ? Number(rules.lenBytes) : minBytes;
    checks.push((v) => (bytes(v) !== len ? err(`value length must be ${len} bytes`) : undefined));
  } else if (hasMinBytes && hasMaxBytes) {
    checks.push((v) => {
      const n = bytes(v);
      return n < minBytes || n > maxBytes ? err(`value length must be between ${minBytes} and ${maxBytes} bytes, inclusive`) : undefined;
    });
  } else if (hasMinBytes) {
    checks.push((v) => (bytes(v) < minBytes ? err(`value length must be at least ${minBytes} bytes`) : undefined));
  } else if (hasMaxBytes) {
    checks.push((v) => (bytes(v) > maxBytes ? err(`value length must be at most ${maxBytes} bytes`) : undefined));
  }

  if (set(f.prefix)) checks.push((v) => (!v.startsWith(rules.prefix) ? err(`value does not have prefix ${goQuote(rules.prefix)}`) : undefined));
  if (set(f.suffix)) checks.push((v) => (!v.endsWith(rules.suffix) ? err(`value does not have suffix ${goQuote(rules.suffix)}`) : undefined));
  if (set(f.contains)) {
    checks.push((v) => (!v.includes(rules.contains) ? err(`value does not contain substring ${goQuote(rules.contains)}`) : undefined));
  }
  if (set(f.notContains)) {
    checks.push((v) => (v.includes(rules.notContains) ? err(`value contains substring ${goQuote(rules.notContains)}`) : undefined));
  }
  switch (rules.wellKnown.case) {
    case undefined:
      break;
    case "email":
      if (rules.wellKnown.value) {
        checks.push((v) => {
          const cause = emailError(v);
          return cause === undefined ? undefined : `${err("value must be a valid email address")} | caused by: ${cause}`;
        });
      }
      break;
    default:
      throw new Error(`PGV string rule "${rules.wellKnown.case}" is not supported by src/edge/validation.ts`);
  }
  if (set(f.pattern)) throw new Error('PGV string rule "pattern" is not supported by src/edge/validation.ts');
  if (checks.length === 0) return undefined;
  const ignoreEmpty = rules.ignoreEmpty;
  return (value) => {
    const v = value as string;
    if (ignoreEmpty && v === "") return undefined;
    for (const check of checks) {
      const error = check(v);
      if (error !== undefined) return error;
    }
    return undefined;
  };
}

function bytesCheck(rules: BytesRules, err: (reason: string) => string): ValueCheck | undefined {
  const f = BytesRulesSchema.field;
  const set = (field: DescField) => isFieldSet(rules, field);
  const hasMin = set(f.minLen);
  const hasMax = set(f.maxLen);
  const min = Number(rules.minLen);
  const max = Number(rules.maxLen);
  let check: ((n: number) => string | undefined) | undefined;
  if (set(f.len) || (hasMin && hasMax && min === max)) {
    const len = set(f.len) ? Number(rules.len) : min;
    check = (n) => (n !== len ? err(`value length must be ${len} bytes`) : undefined);
  } else if (hasMin && hasMax) {
    check = (n) => (n < min || n > max ? err(`value length must be between ${min} and ${max} bytes, inclusive`) : undefined);
  } else if (hasMin) {
    check = (n) => (n < min ? err(`value length must be at least ${min} bytes`) : undefined);
  } else if (hasMax) {
    check = (n) => (n > max ? err(`value length must be at most ${max} bytes`) : undefined);
  }
  for (const other of [f.const, f.pattern, f.prefix, f.suffix, f.contains]) {
    if (set(other)) throw new Error(`PGV bytes rule "${other.name}" is not supported by src/edge/validation.ts`);
  }
  if (rules.in.length > 0 || rules.notIn.length > 0 || rules.wellKnown.case !== undefined) {
    throw new Error("PGV bytes rules in/not_in/ip are not supported by src/edge/validation.ts");
  }
  if (!check) return undefined;
  const ignoreEmpty = rules.ignoreEmpty;
  return (value) => {
    const n = (value as Uint8Array).length;
    if (ignoreEmpty && n === 0) return undefined;
    return check(n);
  };
}

/** PGV's duration template: required, then the bounds, printed as Go prints a time.Duration. */
function durationCheck(rules: DurationRules, err: (reason: string) => string): ValueCheck | undefined {
  const f = DurationRulesSchema.field;
  const nanos = (d: Duration | undefined) => (d === undefined ? undefined : d.seconds * 1_000_000_000n + BigInt(d.nanos));
  if (rules.in.length > 0 || rules.notIn.length > 0) throw new Error("PGV duration in/not_in are not supported by src/edge/validation.ts");
  const constant = isFieldSet(rules, f.const) ? nanos(rules.const) : undefined;
  const range = rangeCheck(
    {
      lt: isFieldSet(rules, f.lt) ? nanos(rules.lt) : undefined,
      lte: isFieldSet(rules, f.lte) ? nanos(rules.lte) : undefined,
      gt: isFieldSet(rules, f.gt) ? nanos(rules.gt) : undefined,
      gte: isFieldSet(rules, f.gte) ? nanos(rules.gte) : undefined,
    },
    (x) => goDuration(BigInt(x)),
    err,
  );
  const required = rules.required;
  if (!required && constant === undefined && !range) return undefined;
  return (value) => {
    if (value === undefined) return required ? err("value is required") : undefined;
    const d = value as Duration;
    const n = nanos(d)!;
    // Go's durationpb.CheckValid: seconds within ±10000 years, nanos below a second, same sign.
    const maxSeconds = 315_576_000_000n;
    if (
      d.seconds > maxSeconds ||
      d.seconds < -maxSeconds ||
      d.nanos <= -1e9 ||
      d.nanos >= 1e9 ||
      (d.seconds > 0n && d.nanos < 0) ||
      (d.seconds < 0n && d.nanos > 0)
    ) {
      return err("value is not a valid duration");
    }
    if (constant !== undefined && n !== constant) return err(`value must equal ${goDuration(constant)}`);
    return range?.(n);
  };
}

/** Go's time.Duration.String(), e.g. "0s", "1.5s", "2m30s", "1h0m0s", "300ms". */
export function goDuration(nanos: bigint): string {
  if (nanos === 0n) return "0s";
  const negative = nanos < 0n;
  let u = negative ? -nanos : nanos;
  let out: string;
  if (u < 1_000_000_000n) {
    const [unit, scale] = u < 1_000n ? ["ns", 1n] : u < 1_000_000n ? ["µs", 1_000n] : ["ms", 1_000_000n];
    out = fraction(u, scale) + unit;
  } else {
    const seconds = fraction(u % 60_000_000_000n, 1_000_000_000n);
    u /= 60_000_000_000n;
    out = `${seconds}s`;
    if (u > 0n) {
      out = `${u % 60n}m${out}`;
      u /= 60n;
      if (u > 0n) out = `${u}h${out}`;
    }
  }
  return negative ? `-${out}` : out;
}

function fraction(value: bigint, scale: bigint): string {
  const whole = value / scale;
  const rest = value % scale;
  if (rest === 0n) return whole.toString();
  const digits = rest
    .toString()
    .padStart(scale.toString().length - 1, "0")
    .replace(/0+$/, "");
  return `${whole}.${digits}`;
}

/** A real oneof: `(validate.required)`, and the rules of whichever member is set. */
function oneofCheck(oneof: DescOneof, typeName: string): Check | undefined {
  const required = hasOption(oneof, oneofRequiredOption) && getOption(oneof, oneofRequiredOption);
  const members = new Map<string, ValueCheck>();
  for (const field of oneof.fields) {
    const check = fieldCheck(field, typeName);
    if (check) members.set(field.localName, check);
  }
  if (!required && members.size === 0) return undefined;
  const local = oneof.localName;
  const name = goName(oneof.name);
  return (m) => {
    const selected = m[local] as { case: string | undefined; value?: unknown };
    if (selected.case === undefined) return required ? `invalid ${typeName}.${name}: value is required` : undefined;
    return members.get(selected.case)?.(selected.value);
  };
}

function runeCount(value: string): number {
  let count = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    // A surrogate pair is one rune.
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < value.length) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

function isWellKnown(desc: DescMessage): boolean {
  return desc.file.proto.package === "google.protobuf";
}

/** protoc-gen-go's GoCamelCase: how PGV names fields ("user_id" → "UserId") and types. */
export function goName(name: string): string {
  let out = "";
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    const next = name[i + 1];
    const isLower = (ch: string | undefined) => ch !== undefined && ch >= "a" && ch <= "z";
    if (c === "_" && i === 0) out += "X";
    else if (c === "_" && isLower(next)) continue;
    else if (c >= "0" && c <= "9") out += c;
    else {
      out += isLower(c) ? c.toUpperCase() : c;
      while (isLower(name[i + 1])) out += name[++i];
    }
  }
  return out;
}

/** The Go type PGV names in its errors: nested messages joined by "_", e.g. "AddHumanUserRequest_Profile". */
function goTypeName(desc: DescMessage): string {
  const parts: string[] = [];
  for (let d: DescMessage | undefined = desc; d; d = d.parent) parts.unshift(goName(d.name));
  return parts.join("_");
}

// --- email: PGV's _validateEmail over Go's net/mail.ParseAddress -------------------------------

/**
 * Why PGV's `email: true` refuses `value`, in Go's words, or undefined when it passes: the value
 * must parse as one RFC 5322 address (Go's net/mail.ParseAddress, so `Bob <bob@example.com>`
 * passes and its bare address is checked), the address may have at most 254 bytes, its local part
 * 64, and its domain must be a hostname (PGV's _validateHostname). Group syntax
 * (`Friends: a@b.ch;`) is not supported and is refused.
 */
export function emailError(value: string): string | undefined {
  // Almost every address is a plain one: decided without the parser (about 1.4 µs an address,
  // a share of a bulk import's per-record time; BENCHMARKS.md, "Bulk import").
  if (value.length <= 254 && PLAIN_ADDRESS.test(value) && value.indexOf("@") <= 64) return undefined;
  return parsedEmailError(value);
}

/**
 * A plain ASCII address: a dot-atom local part (RFC 5322 atext, no leading, trailing or doubled
 * dot), `@`, and a hostname of letters, digits and inner hyphens in labels of 1 to 63. Every such
 * address, at most 254 characters with a local part of at most 64, passes the full check below
 * (test/validation.test.ts compares the two); anything else is left to it.
 */
export const PLAIN_ADDRESS =
  /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** {@link emailError} through the port of Go's parser, for any address. */
export function parsedEmailError(value: string): string | undefined {
  let address: string;
  try {
    address = new AddressParser(value).parseSingleAddress();
  } catch (err) {
    if (err instanceof MailError) return err.message;
    throw err;
  }
  if (Buffer.byteLength(address, "utf8") > 254) return "email addresses cannot exceed 254 characters";
  const at = address.indexOf("@");
  if (Buffer.byteLength(address.slice(0, at), "utf8") > 64) return "email address local phrase cannot exceed 64 characters";
  return hostnameError(address.slice(at + 1));
}

function hostnameError(host: string): string | undefined {
  const s = (host.endsWith(".") ? host.slice(0, -1) : host).toLowerCase();
  if (Buffer.byteLength(host, "utf8") > 253) return "hostname cannot exceed 253 characters";
  for (const part of s.split(".")) {
    const length = Buffer.byteLength(part, "utf8");
    if (length === 0 || length > 63) return "hostname part must be non-empty and cannot exceed 63 characters";
    if (part.startsWith("-")) return "hostname parts cannot begin with hyphens";
    if (part.endsWith("-")) return "hostname parts cannot end with hyphens";
    for (const r of part) {
      if ((r < "a" || r > "z") && (r < "0" || r > "9") && r !== "-") {
        return `hostname parts can only contain alphanumeric characters or hyphens, got ${goQuote(r)}`;
      }
    }
  }
  return undefined;
}

class MailError extends Error {}

const SPECIALS = new Set(["(", ")", "<", ">", "[", "]", ":", ";", "@", "\\", ",", '"']);
const isVchar = (r: string) => (r >= "!" && r <= "~") || r.codePointAt(0)! >= 0x80;
const isAtext = (r: string, dot: boolean) => (r === "." ? dot : !SPECIALS.has(r) && isVchar(r));
const isWsp = (r: string) => r === " " || r === "\t";
const isQtext = (r: string) => r === "!" || (r >= "#" && r <= "[") || (r >= "]" && r <= "~") || r.codePointAt(0)! >= 0x80;
const isDtext = (r: string) => (r >= "!" && r <= "Z") || (r >= "^" && r <= "~") || r.codePointAt(0)! >= 0x80;

/** A port of the parts of Go's net/mail addrParser that ParseAddress uses (without groups). */
class AddressParser {
  constructor(private s: string) {}

  parseSingleAddress(): string {
    const address = this.parseAddress();
    if (!this.skipCFWS()) throw new MailError("mail: misformatted parenthetical comment");
    if (this.s !== "") throw new MailError(`mail: expected single address, got ${goQuote(this.s)}`);
    return address;
  }

  private parseAddress(): string {
    this.skipSpace();
    if (this.s === "") throw new MailError("mail: no address");
    const spec = this.tryAddrSpec();
    if (spec !== undefined) {
      this.skipSpace();
      if (this.s.startsWith("(")) this.consumeComment();
      return spec;
    }
    let displayName = "";
    if (!this.s.startsWith("<")) displayName = this.consumePhrase();
    this.skipSpace();
    if (!this.consume("<")) {
      if ([...displayName].every((r) => isAtext(r, true))) throw new MailError("mail: missing '@' or angle-addr");
      throw new MailError("mail: no angle-addr");
    }
    const inner = this.consumeAddrSpec();
    if (!this.consume(">")) throw new MailError("mail: unclosed angle-addr");
    return inner;
  }

  private tryAddrSpec(): string | undefined {
    const saved = this.s;
    try {
      return this.consumeAddrSpec();
    } catch (err) {
      if (!(err instanceof MailError)) throw err;
      this.s = saved;
      return undefined;
    }
  }

  private consumeAddrSpec(): string {
    const saved = this.s;
    try {
      this.skipSpace();
      if (this.s === "") throw new MailError("mail: no addr-spec");
      let local: string;
      if (this.s.startsWith('"')) {
        local = this.consumeQuotedString();
        if (local === "") throw new MailError("mail: empty quoted-string in addr-spec");
      } else {
        local = this.consumeAtom(true, false);
      }
      if (!this.consume("@")) throw new MailError("mail: missing @ in addr-spec");
      this.skipSpace();
      if (this.s === "") throw new MailError("mail: no domain in addr-spec");
      const domain = this.s.startsWith("[") ? this.consumeDomainLiteral() : this.consumeAtom(true, false);
      return `${local}@${domain}`;
    } catch (err) {
      this.s = saved;
      throw err;
    }
  }

  private consumePhrase(): string {
    const words: string[] = [];
    let error: MailError | undefined;
    for (;;) {
      if (words.length > 0 && !this.skipCFWS()) throw new MailError("mail: misformatted parenthetical comment");
      this.skipSpace();
      if (this.s === "") break;
      try {
        words.push(this.s.startsWith('"') ? this.consumeQuotedString() : this.consumeAtom(true, true));
      } catch (err) {
        if (!(err instanceof MailError)) throw err;
        error = err;
        break;
      }
    }
    if (error && words.length === 0) throw new MailError(`mail: missing word in phrase: ${error.message}`);
    return words.join(" ");
  }

  private consumeAtom(dot: boolean, permissive: boolean): string {
    let i = 0;
    for (const r of this.s) {
      if (!isAtext(r, dot)) break;
      i += r.length;
    }
    if (i === 0) throw new MailError("mail: invalid string");
    const atom = this.s.slice(0, i);
    this.s = this.s.slice(i);
    if (!permissive) {
      if (atom.startsWith(".")) throw new MailError("mail: leading dot in atom");
      if (atom.includes("..")) throw new MailError("mail: double dot in atom");
      if (atom.endsWith(".")) throw new MailError("mail: trailing dot in atom");
    }
    return atom;
  }

  private consumeQuotedString(): string {
    let out = "";
    let escaped = false;
    let i = 1;
    for (;;) {
      const r = String.fromCodePoint(this.s.codePointAt(i) ?? 0);
      if (i >= this.s.length) throw new MailError("mail: unclosed quoted-string");
      if (escaped) {
        if (!isVchar(r) && !isWsp(r)) throw new MailError(`mail: bad character in quoted-string: '${r}'`);
        out += r;
        escaped = false;
      } else if (isQtext(r) || isWsp(r)) {
        out += r;
      } else if (r === '"') {
        break;
      } else if (r === "\\") {
        escaped = true;
      } else {
        throw new MailError(`mail: bad character in quoted-string: '${r}'`);
      }
      i += r.length;
    }
    this.s = this.s.slice(i + 1);
    return out;
  }

  private consumeDomainLiteral(): string {
    this.consume("[");
    let dtext = "";
    for (;;) {
      if (this.s === "") throw new MailError("mail: unclosed domain-literal");
      if (this.s.startsWith("]")) break;
      const r = String.fromCodePoint(this.s.codePointAt(0)!);
      if (!isDtext(r)) throw new MailError(`mail: bad character in domain-literal: '${r}'`);
      dtext += r;
      this.s = this.s.slice(r.length);
    }
    this.consume("]");
    // Go then requires an IP address; PGV's hostname check refuses "[…]" either way.
    return `[${dtext}]`;
  }

  private consumeComment(): void {
    // "addr (comment)": Go reads the comment as the display name; only its shape matters here.
    if (!this.skipCFWS()) throw new MailError("mail: misformatted parenthetical comment");
  }

  private consume(c: string): boolean {
    if (!this.s.startsWith(c)) return false;
    this.s = this.s.slice(c.length);
    return true;
  }

  private skipSpace(): void {
    this.s = this.s.replace(/^[ \t]+/, "");
  }

  /** Skips folding white space and (nested) comments; false when a comment is not closed. */
  private skipCFWS(): boolean {
    this.skipSpace();
    while (this.s.startsWith("(")) {
      let depth = 0;
      let i = 0;
      for (; i < this.s.length; i++) {
        const c = this.s[i];
        if (c === "\\") i++;
        else if (c === "(") depth++;
        else if (c === ")" && --depth === 0) break;
      }
      if (depth !== 0) return false;
      this.s = this.s.slice(i + 1);
      this.skipSpace();
    }
    return true;
  }
}
