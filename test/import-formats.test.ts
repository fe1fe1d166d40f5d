/**
 * The export converters of `userport import` (src/cli/import/formats/): each one reads a fixture
 * export made by the real tool or written to the vendor's documented structure
 * (test/fixtures/import/make.py says which), fails a malformed record alone with its line, and
 * every user it converts is created over v2 AddHumanUser — the request message the bulk API
 * takes — on a real server and signs in through CreateSession with its original password.
 */
import { createReadStream, readFileSync } from "node:fs";
import type { JsonObject } from "@bufbuild/protobuf";
import { beforeAll, describe, expect, it } from "vitest";
import { createHashRegistry, HASH_FAMILY_NAMES } from "../src/domain/hashes/index.js";
import { FORMATS, isFailed, type Converted, type ConvertOptions } from "../src/cli/import/formats/index.js";
import { keycloakCredentialHash } from "../src/cli/import/formats/keycloak.js";
import { ldifEntries } from "../src/cli/import/formats/ldif.js";
import { SESSIONS, TRANSPORTS, type TransportName, V1, V2 } from "./helpers/clients.js";
import { sampleStream } from "./helpers/export-samples.js";
import { expectOk } from "./helpers/expectations.js";
import { useUserport } from "./helpers/fixtures.js";
import { Readable } from "node:stream";

interface Expected {
  format?: string;
  file: string;
  passwords?: string;
  idps?: Record<string, string>;
  populations?: Record<string, string>;
  org?: string;
  firebase?: ConvertOptions["firebase"];
  users: Array<{ key: string; password: string; changeRequired?: boolean }>;
  linked?: Array<{ key: string; externalUserId: string }>;
  /** Machine users: records of v2 CreateUserRequest with `machine`. */
  machines?: Array<{ key: string }>;
  failed: Array<{ key?: string; line: number; error: string }>;
}
const fixtures = new URL("./fixtures/import/", import.meta.url);
const expected = JSON.parse(readFileSync(new URL("expected.json", fixtures), "utf8")) as Record<string, Expected>;
const vectors = JSON.parse(readFileSync(new URL("./fixtures/hashes/vectors.json", import.meta.url), "utf8")) as {
  keycloak: Array<{ id: string; password: string; wrongPassword: string; credential: JsonObject }>;
};

/** Runs a fixture's converter with its options; "$IDP" and "$ORG" stand for ids of the server. */
async function convert(name: string, ids: { idp: string; org: string } = { idp: "idp", org: "org" }): Promise<Converted[]> {
  const e = expected[name]!;
  const fill = (map: Record<string, string> | undefined) =>
    map && Object.fromEntries(Object.entries(map).map(([k, v]) => [k, v.replace("$IDP", ids.idp).replace("$ORG", ids.org)]));
  const options: ConvertOptions = {
    ...(e.idps ? { idps: fill(e.idps)! } : {}),
    ...(e.populations ? { populations: fill(e.populations)! } : {}),
    ...(e.org ? { orgId: e.org.replace("$ORG", ids.org) } : {}),
    ...(e.firebase ? { firebase: e.firebase } : {}),
    ...(e.passwords ? { passwords: createReadStream(new URL(e.passwords, fixtures)) } : {}),
  };
  const out: Converted[] = [];
  for await (const item of FORMATS[e.format ?? name]!(createReadStream(new URL(e.file, fixtures)), options)) out.push(item);
  return out;
}

const NAMES = Object.keys(expected);

describe("the fixtures", () => {
  it("cover every format", () => {
    expect(new Set(NAMES.map((name) => expected[name]!.format ?? name))).toEqual(new Set(Object.keys(FORMATS)));
  });
});

describe.each(NAMES)("%s: converting the fixture", (name) => {
  it("converts every user and fails each malformed record alone, with its line", async () => {
    const e = expected[name]!;
    const items = await convert(name);
    const failed = items.filter(isFailed);
    expect(failed.map((f) => ({ line: f.line, ...(f.key !== undefined ? { key: f.key } : {}) }))).toEqual(
      e.failed.map((f) => ({ line: f.line, ...(f.key !== undefined ? { key: f.key } : {}) })),
    );
    for (const [i, f] of failed.entries()) expect(f.error).toContain(e.failed[i]!.error);
    const keys = items.filter((item) => !isFailed(item)).map((item) => item.key);
    expect(new Set(keys)).toEqual(new Set([...e.users.map((u) => u.key), ...(e.linked ?? []).map((l) => l.key), ...(e.machines ?? []).map((m) => m.key)]));
    expect(keys).toHaveLength(e.users.length + (e.linked?.length ?? 0) + (e.machines?.length ?? 0));
    const machines = items.filter((item) => !isFailed(item) && item.machine).map((item) => item.key);
    expect(machines).toEqual((e.machines ?? []).map((m) => m.key));
    // Lines go forward through the file.
    const lines = items.map((item) => item.line);
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
  });

  it("never puts a password into an error message", async () => {
    const e = expected[name]!;
    for (const f of (await convert(name)).filter(isFailed)) {
      for (const user of e.users) expect(f.error).not.toContain(user.password);
    }
  });
});

