import { DomainError, type ErrorKind } from "./errors.js";

/**
 * Every failure userport reports, in one place: ZITADEL's error id, the gRPC code family and the
 * English text, exactly as ZITADEL puts them on the wire (message "<text> (<id>)"). Code raises
 * an error by calling its entry: `throw SessionErrors.terminated()`; an entry whose text has a
 * value in it takes that value: `throw BulkErrors.recordTooLong(limit)`. src/edge/errors.ts
 * renders them for gRPC, Connect and REST, src/pingone/errors.ts in PingOne's shape.
 *
 * Ids starting `UP-` are userport's own (failures ZITADEL has no counterpart for), and
 * `PINGONE-` ones are failures of the PingOne-compatible API that its error shape reports by
 * target, not by id. Each group names the ZITADEL source where ZITADEL raises its ids; texts
 * that are ZITADEL i18n keys (`Errors.…`) are keys ZITADEL has no English text for, so its clients
 * see them raw (internal/static/i18n/en.yaml).
 *
 * Adding an error is one line in its group: `name: kind("ID", "Text")`.
 */
export interface CatalogueError<A extends unknown[] = []> {
  (...args: A): DomainError;
  readonly kind: ErrorKind;
  readonly id: string;
}

type Text<A extends unknown[]> = string | ((...args: A) => string);

function define<A extends unknown[]>(kind: ErrorKind, id: string, text: Text<A>): CatalogueError<A> {
  const make = (...args: A) => new DomainError(kind, id, typeof text === "string" ? text : text(...args));
  return Object.assign(make, { kind, id });
}

const invalid = <A extends unknown[] = []>(id: string, text: Text<A>) => define("InvalidArgument", id, text);
const notFound = <A extends unknown[] = []>(id: string, text: Text<A>) => define("NotFound", id, text);
const exists = <A extends unknown[] = []>(id: string, text: Text<A>) => define("AlreadyExists", id, text);
const precondition = <A extends unknown[] = []>(id: string, text: Text<A>) => define("FailedPrecondition", id, text);
const denied = <A extends unknown[] = []>(id: string, text: Text<A>) => define("PermissionDenied", id, text);
const unauthenticated = <A extends unknown[] = []>(id: string, text: Text<A>) => define("Unauthenticated", id, text);
const exhausted = <A extends unknown[] = []>(id: string, text: Text<A>) => define("ResourceExhausted", id, text);
const unimplemented = <A extends unknown[] = []>(id: string, text: Text<A>) => define("Unimplemented", id, text);
/** An internal failure with its cause, which is logged and never shown (src/edge/errors.ts). */
const internal = (id: string, text: string): CatalogueError<[cause: unknown]> =>
  Object.assign((cause: unknown) => new DomainError("Internal", id, text, { cause }), { kind: "Internal" as const, id });

/** Authentication and authorisation (internal/api/authz/authorization.go, context.go, permission.go; token_verifier.go). */
export const AuthErrors = {
  headerMissing: unauthenticated("AUTH-7fs1e", "auth header missing"),
  tokenInvalid: unauthenticated("AUTH-Ws8Fe", "invalid or expired token"),
  orgNotFound: denied("AUTH-Bs7Ds", "Organisation doesn't exist"),
  /** The RPC's declared permission is missing (the interceptor's check). */
  noMatchingPermission: denied("AUTH-5mWD2", "No matching permissions found"),
  /** The command's own permission check (internal/api/authz/permission.go). */
  permissionDenied: denied("AUTHZ-HKJD33", "Errors.PermissionDenied"),
  sessionExpired: denied("AUTHZ-EGDo3", "session expired"),
  sessionNotAuthenticated: denied("AUTHZ-Kl3p0", "authentication required"),
} as const;

/** List queries (internal/api/grpc/user/v2/query.go, session/v2/query.go; internal/query/search_query.go). */
export const QueryErrors = {
  limitExceeded: invalid("QUERY-4M0fs", "Limit exceeded"),
  tooDeeplyNested: invalid("USER-zsQ97", "Too many query nesting levels (Max 20)"),
  userQueryInvalid: invalid("GRPC-vR9nC", "List.Query.Invalid"),
  sessionIdQueryEmpty: invalid("GRPC-x8n24uh", "List.Query.Invalid"),
  sessionQueryInvalid: invalid("GRPC-x8n23uh", "List.Query.Invalid"),
} as const;

