/**
 * `firebase`: `firebase auth:export` output (https://firebase.google.com/docs/cli/auth), JSON
 * (`{"users": [{localId, email, emailVerified, passwordHash, salt, displayName, phoneNumber,
 * customAttributes, providerUserInfo: [{providerId, rawId, email, displayName}], …}]}`) or CSV
 * (no header; the columns in the documented order, CSV_COLUMNS). The format is told by the first
 * character. Firebase exports hashes only in its modified scrypt (its scrypt repository's README:
 * "Accounts downloaded from Firebase Authentication will only ever contain a password hash if one
 * for this version of scrypt is available"), so a user with a hash needs the project's hash
 * parameters (`--hash-key`, `--salt-separator`, `--rounds`, `--mem-cost`); it is written in the
 * `firebase-scrypt` family's notation (src/domain/hashes/firebase.ts). Linked providers become
 * IdP links where `--idp <providerId>=<idpId>` names the IdP (e.g. `google.com=…`);
 * `customAttributes` become metadata. `disabled` has no counterpart in AddHumanUser.
 */
import { once } from "node:events";
import type { Readable } from "node:stream";
import { encodeFirebaseScrypt } from "../../../domain/hashes/firebase.js";
import { csvRows, truthy } from "./csv-rows.js";
import { jsonValues, matches } from "./json-stream.js";
import { describe, metadataOf, RecordError, toRecord } from "./record.js";
import type { Converted, ConvertOptions } from "./types.js";

type Json = Record<string, unknown>;
const str = (value: unknown) => (typeof value === "string" && value !== "" ? value : undefined);

/** The columns of `auth:export --format=csv`, in order (Firebase CLI documentation). */
export const CSV_COLUMNS = [
  "UID",
  "Email",
  "Email Verified",
  "Password Hash",
  "Password Salt",
  "Name",
  "Photo URL",
  "Google ID",
  "Google Email",
  "Google Display Name",
  "Google Photo URL",
  "Facebook ID",
  "Facebook Email",
  "Facebook Display Name",
  "Facebook Photo URL",
  "Twitter ID",
  "Twitter Email",
  "Twitter Display Name",
  "Twitter Photo URL",
  "GitHub ID",
  "GitHub Email",
  "GitHub Display Name",
  "GitHub Photo URL",
  "User Creation Time",
  "Last Sign-In Time",
  "Phone Number",
] as const;
const CSV_PROVIDERS: Array<[string, string]> = [
  ["google.com", "Google"],
  ["facebook.com", "Facebook"],
  ["twitter.com", "Twitter"],
  ["github.com", "GitHub"],
];

interface FirebaseUser {
  localId?: string;
  email?: string;
  emailVerified?: boolean;
  passwordHash?: string;
  salt?: string;
  displayName?: string;
  phoneNumber?: string;
  customAttributes?: string;
  providers: Array<{ providerId: string; rawId: string; email?: string; displayName?: string }>;
}

function convertUser(line: number, user: FirebaseUser, options: ConvertOptions): Converted {
  const key = user.localId ?? user.email;
  try {
    let hash: string | undefined;
    if (user.passwordHash) {
      if (!options.firebase) {
        throw new RecordError("the export holds password hashes: give the project's --hash-key, --salt-separator, --rounds and --mem-cost");
      }
      try {
        hash = encodeFirebaseScrypt({ passwordHash: user.passwordHash, salt: user.salt ?? "" }, options.firebase);
      } catch (err) {
        throw new RecordError(`password hash: ${(err as Error).message}`);
      }
    }
    let custom: unknown;
    if (user.customAttributes) {
      try {
        custom = JSON.parse(user.customAttributes);
      } catch {
        throw new RecordError("customAttributes is not JSON");
      }
    }
    const record = toRecord({
      email: user.email,
      emailVerified: user.emailVerified === true,
      displayName: user.displayName,
      phone: user.phoneNumber,
      // Firebase verified a phone number by signing the user in with it.
      phoneVerified: user.phoneNumber !== undefined,
      hash,
      idpLinks: user.providers.flatMap((provider) => {
        const idpId = options.idps?.[provider.providerId];
        return idpId ? [{ idpId, userId: provider.rawId, userName: provider.email ?? provider.displayName ?? provider.rawId }] : [];
      }),
      metadata: metadataOf("", custom),
      orgId: options.orgId,
    });
    return { line, key: key ?? `line ${line}`, record };
  } catch (err) {
    return { line, ...(key !== undefined ? { key } : {}), error: describe(err) };
  }
}

function fromJson(user: Json): FirebaseUser {
  const providers = Array.isArray(user.providerUserInfo) ? (user.providerUserInfo as Json[]) : [];
  return {
    localId: str(user.localId),
    email: str(user.email),
    emailVerified: user.emailVerified === true,
    passwordHash: str(user.passwordHash),
    salt: str(user.salt),
    displayName: str(user.displayName),
    phoneNumber: str(user.phoneNumber),
    customAttributes: str(user.customAttributes),
    providers: providers.flatMap((p) =>
      str(p.providerId) && str(p.rawId)
        ? [
            {
              providerId: str(p.providerId)!,
              rawId: str(p.rawId)!,
              ...(str(p.email) ? { email: str(p.email)! } : {}),
              ...(str(p.displayName) ? { displayName: str(p.displayName)! } : {}),
            },
          ]
        : [],
    ),
  };
}

function fromCsv(row: string[]): FirebaseUser {
  const get = (column: (typeof CSV_COLUMNS)[number]) => str(row[CSV_COLUMNS.indexOf(column)]?.trim());
  return {
    localId: get("UID"),
    email: get("Email"),
    emailVerified: truthy(get("Email Verified")),
    passwordHash: get("Password Hash"),
    salt: get("Password Salt"),
    displayName: get("Name"),
    phoneNumber: get("Phone Number"),
    providers: CSV_PROVIDERS.flatMap(([providerId, label]) => {
      const rawId = str(row[CSV_COLUMNS.indexOf(`${label} ID` as never)]);
      const email = str(row[CSV_COLUMNS.indexOf(`${label} Email` as never)]);
      return rawId ? [{ providerId, rawId, ...(email ? { email } : {}) }] : [];
    }),
  };
}

/** The first non-blank character of a stream; what it read is put back (Readable.unshift). */
async function firstCharacter(input: Readable): Promise<string> {
  input.setEncoding("utf8");
  const seen: string[] = [];
  try {
    for (;;) {
      const chunk = input.read() as string | null;
      if (chunk === null) {
        if (input.readableEnded) return "";
        const ended = await Promise.race([once(input, "readable").then(() => false), once(input, "end").then(() => true)]);
        if (ended) return "";
        continue;
      }
      seen.push(chunk);
      const found = chunk.replace(/^\uFEFF/, "").match(/\S/);
      if (found) return found[0];
    }
  } finally {
    for (const chunk of seen.reverse()) input.unshift(chunk);
  }
}

export async function* convertFirebase(input: Readable, options: ConvertOptions = {}): AsyncGenerator<Converted> {
  if ((await firstCharacter(input)) === "{") {
    for await (const event of jsonValues(input, (path) => matches(path, ["users", "*"]))) {
      if (event.kind === "error") yield { line: event.line, error: event.message };
      else if (event.kind === "value") yield convertUser(event.line, fromJson((event.value ?? {}) as Json), options);
    }
    return;
  }
  for await (const { line, row, error } of csvRows(input, { columns: false })) {
    if (error !== undefined || row === undefined) yield { line, error: error ?? "unreadable row" };
    else yield convertUser(line, fromCsv(row as string[]), options);
  }
}
