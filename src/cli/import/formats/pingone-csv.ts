/**
 * `pingone-csv`: the CSV of PingOne's user-import tool (pingidentity/pingone-user-import-tool,
 * README and examples.csv): a header row with `username`, `email`, `primaryPhone`, `mobilePhone`,
 * `name.honorificPrefix`, `name.given`, `name.middle`, `name.family`, `name.honorificSuffix`,
 * `name.formatted`, `password`, `enabled`, and here also `population.id` / `population.name` /
 * `population`. The password is a pre-encoded `{SCHEME}…` value (PingOne's "password encoding";
 * the tool's README writes `{SSHA-256}`, which is `{SSHA256}`) or plaintext. A population becomes
 * the organisation `--population <name|id>=<orgId>` names; an unmapped `population.id` is taken
 * as the organisation id itself (userport's PingOne facade serves populations as organisations).
 * Other columns become metadata. `enabled` has no counterpart in AddHumanUser and is left out.
 */
import type { Readable } from "node:stream";
import { csvRows } from "./csv-rows.js";
import { describe, RecordError, toRecord } from "./record.js";
import type { Converted, ConvertOptions } from "./types.js";

const KNOWN = new Set([
  "username",
  "email",
  "primaryPhone",
  "mobilePhone",
  "name.honorificPrefix",
  "name.given",
  "name.middle",
  "name.family",
  "name.honorificSuffix",
  "name.formatted",
  "nickname",
  "preferredLanguage",
  "locale",
  "password",
  "enabled",
  "population",
  "population.id",
  "population.name",
  "id",
]);

/** `{SSHA-256}` → `{SSHA256}`: PingOne writes the digest with a hyphen in places. */
export const normalisePingOneScheme = (value: string) =>
  value.replace(/^\{([A-Za-z0-9]+)-(1|224|256|384|512)\}/, (_, scheme: string, bits: string) => `{${scheme.toUpperCase()}${bits === "1" ? "" : bits}}`);

export async function* convertPingOneCsv(input: Readable, options: ConvertOptions = {}): AsyncGenerator<Converted> {
  for await (const { line, row, error } of csvRows(input, { columns: true, ...(options.delimiter ? { delimiter: options.delimiter } : {}) })) {
    if (error !== undefined || row === undefined) {
      yield { line, error: error ?? "unreadable row" };
      continue;
    }
    const values = row as Record<string, string>;
    const get = (column: string) => values[column]?.trim() || undefined;
    const key = get("username") ?? get("email");
    try {
      const password = values.password ?? "";
      const encoded = /^\{[A-Za-z0-9_-]+\}/.test(password);
      let orgId = options.orgId;
      const population = get("population.id") ?? get("population.name") ?? get("population");
      if (population !== undefined) {
        orgId = options.populations?.[population] ?? (get("population.id") !== undefined ? population : undefined);
        if (orgId === undefined) throw new RecordError(`population "${population}" has no organisation: pass --population "${population}=<orgId>"`);
      }
      const record = toRecord({
        username: get("username"),
        email: get("email"),
        givenName: get("name.given"),
        familyName: get("name.family"),
        displayName: get("name.formatted"),
        nickName: get("nickname"),
        preferredLanguage: get("preferredLanguage") ?? get("locale"),
        phone: get("mobilePhone") ?? get("primaryPhone"),
        ...(encoded ? { hash: normalisePingOneScheme(password) } : { password }),
        passwordChangeRequired: options.forcePasswordChange === true,
        orgId,
        metadata: Object.entries(values)
          .filter(([column, value]) => !KNOWN.has(column) && value.trim() !== "")
          .map(([column, value]) => ({ key: column, value: value.trim() })),
      });
      yield { line, key: key ?? `line ${line}`, record };
    } catch (err) {
      yield { line, ...(key !== undefined ? { key } : {}), error: describe(err) };
    }
  }
}
