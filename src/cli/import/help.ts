/** The text of `userport import --help` and `userport import --format <f> --help`. */

export const USAGE = `Usage: userport import <file | -> --format <format> [options] [format options]

Reads an export of another identity system as a stream, converts every user (password hashes
included) and imports it into a running userport over the bulk migration API
(userport.migration.v1.MigrationService/ImportUsers), with live progress, a summary and an
optional per-record report. "-" reads the export from standard input.`;

/** Each option: its synopsis, what it does, an example. */
export const OPTIONS: Array<[string, string, string]> = [
  ["--format <format>", "the export's format (below); required", "--format auth0"],
  ["--url <url>", "the userport to import into (default http://localhost:8080); https:// with TLS", "--url https://users.example.com"],
  [
    "--token-file <file>",
    "a file holding a personal access token with user.write (default <data-dir>/admin.pat, the admin token of the first start)",
    "--token-file .data/admin.pat",
  ],
  ["--token <token>", "the token itself instead (or the USERPORT_TOKEN variable; --token wins)", "USERPORT_TOKEN=$(cat pat.txt) userport import …"],
  ["--data-dir <dir>", "where the default token file is (USERPORT_DATA_DIR, default ./.data)", "--data-dir /var/lib/userport"],
  ["--org <orgId>", "the organisation to import into (default: the token's own)", "--org 290771381049671823"],
  ["--dry-run", "validate every record against the server (conflicts included) and write nothing", "--dry-run"],
  ["--on-conflict <fail|skip|update>", "a username that is taken: fail the record (default), skip it, or update the stored user", "--on-conflict skip"],
  [
    "--resume <jobId>",
    "continue an interrupted import of the same file where the server says it stopped (printed after Ctrl-C or a lost connection)",
    "--resume 291034552364318742",
  ],
  [
    "--report <file>",
    "write one NDJSON line per record: line, index, key, outcome, userId or error (code, id, message); appended to when resuming",
    "--report results.ndjson",
  ],
  ["--progress-every <seconds>", "how often the plain progress line is printed when not on a terminal (default 5)", "--progress-every 30"],
  ["--help", "this help; with --format, only that format's part", "--format keycloak --help"],
];

/** Per format: what it reads, its options and an example each. */
export const FORMAT_HELP: Record<string, string> = {
  native: `native: NDJSON, one record of the bulk API per line (userport.migration.v1.ImportRecord in protobuf JSON):
    {"key":"crm-1","human":{"username":"ada","profile":{"givenName":"Ada","familyName":"Lovelace"},
     "email":{"email":"ada@example.com","isVerified":true},"hashedPassword":{"hash":"$2y$10$…"}}}
    {"key":"svc-1","machine":{"username":"ci-bot","machine":{"name":"CI bot"}}}
  Hashes: any family the server has enabled.
  Example: userport import users.ndjson --format native --on-conflict skip`,
  zitadel: `zitadel: ZITADEL's ImportData JSON (ExportData / zitadel-tools): humanUsers, machineUsers, userMetadata, userLinks.
  --idp <zitadel idp id>=<idpId>   link IdP links to this userport IdP   e.g. --idp 1660000000000000=291034552364318742
  Example: userport import export.json --format zitadel --org 290771381049671823`,
  csv: `csv: a header row, one user per row. Common column names are recognised (email, username, first_name, last_name,
  display_name, phone, password, …); a password column holds a hash in any supported family.
  --map <target>=<column>          take a field from another column (repeatable)   e.g. --map email=E-Mail --map metadata.plan=Plan
  --delimiter <c>                  the field delimiter (default ",")               e.g. --delimiter ";"
  Example: userport import auth_user.csv --format csv --map username=username --map password=password`,
  auth0: `auth0: Auth0's user export (NDJSON) joined with the password-hash export Auth0 support hands out (bcrypt).
  --passwords <file>               the password-hash export (NDJSON)                e.g. --passwords passwords.ndjson
  --idp <connection>=<idpId>       identities of this connection become IdP links   e.g. --idp google-oauth2=291034552364318742
  Example: userport import users.ndjson --format auth0 --passwords passwords.ndjson`,
  keycloak: `keycloak: a realm export (realm-export.json) or its per-user files: users, attributes (metadata), federated
  identities, credentials (pbkdf2, pbkdf2-sha256, pbkdf2-sha512, argon2), UPDATE_PASSWORD → change required.
  --idp <alias>=<idpId>            federated identities of this alias become IdP links   e.g. --idp github=291034552364318742
  Example: userport import realm-export.json --format keycloak`,
  firebase: `firebase: \`firebase auth:export\` JSON or CSV, with the project's password hash parameters (Firebase console:
  Authentication → Users → ⋮ → Password hash parameters) → Firebase's modified scrypt.
  --hash-key <base64>              base64_signer_key       e.g. --hash-key jxspr8Ki0RYy…
  --salt-separator <base64>        base64_salt_separator   e.g. --salt-separator Bw==
  --rounds <n>                     rounds                  e.g. --rounds 8
  --mem-cost <n>                   mem_cost                e.g. --mem-cost 14
  --idp <providerId>=<idpId>       providerUserInfo of this provider becomes an IdP link   e.g. --idp google.com=291034552364318742
  Example: userport import users.json --format firebase --hash-key … --salt-separator Bw== --rounds 8 --mem-cost 14`,
  "pingone-csv": `pingone-csv: the CSV of PingOne's user-import tool (name.given, name.family, email, username, password with
  {SSHA512}-style hashes or plaintext, population.id / population.name).
  --population <name or id>=<orgId>  users of this population go to this organisation   e.g. --population Customers=290771381049671823
  --force-password-change            users must change their password at the next sign-in
  Example: userport import users.csv --format pingone-csv --population Customers=290771381049671823`,
  ldif: `ldif: an LDAP export (slapcat or ldapsearch -LLL output; continuation lines and base64 "::" values): uid, mail,
  cn, givenName, sn, telephoneNumber, userPassword ({SSHA}, {SSHA256}, {SSHA512}, {SHA}, {MD5}, {SMD5}, {CRYPT},
  {PBKDF2-SHA256}, {PBKDF2-SHA512}).
  Example: slapcat -b dc=example,dc=com | userport import - --format ldif`,
};

export function helpText(format?: string): string {
  if (format !== undefined && FORMAT_HELP[format]) return `${USAGE}\n\nFormat ${FORMAT_HELP[format]}\n`;
  const options = OPTIONS.map(([synopsis, what, example]) => `  ${synopsis}\n      ${what}\n      e.g. ${example}`).join("\n");
  const formats = Object.values(FORMAT_HELP)
    .map((text) => `  ${text.replaceAll("\n", "\n  ")}`)
    .join("\n\n");
  return `${USAGE}

Options:
${options}

Formats (--format) and their options:
${formats}

Exit status: 0 every record imported (or would be, with --dry-run); 1 some records failed (see --report);
2 a usage, file or connection error, or an import that was interrupted (the --resume command is printed).
Hash families other than bcrypt must be enabled on the server: USERPORT_PASSWORD_VERIFIERS=all (or a list).
`;
}