/** Creating users (internal/command/user_human.go, user_v2_human.go, user_machine.go, user_idp_link.go, internal/domain/human*.go). */
export const UserCreationErrors = {
  /** v1 import: ImportHuman's username check. */
  importUsernameEmpty: invalid("COMMAND-00p2b", "Username is empty"),
  usernameEmpty: invalid("V2-zzad3", "Errors.Invalid.Argument"),
  importGivenNameEmpty: invalid("PROFILE-RF5z2", "Given name in profile is empty"),
  importFamilyNameEmpty: invalid("PROFILE-DSUkN", "Family name in profile is empty"),
  givenNameEmpty: invalid("USER-UCej2", "Given name in profile is empty"),
  familyNameEmpty: invalid("USER-4hB7d", "Family name in profile is empty"),
  emailEmpty: invalid("EMAIL-spblu", "Email is empty"),
  emailInvalid: invalid("EMAIL-599BI", "Email is invalid"),
  phoneEmpty: invalid("PHONE-Zt0NV", "Phone is empty"),
  phoneInvalid: invalid("PHONE-so0wa", "Phone is invalid"),
  /** A username that is another organisation's domain name. */
  domainReserved: invalid("COMMAND-SFd21", "Domain is already reserved and cannot be used"),
  metadataKeyEmpty: invalid("USER-Drght", "Errors.User.Metadata.KeyEmpty"),
  metadataValueEmpty: invalid("USER-Dbgth", "Errors.User.Metadata.ValueEmpty"),
  linkInvalid: invalid("COMMAND-6m9Kd", "External IDP invalid"),
  linkIdpMissingV2: precondition("COMMAND-39nf2", "Identity Provider Configuration doesn't exist"),
  linkIdpMissingV1: precondition("COMMAND-39nfs", "Identity Provider Configuration doesn't exist"),
  linkCreationNotAllowed: precondition("COMMAND-SJI3g", "Errors.ExternalIDP.CreationNotAllowed"),
  machineUsernameEmpty: invalid("COMMAND-bm9Ds", "Errors.User.Invalid"),
  machineNameEmpty: invalid("COMMAND-bs9Ds", "Errors.User.Invalid"),
  /** A taken unique claim (username, login name or link): ZITADEL's unique constraints (internal/eventstore/unique_constraint.go). */
  userTaken: exists("V3-DKcYh", "User already exists"),
  linkTaken: exists("V3-DKcYh", "External IDP already taken"),
  /** A taken user id on the v1 and v2 paths. */
  idTakenV1: precondition("COMMAND-k2una", "Errors.User.AlreadyExisting"),
  idTakenV2: precondition("COMMAND-7yiox1isql", "Errors.User.AlreadyExisting"),
  /** userport's import of a TOTP secret (ZITADEL imports none). */
  totpSecretInvalid: invalid("UP-TOTP1", "TOTP secret is not valid base32"),
  recoveryCodesUnsupported: unimplemented("", "recovery codes cannot be imported yet"),
} as const;

/** Reading users (internal/query/user.go). */
export const UserErrors = {
  notFound: notFound("QUERY-Dfbg2", "User could not be found"),
  notYetInitialized: precondition("COMMAND-M9dse", "User is not yet initialized"),
} as const;

