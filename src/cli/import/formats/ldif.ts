/**
 * `ldif`: an LDAP export (`slapcat`, `ldapsearch -LLL`), RFC 2849 content records.
 *
 * Written here rather than taken from npm: the LDIF packages there are unmaintained (`ldif`,
 * last release years ago, built on a generated PEG parser that reads the whole input) and the
 * part needed is small: records separated by blank lines, continuation lines (a leading space),
 * comments, `attr: value`, `attr:: base64` and attribute options (`cn;lang-de`), one entry held
 * at a time over node:readline. Change records (`changetype:`) and `attr:< URL` values are
 * reported as errors of their entry.
 *
 * An entry is a user when it has a `userPassword` or a person object class (person,
 * organizationalPerson, inetOrgPerson, posixAccount); other entries (the suffix, ou, groups) are
 * passed over. uid → username, mail → email, cn → display name, givenName, sn → family name,
 * telephoneNumber/mobile → phone, preferredLanguage, userPassword → the hash (`{SSHA}`,
 * `{SSHA256}`, `{SSHA512}`, `{SHA}`, `{MD5}`, `{SMD5}`, `{CRYPT}`, `{PBKDF2-SHA256}`, … as the
 * hash families read them; a value without `{SCHEME}` is a plaintext password). The key is the DN.
 */
import type { Readable } from "node:stream";
import { numberedLines } from "./lines.js";
import { describe, RecordError, toRecord } from "./record.js";
import type { Converted, ConvertOptions } from "./types.js";

export interface LdifEntry {
  line: number;
  dn?: string;
  /** attribute names lower-cased, options dropped; values in file order */
  attributes: Map<string, string[]>;
  error?: string;
}

const PERSON_CLASSES = new Set(["person", "organizationalperson", "inetorgperson", "posixaccount"]);

/** The entries of an LDIF stream, each with the line it starts on. */
export async function* ldifEntries(input: Readable): AsyncGenerator<LdifEntry> {
  let entry: LdifEntry | undefined;
  let logical: { line: number; text: string } | undefined;
  let inComment = false;

  const addLine = (line: number, text: string) => {
    if (text.startsWith("#")) return;
    const colon = text.indexOf(":");
    entry ??= { line, attributes: new Map() };
    if (colon <= 0) {
      entry.error ??= `line ${line}: not an "attribute: value" line`;
      return;
    }
    const name = text.slice(0, colon).split(";")[0]!.trim().toLowerCase();
    let value: string;
    if (text[colon + 1] === ":") {
      const base64 = text.slice(colon + 2).trim();
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) {
        entry.error ??= `line ${line}: ${name} is not base64`;
        return;
      }
      value = Buffer.from(base64, "base64").toString("utf8");
    } else if (text[colon + 1] === "<") {
      entry.error ??= `line ${line}: ${name} refers to a URL, which is not read`;
      return;
    } else {
      value = text.slice(colon + 1).replace(/^ +/, "");
    }
    if (name === "version" && entry.attributes.size === 0 && entry.dn === undefined) {
      entry = undefined;
      return;
    }
    if (name === "dn") entry.dn = value;
    else if (name === "changetype") entry.error ??= `line ${line}: change records are not read (changetype: ${value})`;
    else entry.attributes.set(name, [...(entry.attributes.get(name) ?? []), value]);
  };
  const flushLogical = () => {
    if (logical) addLine(logical.line, logical.text);
    logical = undefined;
  };

  for await (const { line, text } of numberedLines(input)) {
    if (text.startsWith(" ")) {
      // A continuation: of a comment (ignored) or of the logical line before.
      if (!inComment && logical) logical.text += text.slice(1);
      continue;
    }
    flushLogical();
    inComment = text.startsWith("#");
    if (text.trim() === "") {
      if (entry) yield entry;
      entry = undefined;
      continue;
    }
    if (!inComment) logical = { line, text };
  }
  flushLogical();
  if (entry) yield entry;
}

export async function* convertLdif(input: Readable, options: ConvertOptions = {}): AsyncGenerator<Converted> {
  for await (const entry of ldifEntries(input)) {
    const key = entry.dn;
    const first = (name: string) => entry.attributes.get(name)?.[0];
    const classes = (entry.attributes.get("objectclass") ?? []).map((name) => name.toLowerCase());
    const isUser = entry.attributes.has("userpassword") || classes.some((name) => PERSON_CLASSES.has(name));
    if (!isUser && entry.error === undefined) continue;
    try {
      if (entry.error !== undefined) throw new RecordError(entry.error);
      if (key === undefined) throw new RecordError("entry has no dn");
      const passwords = entry.attributes.get("userpassword") ?? [];
      const hashed = passwords.find((value) => /^\{[A-Za-z0-9_-]+\}/.test(value) && !/^\{CLEARTEXT\}/i.test(value));
      const plain = hashed === undefined ? passwords[0]?.replace(/^\{CLEARTEXT\}/i, "") : undefined;
      const record = toRecord({
        username: first("uid"),
        email: first("mail"),
        displayName: first("displayname") ?? first("cn"),
        givenName: first("givenname"),
        familyName: first("sn"),
        phone: first("telephonenumber") ?? first("mobile"),
        preferredLanguage: first("preferredlanguage"),
        hash: hashed,
        password: plain,
        orgId: options.orgId,
      });
      yield { line: entry.line, key, record };
    } catch (err) {
      yield { line: entry.line, ...(key !== undefined ? { key } : {}), error: describe(err) };
    }
  }
}
