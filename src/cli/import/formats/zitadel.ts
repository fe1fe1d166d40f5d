/**
 * `zitadel`: ZITADEL's ImportData JSON (admin.proto `ImportDataRequest.data_orgs`, what ZITADEL's
 * ExportData and zitadel-tools write): `{"dataOrgs": {"orgs": [{"orgId", "humanUsers": [{"userId",
 * "user": ImportHumanUserRequest}], "userMetadata": [{"id", "key", "value"}], "userLinks": [{"userId",
 * "idpId", "providedUserId", "providedUserName"}], …}]}}`, or the same `{"orgs": […]}` without
 * `dataOrgs`. Machine users (`machineUsers: [{"userId", "user": AddMachineUserRequest}]`, ZITADEL's
 * proto/zitadel/v1.proto `DataMachineUser`) become the bulk API's machine records (v2
 * CreateUserRequest with `machine`); everything that is neither is left out.
 *
 * ZITADEL lists an organisation's metadata and IdP links after its users, so the users of one
 * organisation are held until the organisation closes, then yielded with their metadata and
 * links: memory holds one organisation's users, never the file.
 */
import type { Readable } from "node:stream";
import { jsonValues, type JsonPath, matches } from "./json-stream.js";
import { describe, toRecord, type UserFields } from "./record.js";
import type { Converted, ConvertedUser, ConvertOptions } from "./types.js";

type Json = Record<string, unknown>;
const str = (value: unknown) => (typeof value === "string" ? value : undefined);
const obj = (value: unknown) => (value !== null && typeof value === "object" ? (value as Json) : {});

function orgPrefix(path: JsonPath): string[] | undefined {
  if (path[0] === "dataOrgs" && path[1] === "orgs") return ["dataOrgs", "orgs", "*"];
  if (path[0] === "orgs") return ["orgs", "*"];
  return undefined;
}

const MEMBERS = ["orgId", "humanUsers", "machineUsers", "userMetadata", "userLinks"];

export async function* convertZitadel(input: Readable, options: ConvertOptions = {}): AsyncGenerator<Converted> {
  let orgId: string | undefined;
  let users: Array<{ line: number; value: Json; machine?: true }> = [];
  const metadata = new Map<string, Array<{ key: string; value: Uint8Array }>>();
  const links = new Map<string, Array<{ idpId: string; userId: string; userName: string }>>();
  const collect = (path: JsonPath) => {
    const prefix = orgPrefix(path);
    if (!prefix) return false;
    const rest = path.slice(prefix.length);
    return (rest.length === 1 && rest[0] === "orgId") || (rest.length === 2 && MEMBERS.includes(String(rest[0])) && typeof rest[1] === "number");
  };
  const ends = (path: JsonPath) => matches(path, ["dataOrgs", "orgs", "*"]) || matches(path, ["orgs", "*"]);

  for await (const event of jsonValues(input, collect, ends)) {
    if (event.kind === "error") {
      // Users still held lose their organisation's metadata and links: they fail rather than go in partly.
      for (const { line, value } of users) {
        const key = str(value.userId);
        yield { line, ...(key !== undefined ? { key } : {}), error: `its organisation is cut short at line ${event.line}` };
      }
      users = [];
      yield { line: event.line, error: event.message };
      continue;
    }
    if (event.kind === "end") {
      for (const { line, value, machine } of users)
        yield machine ? convertMachine(line, value, orgId, options) : convertUser(line, value, orgId, metadata, links, options);
      users = [];
      metadata.clear();
      links.clear();
      orgId = undefined;
      continue;
    }
    const member = event.path[event.path.length - (typeof event.path.at(-1) === "number" ? 2 : 1)];
    const value = obj(event.value);
    if (member === "orgId") orgId = str(event.value);
    else if (member === "humanUsers") users.push({ line: event.line, value });
    else if (member === "machineUsers") users.push({ line: event.line, value, machine: true });
    else if (member === "userMetadata") {
      const id = str(value.id) ?? "";
      const entry = { key: str(value.key) ?? "", value: Buffer.from(str(value.value) ?? "", "base64") };
      metadata.set(id, [...(metadata.get(id) ?? []), entry]);
    } else if (member === "userLinks") {
      const id = str(value.userId) ?? "";
      const idpId = str(value.idpId) ?? "";
      const link = { idpId: options.idps?.[idpId] ?? idpId, userId: str(value.providedUserId) ?? "", userName: str(value.providedUserName) ?? "" };
      links.set(id, [...(links.get(id) ?? []), link]);
    }
  }
}

function convertUser(
  line: number,
  entry: Json,
  orgId: string | undefined,
  metadata: Map<string, Array<{ key: string; value: Uint8Array }>>,
  links: Map<string, Array<{ idpId: string; userId: string; userName: string }>>,
  options: ConvertOptions,
): Converted {
  const userId = str(entry.userId);
  const user = obj(entry.user);
  const key = userId ?? str(user.userName);
  try {
    const profile = obj(user.profile);
    const email = obj(user.email);
    const phone = obj(user.phone);
    const idps = Array.isArray(user.idps) ? user.idps.map(obj) : [];
    const fields: UserFields = {
      userId,
      username: str(user.userName),
      givenName: str(profile.firstName),
      familyName: str(profile.lastName),
      nickName: str(profile.nickName),
      displayName: str(profile.displayName),
      preferredLanguage: str(profile.preferredLanguage),
      email: str(email.email),
      emailVerified: email.isEmailVerified === true,
      phone: str(phone.phone),
      phoneVerified: phone.isPhoneVerified === true,
      hash: str(obj(user.hashedPassword).value),
      password: str(user.password),
      passwordChangeRequired: user.passwordChangeRequired === true,
      metadata: metadata.get(userId ?? "") ?? [],
      idpLinks: [
        ...idps.map((idp) => ({
          idpId: options.idps?.[str(idp.configId) ?? ""] ?? str(idp.configId) ?? "",
          userId: str(idp.externalUserId) ?? "",
          userName: str(idp.displayName) ?? "",
        })),
        ...(links.get(userId ?? "") ?? []),
      ],
      orgId: options.orgId ?? orgId,
    };
    return { line, key: key ?? `line ${line}`, record: toRecord(fields) };
  } catch (err) {
    return { line, ...(key !== undefined ? { key } : {}), error: describe(err) };
  }
}

/** A machine user: v2 CreateUserRequest JSON with `machine` (name 1–200, description up to 500 characters). */
function convertMachine(line: number, entry: Json, orgId: string | undefined, options: ConvertOptions): Converted {
  const userId = str(entry.userId);
  const user = obj(entry.user);
  const username = str(user.userName);
  const key = userId ?? username;
  const name = str(user.name)?.trim();
  const description = str(user.description)?.trim();
  if (!name) return { line, ...(key !== undefined ? { key } : {}), error: "machine user has no name" };
  if ([...name].length > 200) return { line, ...(key !== undefined ? { key } : {}), error: "machine user name is longer than 200 characters" };
  if (description !== undefined && [...description].length > 500)
    return { line, ...(key !== undefined ? { key } : {}), error: "machine user description is longer than 500 characters" };
  const record: Json = {};
  const org = options.orgId ?? orgId;
  if (org) record.organizationId = org;
  if (userId) record.userId = userId;
  if (username) record.username = username;
  record.machine = description ? { name, description } : { name };
  return { line, key: key ?? `line ${line}`, record: record as ConvertedUser["record"], machine: true };
}