/** Username, initialisation, links and metadata of existing users (internal/command/user.go, user_human_init.go, user_idp_link.go, user_metadata.go; internal/query/user_metadata.go). */
export const UserChangeErrors = {
  usernameMissing: invalid("COMMAND-2N9fs", "ID missing"),
  usernameUserNotFound: notFound("COMMAND-5N9ds", "User could not be found"),
  usernameNotChanged: precondition("COMMAND-6m9gs", "Username not changed"),
  initUserNotFound: notFound("COMMAND-2M9df", "User could not be found"),
  alreadyInitialized: precondition("COMMAND-2M9sd", "User is already initialized"),
  linkUserNotFound: precondition("COMMAND-vzktar7b7f", "User could not be found"),
  linkNotFound: notFound("COMMAND-1M9xR", "External IDP not found"),
  metadataUserNotFound: precondition("COMMAND-uXHNj", "User could not be found"),
  metadataListEmpty: precondition("META-9mm2d", "Metadata list is empty"),
  metadataInvalid: invalid("META-2m00f", "Metadata is invalid"),
  metadataKeyInvalid: invalid("META-2n0fs", "Metadata is invalid"),
  metadataBulkKeyInvalid: invalid("COMMAND-m29ds", "Metadata is invalid"),
  metadataKeysMissing: notFound("META-2nnds", "One or more keys do not exist"),
  metadataMissing: notFound("META-ncnw3", "Metadata not found"),
  metadataNotFound: notFound("QUERY-Rgh32", "Metadata not found"),
} as const;

/**
 * The state machine: v1 (management) ids from internal/command/user.go, v2 ids from
 * internal/command/user_v2.go.
 */
export const UserStateErrors = {
  deactivateNotFoundV1: notFound("COMMAND-3M9ds", "User could not be found"),
  deactivateNotFoundV2: notFound("COMMAND-5gp2p62iin", "User could not be found"),
  deactivateInitialV1: precondition("COMMAND-ke0fw", "User with state initial can only be deleted not deactivated"),
  deactivateInitialV2: precondition("COMMAND-gvx4kct9r2", "User with state initial can only be deleted not deactivated"),
  alreadyInactiveV1: precondition("COMMAND-5M0sf", "User already inactive"),
  alreadyInactiveV2: precondition("COMMAND-5gunjw0cd7", "User already inactive"),
  reactivateNotFoundV1: notFound("COMMAND-4M0sd", "User could not be found"),
  reactivateNotFoundV2: notFound("COMMAND-9hy5kzbuk6", "User could not be found"),
  notInactiveV1: precondition("COMMAND-6M0sf", "User is not inactive"),
  notInactiveV2: precondition("COMMAND-s5qqcz97hf", "User is not inactive"),
  lockNotFoundV1: notFound("COMMAND-5M9fs", "User could not be found"),
  lockNotFoundV2: notFound("COMMAND-450yxuqrh1", "User could not be found"),
  notActiveOrInitialV1: precondition("COMMAND-3NN8v", "User is not active or initial"),
  notActiveOrInitialV2: precondition("COMMAND-lgws8wtsqf", "User is not active or initial"),
  unlockNotFoundV1: notFound("COMMAND-M0dos", "User could not be found"),
  unlockNotFoundV2: notFound("COMMAND-x377t913pw", "User could not be found"),
  notLockedV1: precondition("COMMAND-4M0ds", "User is not locked"),
  notLockedV2: precondition("COMMAND-olb9vb0oca", "User is not locked"),
  removeNotFoundV1: notFound("COMMAND-m9od", "User could not be found"),
  removeNotFoundV2: notFound("COMMAND-bd4ir1mblj", "User could not be found"),
} as const;

