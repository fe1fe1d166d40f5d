/**
 * Synthetic exports of any size in each format's structure, produced lazily line by line (for
 * the streaming test and bench/import-formats.ts). The hashes are bcrypt strings copied into
 * every user: parsing, not hashing, is what these measure.
 */
import { Readable } from "node:stream";

const BCRYPT = "$2b$05$ESDYlVyHsYSEHhL1oaDx5..vX8hk6vSFJXG2.OfkE8oop./7vnuj6";
const KEY64 = Buffer.alloc(64, 7).toString("base64");
const SSHA = "{SSHA}M3NpeFlXVElLbmZFUjRUdGMzalpWOUpSOHpMSXNYMg==";

/** The lines of a synthetic export of `count` users. */
export function* sampleLines(format: string, count: number): Generator<string> {
  switch (format) {
    case "native":
      for (let i = 0; i < count; i++)
        yield JSON.stringify({
          key: `n${i}`,
          human: {
            username: `n${i}`,
            profile: { givenName: "Native", familyName: `User ${i}` },
            email: { email: `n${i}@example.com`, isVerified: true },
            hashedPassword: { hash: BCRYPT },
          },
        });
      return;
    case "auth0":
      for (let i = 0; i < count; i++)
        yield JSON.stringify({
          user_id: `auth0|${i.toString(16).padStart(24, "0")}`,
          email: `a${i}@example.com`,
          email_verified: true,
          given_name: "Auth",
          family_name: `Zero ${i}`,
          user_metadata: { plan: "gold" },
          identities: [{ connection: "Username-Password-Authentication", provider: "auth0", user_id: String(i) }],
        });
      return;
    case "csv":
      yield "id,username,first_name,last_name,email,password";
      for (let i = 0; i < count; i++) yield `${i},c${i},Csv,User ${i},c${i}@example.com,${BCRYPT}`;
      return;
    case "pingone-csv":
      yield "name.given,name.family,email,username,password,population.id";
      for (let i = 0; i < count; i++) yield `Ping,User ${i},p${i}@example.com,p${i},${SSHA},pop-1`;
      return;
    case "ldif":
      yield "version: 1";
      yield "";
      for (let i = 0; i < count; i++) {
        yield `dn: uid=l${i},ou=people,dc=example,dc=com`;
        yield "objectClass: inetOrgPerson";
        yield `uid: l${i}`;
        yield `cn: Ldap User ${i}`;
        yield "sn: User";
        yield `mail: l${i}@example.com`;
        yield `userPassword:: ${Buffer.from(SSHA).toString("base64")}`;
        yield "";
      }
      return;
    case "zitadel":
      // ZITADEL's file holds organisations; the converter yields an organisation's users when it closes.
      yield '{"dataOrgs": {"orgs": [';
      for (let org = 0; org * 100 < count; org++) {
        yield `${org > 0 ? "," : ""}{"orgId": "o${org}", "humanUsers": [`;
        for (let i = org * 100; i < Math.min(count, org * 100 + 100); i++) {
          const user = {
            userId: `z${i}`,
            user: {
              userName: `z${i}`,
              profile: { firstName: "Zi", lastName: `Tadel ${i}` },
              email: { email: `z${i}@example.com`, isEmailVerified: true },
              hashedPassword: { value: BCRYPT },
            },
          };
          yield JSON.stringify(user) + (i < Math.min(count, org * 100 + 100) - 1 ? "," : "");
        }
        yield '], "userMetadata": [{"id": "z0", "key": "plan", "value": "Z29sZA=="}]}';
      }
      yield "]}}";
      return;
    case "keycloak":
    case "firebase": {
      yield '{"realm": "demo", "users": [';
      for (let i = 0; i < count; i++) {
        const user =
          format === "keycloak"
            ? {
                id: `k${i}`,
                username: `k${i}`,
                email: `k${i}@example.com`,
                firstName: "Key",
                lastName: `Cloak ${i}`,
                credentials: [
                  {
                    type: "password",
                    secretData: JSON.stringify({ value: KEY64, salt: "c2FsdHNhbHRzYWx0c2FsdA==" }),
                    credentialData: JSON.stringify({ hashIterations: 27500, algorithm: "pbkdf2-sha256" }),
                  },
                ],
              }
            : { localId: `f${i}`, email: `f${i}@example.com`, emailVerified: true, displayName: `Fire Base ${i}`, createdAt: "1508893925000" };
        yield JSON.stringify(user) + (i < count - 1 ? "," : "");
      }
      yield "]}";
      return;
    }
    default:
      throw new Error(`no sample for ${format}`);
  }
}

/** A Readable of the sample that produces lines only as they are read, counting them. */
export function sampleStream(format: string, count: number): { stream: Readable; produced: () => number } {
  let produced = 0;
  const lines = sampleLines(format, count);
  const stream = new Readable({
    read() {
      // About 16 KiB per read, as a file stream hands out.
      let chunk = "";
      while (chunk.length < 16_384) {
        const next = lines.next();
        if (next.done) {
          if (chunk) this.push(chunk);
          this.push(null);
          return;
        }
        produced++;
        chunk += `${next.value}\n`;
      }
      this.push(chunk);
    },
  });
  return { stream, produced: () => produced };
}