describe("what the converters read from each export", () => {
  it("auth0: metadata from user_metadata and app_metadata, names, a verified email", async () => {
    const [first] = (await convert("auth0")).filter((item) => !isFailed(item)) as Array<{ record: JsonObject }>;
    const metadata = (first!.record.metadata as Array<{ key: string; value: string }>).map((m) => [m.key, Buffer.from(m.value, "base64").toString()]);
    expect(metadata).toEqual([
      ["user_metadata.plan", "gold"],
      ["user_metadata.theme", '{"dark":true}'],
      ["app_metadata.roles", '["admin"]'],
    ]);
    expect(first!.record.email).toEqual({ email: "auth0-one@auth0.example.com", isVerified: true });
    expect(first!.record.hashedPassword).toMatchObject({ hash: expect.stringMatching(/^\$2b\$10\$/) });
  });

  it("keycloak: UPDATE_PASSWORD marks the password for change, attributes become metadata, locale the language", async () => {
    const users = (await convert("keycloak")).filter((item) => !isFailed(item)) as Array<{ record: JsonObject }>;
    expect(users[0]!.record.hashedPassword).toMatchObject({ changeRequired: true });
    expect(users[1]!.record.hashedPassword).toMatchObject({ changeRequired: false });
    expect((users[0]!.record.profile as JsonObject).preferredLanguage).toBe("de");
    const metadata = (users[0]!.record.metadata as Array<{ key: string; value: string }>).map((m) => [m.key, Buffer.from(m.value, "base64").toString()]);
    expect(metadata).toEqual([
      ["department", "R&D"],
      ["badges", '["a","b"]'],
    ]);
  });

  it("ldif: continuation lines and base64 values as slapcat writes them", async () => {
    const text = readFileSync(new URL("users.ldif", fixtures), "utf8");
    expect(text).toMatch(/\n [A-Za-z0-9+/=]/); // the fixture does hold wrapped lines
    expect(text).toMatch(/\ncn:: /);
    const users = (await convert("ldif")).filter((item) => !isFailed(item)) as Array<{ record: JsonObject }>;
    expect((users[2]!.record.profile as JsonObject).displayName).toBe("Jürgen Müller-Lüdenscheidt");
    expect(users.map((u) => String((u.record.hashedPassword as JsonObject).hash).match(/^\{[A-Z0-9-]+\}/)?.[0])).toEqual([
      "{SSHA}",
      "{SSHA256}",
      "{SSHA512}",
      "{SHA}",
      "{MD5}",
      "{SMD5}",
      "{CRYPT}",
      "{CRYPT}",
      "{PBKDF2-SHA256}",
      "{PBKDF2-SHA512}",
    ]);
  });

  it("ldif: a line that is not `attribute: value` fails its entry alone", async () => {
    const text =
      "dn: uid=a,dc=x\nobjectClass: person\nmail: a@x.example\nsn: A\ncn: A\n\ndn: uid=b,dc=x\nobjectClass: person\nthis line is broken\nmail: b@x.example\n\ndn: uid=c,dc=x\nobjectClass: person\nmail: c@x.example\nsn: C\ncn: C\n";
    const items: Converted[] = [];
    for await (const item of FORMATS.ldif!(Readable.from([text]))) items.push(item);
    expect(items.map((item) => [item.line, item.key, isFailed(item) ? item.error : "ok"])).toEqual([
      [1, "uid=a,dc=x", "ok"],
      [7, "uid=b,dc=x", 'line 9: not an "attribute: value" line'],
      [12, "uid=c,dc=x", "ok"],
    ]);
    const entries = [];
    for await (const entry of ldifEntries(Readable.from(["# comment\n wrapped comment\nversion: 1\n\ndn: uid=d,\n dc=x\ncn:: SsO8cmdlbg==\n"])))
      entries.push(entry);
    expect(entries).toEqual([{ line: 5, dn: "uid=d,dc=x", attributes: new Map([["cn", ["Jürgen"]]]) }]);
  });

  it("JSON exports: where the text stops being JSON, the users before it are kept and the error has its line", async () => {
    const text = '{"users": [\n{"localId": "a", "email": "a@x.example"},\n{"localId": "b", "email": \n}]}\n';
    const items: Converted[] = [];
    for await (const item of FORMATS.firebase!(Readable.from([text]))) items.push(item);
    expect(items[0]).toMatchObject({ line: 2, key: "a" });
    expect(items[1]).toMatchObject({ line: 4, error: expect.stringContaining("not valid JSON") });
    expect(items).toHaveLength(2);
  });
});