/** Email and phone codes and initialisation codes (internal/command/user_v2_email.go, user_v2_phone.go, user_human_init.go, user_human_email.go). */
export const VerificationErrors = {
  emailNotFound: notFound("COMMAND-ieJ2e", "Email not found"),
  phoneNotFound: notFound("COMMAND-ieJ2e", "Phone not found"),
  notYetInitialized: precondition("COMMAND-uz0Uu", "User is not yet initialized"),
  emailNotChanged: precondition("COMMAND-Uch5e", "Email not changed"),
  phoneNotChanged: precondition("COMMAND-Uch5e", "Phone not changed"),
  emailNoCodeToResend: precondition("EMAIL-5w5ilin4yt", "Code is empty"),
  phoneNoCodeToResend: precondition("PHONE-5xrra88eq8", "Code is empty"),
  codeEmpty: invalid("COMMAND-Fia4a", "Code is empty"),
  codeInvalid: invalid("COMMAND-eis9R", "Code is invalid"),
  initUserIdMissing: invalid("COMMAND-mkM9f", "User ID missing"),
  initCodeEmpty: invalid("COMMAND-44G8s", "Code is empty"),
  initCodeNotFound: notFound("COMMAND-mmn5f", "Code not found"),
  initCodeInvalid: invalid("COMMAND-11v6G", "Code is invalid"),
  /** The id is ZITADEL's, with its "ç". */
  loginCodeEmpty: invalid("COMMAND-çm0ds", "Code is empty"),
  /** v1 VerifyHumanEmail (internal/command/user_human_email.go), behind the login's mail link. */
  loginUserIdMissing: invalid("COMMAND-4M0ds", "User ID missing"),
  loginCodeNotFound: notFound("COMMAND-3n8ud", "Code not found"),
  loginCodeInvalid: invalid("COMMAND-Gdsgs", "Code is invalid"),
  /** ZITADEL's renderURLTemplate (internal/domain/url_template.go): a template that does not parse. */
  urlTemplateUnparsable: invalid("DOMAIN-oGh5e", "URL Template is invalid"),
  /** … and one naming a field the data does not have. */
  urlTemplateUnknownField: invalid("DOMAIN-ieYa7", "URL Template is invalid"),
} as const;

/** Passwords (internal/command/user_human_password.go, user_v2_password.go, internal/domain/policy_password_complexity.go). */
export const PasswordErrors = {
  tooShort: invalid("COMMA-HuJf6", "Password is too short"),
  lowerCaseMissing: invalid("COMMA-co3Xw", "Password must contain lower case"),
  upperCaseMissing: invalid("COMMA-VoaRj", "Password must contain upper case"),
  numberMissing: invalid("COMMA-ZBv4H", "Password must contain number"),
  symbolMissing: invalid("COMMA-ZDLwA", "Password must contain symbol"),
  /** userport's own: bcrypt reads 72 bytes, so a longer password would match on its first 72. */
  tooLongForBcrypt: invalid("UP-PW72", "Password is too long: at most 72 bytes"),
  /** A wrong current password; in a session check it carries the failed count (CredentialsCheckFailed). */
  invalid: invalid("COMMAND-3M0fs", "Password is invalid"),
  notSet: precondition("COMMAND-Fds3s", "User has not set a password"),
  notVerifiable: internal("COMMAND-CahN2", "Password could not be verified"),
  codeNotFound: precondition("COMMAND-2M9fs", "Code not found"),
  codeExpired: precondition("CODE-QvUQ4P", "Code is expired"),
  codeInvalid: invalid("CODE-woT0xc", "Code is invalid"),
  changeUserNotFound: precondition("COMMAND-3M0fs", "User could not be found"),
  setUserNotFound: precondition("COMMAND-Hj9ds", "User could not be found"),
  notYetInitialized: precondition("COMMAND-2M9sd", "User is not yet initialized"),
} as const;

/** Password hashes given at creation or import (internal/crypto/passwap.go, internal/command/user_human.go). */
export const HashErrors = {
  encodingNotSupported: invalid("USER-JDk4t", "Password hash encoding not supported"),
  familyNotEnabled: invalid("USER-JDk4t", (family: string) => `Password hash encoding not supported: ${family} hashes are not enabled`),
  malformed: invalid("CRYPT-r8Qm2", (detail: string) => `Password hash is malformed: ${detail}`),
  costOutOfRange: invalid("CRYPT-5uV9n", (detail: string) => `Password hash cost is out of range: ${detail}`),
} as const;

