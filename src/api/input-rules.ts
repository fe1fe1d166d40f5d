import { invalidArgument, isDomainError } from "../domain/errors.js";

/**
 * The request-shape rules ZITADEL declares with protoc-gen-validate, reported as ZITADEL reports
 * them: InvalidArgument with PGV's text and no error id, before any business rule runs.
 * `field` names the field as PGV does, e.g. "ImportHumanUserRequest_Profile.FirstName".
 */
export function checkLength(value: string, min: number, max: number, field: string): void {
  // A string has between length / 2 and length code points: most values need no counting.
  if (value.length <= max && value.length >= 2 * min) return;
  const runes = countRunes(value);
  if (runes >= min && runes <= max) return;
  const rule =
    min === 0 ? `value length must be at most ${max} runes` : `value length must be between ${min} and ${max} runes, inclusive`;
  throw invalidArgument("", `invalid ${field}: ${rule}`);
}

/** PGV's length rule for a bytes field. */
export function checkBytes(value: Uint8Array, min: number, max: number, field: string): void {
  if (value.length >= min && value.length <= max) return;
  throw invalidArgument("", `invalid ${field}: value length must be between ${min} and ${max} bytes, inclusive`);
}

/** Length limits count Unicode code points, not UTF-16 units or bytes. */
function countRunes(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}

export function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw invalidArgument("", `invalid ${field}: value is required`);
  return value;
}

export function checkPrefix(value: string, prefix: string, field: string): void {
  if (!value.startsWith(prefix)) throw invalidArgument("", `invalid ${field}: value does not have prefix "${prefix}"`);
}

/**
 * Runs the rules of an embedded message. A failure reads as PGV's generated `Validate()` puts it:
 * "invalid <Outer>.<Field>: embedded message failed validation | caused by: <inner failure>",
 * where `field` is e.g. "ImportHumanUserRequest.Profile" or "AddHumanUserRequest.IdpLinks[0]".
 */
export function embedded<T>(field: string, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (!isDomainError(err) || err.id !== "" || err.kind !== "InvalidArgument") throw err;
    throw invalidArgument("", `invalid ${field}: embedded message failed validation | caused by: ${err.message}`);
  }
}
