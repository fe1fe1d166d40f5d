import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * Refuses a request message holding U+0000 in any string, naming the field: INVALID_ARGUMENT.
 *
 * PostgreSQL text cannot hold NUL (it failed the query: a 500 for a path id like `%00`), SQLite
 * stores it, and bcrypt (a C library) ends a password at it, so that "abc\0def" would hash as "abc".
 * No ZITADEL field has a use for it. Checked for every RPC, Connect and REST alike, before the
 * service runs; bytes fields (metadata values) are not strings and are left alone.
 */
export function refuseNulCharacters(message: unknown): void {
  // Nearly every message holds none: look first without building a field path per field.
  if (!containsNul(message)) return;
  const field = findNul(message, "");
  if (field !== undefined) {
    throw new ConnectError(`invalid value for field ${field || "(request)"}: it contains a NUL character`, Code.InvalidArgument);
  }
}

/** {@link refuseNulCharacters} for every unary RPC served by Connect. */
export const nulCharactersInterceptor: Interceptor = (next) => async (req) => {
  if (!req.stream) refuseNulCharacters(req.message);
  return next(req);
};

/** Whether any string or map key in a protobuf-es message (plain objects and arrays) holds NUL. */
function containsNul(value: unknown): boolean {
  if (typeof value === "string") return value.includes("\0");
  if (typeof value !== "object" || value === null || value instanceof Uint8Array) return false;
  if (Array.isArray(value)) {
    for (const item of value) if (containsNul(item)) return true;
    return false;
  }
  for (const key of Object.keys(value)) {
    if (key === "$typeName" || key === "$unknown") continue;
    if (key.includes("\0") || containsNul((value as Record<string, unknown>)[key])) return true;
  }
  return false;
}

/** The path of the first string holding NUL, walking a protobuf-es message (plain objects and arrays). */
function findNul(value: unknown, path: string): string | undefined {
  if (typeof value === "string") return value.includes("\0") ? path : undefined;
  if (typeof value !== "object" || value === null || value instanceof Uint8Array) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findNul(value[i], `${path}[${i}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const [key, member] of Object.entries(value)) {
    if (key === "$typeName" || key === "$unknown") continue;
    // A oneof is {case, value}: name the chosen field, not "value".
    if (key.includes("\0")) return path; // a map key: name the map, never the key
    if (key === "case") continue;
    const name = key === "value" && "case" in value ? String((value as { case: unknown }).case) : key;
    const found = findNul(member, path ? `${path}.${name}` : name);
    if (found !== undefined) return found;
  }
  return undefined;
}