/** Sessions (internal/command/session.go, session_model.go; internal/query/session.go). */
export const SessionErrors = {
  terminated: precondition("COMMAND-Hewfq", "Errors.Session.Terminated"),
  expired: precondition("COMMAND-Hkl3d", "Errors.Session.Expired"),
  notFound: notFound("QUERY-SFeaa", "Session does not exist"),
  tokenInvalid: denied("COMMAND-sGr42", "Errors.Session.Token.Invalid"),
  userIdMissing: precondition("COMMAND-Sfw3f", "User ID missing"),
  userNotActive: precondition("SESSION-Gj4ko", "User is not active"),
  passwordNotSet: precondition("COMMAND-WEf3t", "User has not set a password"),
  totpNotReady: precondition("COMMAND-3Mif9s", "OTP is not ready"),
  totpInvalid: invalid("EVENT-8isk2", "Invalid code"),
  /** SetSession naming another user than the session's. */
  userChangeNotPossible: invalid("", "user change not possible"),
  checksUnsupported: unimplemented("", (names: string) => `session checks not supported yet: ${names}`),
  challengesUnsupported: unimplemented("", "session challenges (OTP by SMS or email) are not supported yet"),
} as const;

/**
 * Request shapes the protos' validation rules cannot express, worded as the validator words its
 * failures (src/edge/validation.ts): no id, as ZITADEL's own validation errors have none.
 */
export const RequestErrors = {
  passwordAndHashBoth: invalid("", "invalid ImportHumanUserRequest: set either password or hashedPassword, not both"),
  importHumanUserMissing: invalid("", "invalid DataHumanUser.User: value is required"),
  importMachineUserMissing: invalid("", "invalid DataMachineUser.User: value is required"),
  onConflictUnknown: invalid("", "invalid ImportOptions.OnConflict: value must be one of the defined enum values"),
  outcomeUnknown: invalid("", "invalid ListImportJobResultsRequest.Outcome: value must be one of the defined enum values"),
  resultsLimitTooHigh: invalid("", "invalid ListImportJobResultsRequest.Limit: value must be less than or equal to 1000"),
} as const;

/** userport's own bound on checks per user (src/domain/attempts.ts) and per client (src/edge/rate-limits.ts). */
export const RateLimitErrors = {
  tooManyAttempts: exhausted("UP-RATE2", "Too many attempts for this user, try again later"),
  tooManyRequests: exhausted("UP-RATE1", "Too many requests from this client, try again later"),
} as const;

/** Machine users' secrets and personal access tokens (internal/command/user_machine_secret.go, user_personal_access_token.go). */
export const MachineErrors = {
  secretUserNotFound: precondition("COMMAND-x8910n", "Errors.User.NotExisting"),
  secretRemoveUserNotFound: precondition("COMMAND-x7s802", "Errors.User.NotExisting"),
  secretNotExisting: precondition("COMMAND-coi82n", "Errors.User.Machine.Secret.NotExisting"),
  tokenExpiresBeforeNow: invalid("DOMAIN-dv3t5", "Errors.AuthNKey.ExpireBeforeNow"),
  tokenUserNotFound: precondition("COMMAND-Dggw2", "User could not be found"),
  tokenUserNotMachine: precondition("COMMAND-Df2f1", "Errors.User.WrongType"),
  tokenNotFound: notFound("COMMAND-4m77G", "Errors.User.PAT.NotFound"),
} as const;

/** Organisations, their domains and members (internal/command/org.go, org_domain.go, org_member.go, instance_member.go). */
export const OrgErrors = {
  nameEmpty: invalid("ORG-mruNY", "Errors.Invalid.Argument"),
  nameTaken: exists("V3-DKcYh", "Organisation's name already taken"),
  domainTaken: exists("V3-DKcYh", "Domain already exists"),
  domainLabelEmpty: invalid("ORG-RrfXY", "Errors.Org.Domain.EmptyString"),
  domainNotFound: notFound("ORG-GDfA3", "Domain doesn't exist on organization"),
  addDomainEmpty: invalid("ORG-r3h4J", "Errors.Invalid.Argument"),
  domainAlreadyOnOrg: exists("V2-e1wse", "Errors.Already.Exists"),
  primaryDomainInvalid: invalid("ORG-SsDG2", "Invalid domain"),
  domainNotVerified: precondition("ORG-Ggd32", "Domain is not verified"),
  removeDomainInvalid: invalid("ORG-SJsK3", "Invalid domain"),
  primaryDomainRemoved: precondition("ORG-Sjdi3", "Primary domain must not be deleted"),
  memberRolesEmpty: invalid("ORG-4Mlfs", "Errors.Invalid.Argument"),
  memberRolesInvalid: invalid("Org-4N8es", "Errors.Org.MemberInvalid"),
  memberUserNotFound: precondition("ORG-GoXOn", "User could not be found"),
  memberExists: exists("ORG-poWwe", "Member already exists"),
  changedRolesEmpty: invalid("Org-LiaZi", "Errors.Org.MemberInvalid"),
  changedRolesInvalid: invalid("IAM-m9fG8", "Errors.Org.MemberInvalid"),
  memberNotFound: notFound("Org-D8JxR", "Errors.NotFound"),
} as const;

