/**
 * `csv`: any CSV with a header row. Each column goes to a field of the user by `--map
 * target=column`, else by its name (case, spaces, `_`, `-` and `.` ignored) from the common names
 * below. `metadata.<key>=column` puts a column into the user's metadata. The `hash` column may
 * hold a hash of any supported family (a Django `auth_user` dump's `password` column, an
 * ASP.NET `PasswordHash`, an LDAP `{SSHA}`…); a column named `password` is taken as a hash when it
 * is one, and a plaintext password only when mapped explicitly with `--map password=<column>`.
 */
import type { Readable } from "node:stream";
import { csvRows, truthy } from "./csv-rows.js";
import { checkHash, describe, RecordError, toRecord, type UserFields } from "./record.js";
import type { Converted, ConvertOptions } from "./types.js";

/** The targets and the column names each one takes by default (normalised). */
export const CSV_TARGETS: Record<string, string[]> = {
  key: ["key", "id", "externalid", "sourceid"],
  userId: [],
  username: ["username", "login", "loginname", "uid", "user"],
  email: ["email", "emailaddress", "mail"],
  emailVerified: ["emailverified", "isemailverified", "verified"],
  givenName: ["givenname", "firstname", "first", "forename", "namegiven"],
  familyName: ["familyname", "lastname", "last", "surname", "sn", "namefamily"],
  displayName: ["displayname", "name", "fullname", "cn", "nameformatted"],
  nickName: ["nickname", "nick"],
  preferredLanguage: ["preferredlanguage", "language", "locale", "lang"],
  phone: ["phone", "phonenumber", "mobile", "mobilephone", "telephonenumber", "primaryphone"],
  phoneVerified: ["phoneverified", "isphoneverified"],
  hash: ["hash", "passwordhash", "hashedpassword", "encodedpassword"],
  password: [],
  passwordChangeRequired: ["passwordchangerequired", "changepassword", "forcepasswordchange"],
  orgId: ["orgid", "organizationid", "organisationid"],
};

const normalise = (name: string) => name.toLowerCase().replace(/[\s_.-]/g, "");

/** target → column for a header, from `--map` first, then the default names. */
export function csvColumns(header: string[], map: Record<string, string> = {}): Record<string, string> {
  const byName = new Map(header.map((column) => [normalise(column), column]));
  const columns: Record<string, string> = {};
  for (const [target, column] of Object.entries(map)) {
    if (!(target in CSV_TARGETS) && !target.startsWith("metadata.")) {
      throw new Error(`--map ${target}=${column}: unknown target (known: ${Object.keys(CSV_TARGETS).join(", ")}, metadata.<key>)`);
    }
    if (!header.includes(column)) throw new Error(`--map ${target}=${column}: the file has no column "${column}"`);
    columns[target] = column;
  }
  const taken = new Set(Object.values(columns));
  for (const [target, names] of Object.entries(CSV_TARGETS)) {
    if (columns[target] !== undefined) continue;
    const column = names.map((name) => byName.get(name)).find((found) => found !== undefined && !taken.has(found));
    if (column !== undefined) {
      columns[target] = column;
      taken.add(column);
    }
  }
  // `password`: a hash when it is one (checked per row), unless mapped as plaintext.
  const password = byName.get("password");
  if (columns.hash === undefined && columns.password === undefined && password !== undefined && !taken.has(password)) {
    columns.passwordOrHash = password;
  }
  return columns;
}

export async function* convertCsv(input: Readable, options: ConvertOptions = {}): AsyncGenerator<Converted> {
  let columns: Record<string, string> | undefined;
  for await (const { line, row, error } of csvRows(input, { columns: true, ...(options.delimiter ? { delimiter: options.delimiter } : {}) })) {
    if (error !== undefined || row === undefined) {
      yield { line, error: error ?? "unreadable row" };
      continue;
    }
    const values = row as Record<string, string>;
    columns ??= csvColumns(Object.keys(values), options.map);
    const get = (target: string) => (columns![target] !== undefined ? values[columns![target]!] : undefined);
    const key = get("key") || get("userId") || get("username") || get("email") || undefined;
    try {
      let hash = get("hash");
      let password = get("password");
      const either = get("passwordOrHash");
      if (either) {
        try {
          checkHash(either);
          hash = either;
        } catch (err) {
          if (err instanceof RecordError && err.message === "password hash is in no supported family") {
            throw new RecordError(
              `column "${columns.passwordOrHash}" holds no hash of a supported family; to import it as a plaintext password, pass --map password=${columns.passwordOrHash}`,
            );
          }
          throw err;
        }
      }
      if (password === "") password = undefined;
      const fields: UserFields = {
        userId: get("userId"),
        username: get("username"),
        email: get("email"),
        emailVerified: truthy(get("emailVerified")),
        givenName: get("givenName"),
        familyName: get("familyName"),
        displayName: get("displayName"),
        nickName: get("nickName"),
        preferredLanguage: get("preferredLanguage"),
        phone: get("phone"),
        phoneVerified: truthy(get("phoneVerified")),
        hash,
        password,
        passwordChangeRequired: truthy(get("passwordChangeRequired")),
        orgId: get("orgId") || options.orgId,
        metadata: Object.entries(columns)
          .filter(([target]) => target.startsWith("metadata."))
          .map(([target, column]) => ({ key: target.slice("metadata.".length), value: values[column] ?? "" })),
      };
      yield { line, key: key ?? `line ${line}`, record: toRecord(fields) };
    } catch (err) {
      yield { line, ...(key !== undefined ? { key } : {}), error: describe(err) };
    }
  }
}