describe("Keycloak credentials as a realm export stores them", () => {
  const registry = createHashRegistry({ enabled: HASH_FAMILY_NAMES });
  it.each(vectors.keycloak.map((v) => [v.id, v] as const))("%s converts into a hash that verifies", async (_, v) => {
    const hash = keycloakCredentialHash(v.credential);
    expect(await registry.verify(v.password, hash)).toBe(true);
    expect(await registry.verify(v.wrongPassword, hash)).toBe(false);
  });
});

describe("streaming", () => {
  it.each(Object.keys(FORMATS))("%s yields its first user long before the file has been read (zitadel: after the first organisation)", async (format) => {
    const count = 50_000;
    const { stream, produced } = sampleStream(format, count);
    const converter = FORMATS[format]!(stream, { populations: { "pop-1": "org-1" } });
    const first = await converter.next();
    expect(first.done).toBe(false);
    expect(isFailed(first.value as Converted)).toBe(false);
    expect(produced()).toBeLessThan(count / 10);
    await converter.return(undefined);
  });
});

describe("every converted user signs in through a real server", () => {
  const up = useUserport({ passwordVerifiers: [...HASH_FAMILY_NAMES] });
  let idp = "";
  beforeAll(async () => {
    const added = await up.caller("connect-json-h1").call(V1.addGenericOIDCProvider, {
      name: "Imported links",
      issuer: "https://accounts.example.com",
      clientId: "client-1",
      clientSecret: "not-a-real-secret",
      scopes: ["openid"],
      providerOptions: { isLinkingAllowed: true, isCreationAllowed: true, isAutoCreation: true, isAutoUpdate: false },
    });
    idp = expectOk(added).id as string;
  });
  const writers: readonly TransportName[] = TRANSPORTS.filter((name) => name !== "grpc-web");

  it.each(NAMES.map((name, i) => [name, writers[i % writers.length]!] as const))("%s over %s", async (name, transport) => {
    const e = expected[name]!;
    const items = await convert(name, { idp, org: up.defaultOrgId });
    const ids = new Map<string, string>();
    for (const item of items) {
      if (isFailed(item)) continue;
      if (item.machine) {
        const created = expectOk(await up.caller(transport).call(V2.createUser, { ...item.record, organizationId: up.defaultOrgId }));
        ids.set(item.key, String(created.id));
        continue;
      }
      // The fixtures for firebase JSON and CSV hold the same users: the second run gets fresh addresses.
      const record =
        name === "firebase-csv"
          ? { ...item.record, email: { ...(item.record.email as JsonObject), email: `csv-${(item.record.email as JsonObject).email}` } }
          : item.record;
      const created = expectOk(await up.caller(transport).call(V2.addHumanUser, record));
      ids.set(item.key, String(created.userId));
    }
    for (const user of e.users) {
      const userId = ids.get(user.key)!;
      const signIn = (password: string) =>
        up.caller(transport).call(SESSIONS.createSession, { checks: { user: { userId }, password: { password } } } as JsonObject);
      expect((await signIn(`x${user.password}`)).ok, `${user.key} with a wrong password`).toBe(false);
      const session = expectOk(await signIn(user.password));
      expect(session.sessionToken, user.key).toEqual(expect.any(String));
    }
    for (const link of e.linked ?? []) {
      const links = expectOk(await up.caller("rest").call(V2.listIDPLinks, { userId: ids.get(link.key)! }));
      expect(links.result).toEqual([expect.objectContaining({ idpId: idp, userId: link.externalUserId })]);
    }
  });
});