/** Policies (internal/command/org_policy_domain.go, org_policy_lockout.go, instance_policy_lockout.go). */
export const PolicyErrors = {
  domainPolicyExists: exists("ORG-1M8ds", "Errors.Org.DomainPolicy.AlreadyExists"),
  domainPolicyNotFoundOnChange: notFound("ORG-2N9sd", "Errors.Org.DomainPolicy.NotFound"),
  domainPolicyNotFoundOnRemove: notFound("ORG-Dvsh3", "Errors.Org.DomainPolicy.NotFound"),
  /** ZITADEL's own copy-paste: the domain policy's "not changed" is the label policy's key. */
  domainPolicyNotChanged: precondition("ORG-3M9ds", "Errors.Org.LabelPolicy.NotChanged"),
  lockoutPolicyExists: exists("ORG-0olDf", "Errors.ORG.LockoutPolicy.AlreadyExists"),
  lockoutPolicyNotFoundOnChange: notFound("ORG-ADfs1", "Errors.Org.LockoutPolicy.NotFound"),
  lockoutPolicyNotFoundOnRemove: notFound("ORG-D4zuz", "Errors.Org.LockoutPolicy.NotFound"),
  lockoutPolicyNotChanged: precondition("ORG-0JFSr", "Errors.Org.LockoutPolicy.NotChanged"),
  instanceLockoutPolicyNotChanged: precondition("INSTANCE-0psjF", "Errors.IAM.LockoutPolicy.NotChanged"),
} as const;

/** Identity providers (internal/command/org_idp.go, the generic OIDC provider; reading one, internal/query). */
export const IdpErrors = {
  nameEmpty: invalid("ORG-Sgtj5", "Errors.Invalid.Argument"),
  issuerEmpty: invalid("ORG-Hz6zj", "Errors.Invalid.Argument"),
  clientIdEmpty: invalid("ORG-fb5jm", "Errors.Invalid.Argument"),
  clientSecretEmpty: invalid("ORG-Sfdf4", "Errors.Invalid.Argument"),
  notFound: notFound("QUERY-SAFrt", "Identity Provider Configuration doesn't exist"),
} as const;

/** Admin ImportData (internal/api/grpc/admin/import.go): what userport does not serve of it is its own. */
export const ImportDataErrors = {
  filesUnsupported: unimplemented("UP-IMPORT1", (source: string) => `userport reads no files (${source}): send the organisations in dataOrgs`),
  v1FormatUnsupported: unimplemented("UP-IMPORT3", "The v1 import format (dataOrgsv1) is not served: send the organisations in dataOrgs"),
  timeoutInvalid: invalid("UP-IMPORT4", 'invalid ImportDataRequest.Timeout: not a duration such as "10m"'),
  noData: invalid("UP-IMPORT5", "ImportDataRequest carries no data: send the organisations in dataOrgs"),
} as const;

/** userport's bulk migration API (userport.migration.v1, src/domain/bulk-import.ts). */
export const BulkErrors = {
  jobNotFound: notFound("UP-BULK1", "Import job not found"),
  jobCancelled: precondition("UP-BULK2", "Import job is cancelled"),
  jobRunning: precondition("UP-BULK3", "Import job is already running"),
  tooManyActiveJobs: exhausted("UP-BULK4", (limit: number) => `An organisation has at most ${limit} import jobs that are neither completed nor cancelled`),
  tooManyRecords: invalid("UP-BULK5", (limit: number, count: number) => `A message carries at most ${limit} records, not ${count}`),
  recordTooLong: invalid("UP-BULK6", (limit: number) => `A record is at most ${limit} bytes`),
  messageTooLarge: invalid("UP-BULK6", "A stream message is larger than the server accepts (USERPORT_BODY_LIMIT)"),
  foreignOrg: denied("UP-BULK7", "A record's organization must be empty or the job's organization id"),
  optionsMissing: invalid("UP-BULK8", "The first message of ImportUsers must carry the options"),
  optionsRepeated: invalid("UP-BULK8", "Only the first message of ImportUsers carries options"),
  humanInMachineRecord: invalid("UP-BULK9", "ImportRecord.Machine must carry a machine user; humans go into ImportRecord.Human"),
  emptyRecord: invalid("UP-BULK9", "ImportRecord has neither a human nor a machine user"),
  dryRunResumed: precondition("UP-BULK10", "A dry run cannot resume a job"),
  changedConcurrently: precondition("UP-BULK11", "The user was changed concurrently; send the record again"),
  messageUndecodable: invalid("UP-BULK12", "A stream message is not a valid userport.migration.v1.ImportUsersRequest"),
  lineNotJson: invalid("UP-BULK13", "The line is not JSON"),
  lineInvalid: invalid("UP-BULK13", (field: string | undefined) =>
    field ? `invalid value for field ${field}` : "The line is not a userport.migration.v1.ImportRecord",
  ),
  notNdjson: invalid("UP-BULK14", (mediaType: string) => `Records are uploaded as ${mediaType}`),
} as const;

/** The PingOne-compatible API (src/pingone): PingOne reports these by target, src/pingone/errors.ts maps them. */
export const PingOneErrors = {
  usernameRequired: invalid("PINGONE-username", "username is required"),
  nameRequired: invalid("PINGONE-name", "name is required"),
  nameTooLong: invalid("PINGONE-name", "name must be at most 256 characters"),
  /** A population or gateway name taken in the environment ("population" or "gateway"). */
  nameTaken: exists("PINGONE-name-taken", (kind: string, name: string) => `A ${kind} named "${name}" already exists`),
  populationNotFound: notFound("PINGONE-population", "Population not found"),
  userNotFound: notFound("PINGONE-user", "User could not be found"),
  noCorrelationValue: precondition("PINGONE-correlation", "The user has no value for any of its user type's correlation attributes"),
  /** Directory objects (src/domain/directory-objects.ts) that do not exist, by kind. */
  populationObjectNotFound: notFound("PINGONE-population", "population not found"),
  schemaAttributeNotFound: notFound("PINGONE-schema_attribute", "schema attribute not found"),
  gatewayNotFound: notFound("PINGONE-gateway", "gateway not found"),
  lastPopulation: precondition("PINGONE-last-population", "An environment must contain at least one population"),
  defaultPopulation: precondition("PINGONE-default-population", "The default population cannot be deleted"),
  populationHasUsers: precondition("PINGONE-population-users", (count: number) => `The population still has ${count} user(s)`),
  gatewayMissing: precondition("PINGONE-gateway-missing", (gatewayId: string) => `The user's password gateway ${gatewayId} no longer exists`),
  gatewayDisabled: precondition("PINGONE-gateway-disabled", (gatewayId: string) => `The user's password gateway ${gatewayId} is disabled`),
  newUserInvalid: precondition(
    "PINGONE-new-user",
    (detail: string) => `The directory entry does not make a valid user through the user type's attributeMappings${detail}`,
  ),
  userTypeMissing: precondition(
    "PINGONE-user-type-missing",
    (gatewayId: string, userTypeId: string) => `The gateway ${gatewayId} has no user type ${userTypeId}`,
  ),
} as const;

/**
 * Passkeys: registration codes, registration, sign-in assertions (internal/command/user_human_webauthn.go,
 * user_v2_passkey.go, session.go; internal/domain/webauthn.go for the WEBAU- ids).
 */
export const PasskeyErrors = {
  userNotFound: notFound("COMMAND-Mv9sd", "User could not be found"),
  alreadyExists: exists("COMMAND-Gm0sd", "Errors.User.WebAuthN.AlreadyExists"),
  codeInvalid: invalid("COMMAND-Eeb2a", "Errors.User.Code.Invalid"),
  tokenNotFound: notFound("WEBAU-5M9so", "Errors.User.WebAuthN.NotFound"),
  credentialUnparsable: invalid("WEBAU-sEr8c", "Errors.User.WebAuthN.ErrorOnParseCredential"),
  createCredentialFailed: invalid("WEBAU-3Vb9s", "Errors.User.WebAuthN.CreateCredentialFailed"),
  removeNotFound: notFound("COMMAND-DAfb2", "Errors.User.WebAuthN.NotFound"),
  userNotActive: precondition("COMMAND-Df4b3", "Errors.User.NotFound"),
  /** ZITADEL answers the WEBAU- failures with INTERNAL; they are the caller's, so not here (README "Passkeys"). */
  beginLoginFailed: precondition("WEBAU-4G8sw", "Errors.User.WebAuthN.BeginLoginFailed"),
  noChallenge: precondition("COMMAND-Ioqu5", "Errors.Session.WebAuthN.NoChallenge"),
  assertionUnparsable: invalid("WEBAU-ADgv4", "Errors.User.WebAuthN.ValidateLoginFailed"),
  assertionOfAnotherUser: precondition("COMMAND-Aej7i", "Errors.User.WebAuthN.NotFound"),
  cloneWarning: invalid("WEBAU-4M90s", "Errors.User.WebAuthN.CloneWarning"),
  validateLoginFailed: invalid("WEBAU-3M9si", "Errors.User.WebAuthN.ValidateLoginFailed"),
  sessionUserMissing: precondition("COMMAND-eeR2e", "Errors.User.UserIDMissing"),
  unavailable: unimplemented("SESSION-WEBAU", "WebAuthN is not available"),
} as const;

/** A gateway's LDAP directory, asked for a PingOne user's password (src/ldap/directory.ts). */
export const LdapErrors = {
  gatewayBindRefused: precondition("PINGONE-ldap-bind", "The directory refused the gateway's bindDN and bindPassword"),
  gatewayBindFailed: precondition("PINGONE-ldap-bind", (reason: string) => `The directory refused the gateway's bind: ${reason}`),
  baseMissing: precondition("PINGONE-ldap-base", (baseDn: string) => `The user type's searchBaseDn ${baseDn} does not exist in the directory`),
  searchRefused: precondition("PINGONE-ldap-search", (attribute: string, reason: string) => `The directory refused the search for ${attribute}: ${reason}`),
  ambiguous: precondition(
    "PINGONE-ldap-ambiguous",
    (attribute: string) => `Several directory entries have the user's ${attribute}; the correlation attributes must name one`,
  ),
  noEntry: precondition("PINGONE-ldap-no-entry", (baseDn: string) => `No directory entry under ${baseDn} matches the user's correlation attributes`),
  userBindRefused: precondition("PINGONE-ldap-user-bind", (reason: string) => `The directory refused the user's bind: ${reason}`),
  noServers: precondition("PINGONE-ldap-servers", "The gateway lists no serversHostAndPort"),
  tlsRefused: precondition("PINGONE-ldap-tls", (summary: string) => `The gateway's directory refused TLS (${summary})`),
  lookupFilterInvalid: precondition("PINGONE-ldap-filter", "The user type's newUserLookup.ldapFilterPattern is not an LDAP filter"),
  lookupRefused: precondition("PINGONE-ldap-search", (reason: string) => `The directory refused the new user lookup: ${reason}`),
  unreachable: define(
    "Unavailable",
    "PINGONE-ldap-unavailable",
    (timeoutMs: number, summary: string) => `The gateway's LDAP directory could not be reached within ${timeoutMs} ms (${summary})`,
  ),
} as const;
