import { type CatalogueError, PingOneErrors, UserCreationErrors } from "./error-catalogue.js";
import { parsePhoneNumberWithError } from "libphonenumber-js";

/** Gender as ZITADEL numbers it in both API versions; unknown numbers read as unspecified. */
const Gender = { unspecified: 0, female: 1, male: 2, diverse: 3 } as const;

export interface HumanProfile {
  givenName: string;
  familyName: string;
  nickName: string;
  displayName: string;
  /** A canonical BCP 47 tag, or "und" when none or an unparsable one was given. */
  preferredLanguage: string;
  gender: number;
}

/**
 * Which API a create request came through. The rules are the same, but ZITADEL reports some
 * failures with different error ids on each path.
 */
export type CreatePath = "v1-import" | "v1-add" | "v2" | "pingone";

/**
 * V2-zzad3 carries the key `Errors.Invalid.Argument`, which ZITADEL has no English text for, so
 * its clients see the raw key (ZITADEL's internal/static/i18n/en.yaml has none).
 */
const PROFILE_ERRORS: Record<CreatePath, { username: CatalogueError; given?: CatalogueError; family?: CatalogueError }> = {
  "v1-import": {
    username: UserCreationErrors.importUsernameEmpty,
    given: UserCreationErrors.importGivenNameEmpty,
    family: UserCreationErrors.importFamilyNameEmpty,
  },
  "v1-add": { username: UserCreationErrors.usernameEmpty, given: UserCreationErrors.givenNameEmpty, family: UserCreationErrors.familyNameEmpty },
  v2: { username: UserCreationErrors.usernameEmpty, given: UserCreationErrors.givenNameEmpty, family: UserCreationErrors.familyNameEmpty },
  // PingOne's Users API (src/pingone): names are optional there, the username is required.
  pingone: { username: PingOneErrors.usernameRequired },
};

export function normalizeUsername(username: string, path: CreatePath): string {
  const trimmed = username.trim();
  if (trimmed === "") throw PROFILE_ERRORS[path].username();
  return trimmed;
}

/**
 * Trims the profile, requires both names and fills in ZITADEL's display-name default. ZITADEL
 * falls back to the email and then the username when a name is blank, but both names are
 * required here, so the default is always "<given> <family>".
 */
export function normalizeProfile(profile: HumanProfile, path: CreatePath, fallbackName = ""): HumanProfile {
  const errors = PROFILE_ERRORS[path];
  const givenName = profile.givenName.trim();
  const familyName = profile.familyName.trim();
  // PingOne's users may have no name: the display name then falls back as ZITADEL's
  // AddHuman does (the names, else the email or username given as `fallbackName`).
  if (errors.given && givenName === "") throw errors.given();
  if (errors.family && familyName === "") throw errors.family();
  const displayName = profile.displayName.trim() || `${givenName} ${familyName}`.trim() || fallbackName;
  return {
    givenName,
    familyName,
    nickName: profile.nickName.trim(),
    displayName,
    preferredLanguage: normalizeLanguage(profile.preferredLanguage),
    gender: Object.values(Gender).includes(profile.gender as 0) ? profile.gender : Gender.unspecified,
  };
}

/** Tags seen so far: canonicalising costs more than everything else a create validates. */
const canonicalLanguages = new Map<string, string>();
const MAX_CACHED_LANGUAGES = 1000;

/**
 * Like Go's language.Make: an unparsable or empty tag becomes "und" instead of an error, and "_"
 * separates subtags as "-" does ("de_CH" is "de-CH").
 */
function normalizeLanguage(tag: string): string {
  let canonical = canonicalLanguages.get(tag);
  if (canonical === undefined) {
    canonical = canonicalLanguage(tag);
    if (canonicalLanguages.size < MAX_CACHED_LANGUAGES) canonicalLanguages.set(tag, canonical);
  }
  return canonical;
}

function canonicalLanguage(tag: string): string {
  const trimmed = tag.trim();
  if (trimmed === "") return "und";
  try {
    return Intl.getCanonicalLocales(trimmed.replaceAll("_", "-"))[0] ?? "und";
  } catch {
    return "und";
  }
}

/** RFC 5322 atext plus UTF-8 (RFC 6532), as Go's net/mail accepts it. */
const ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-\\u0080-\\uffff]+";
const DOT_ATOM = `${ATOM}(?:\\.${ATOM})*`;
/** A bare addr-spec: no display name, no angle brackets, no comments. */
const ADDR_SPEC = new RegExp(`^${DOT_ATOM}@(?:${DOT_ATOM}|\\[[\\x21-\\x5a\\x5e-\\x7e]*\\])$`, "u");

/**
 * Trims the address and requires a bare RFC 5322 addr-spec, which is what ZITADEL's
 * "parse and compare" rule amounts to (`Bob <bob@example.com>` is refused). The case is kept.
 */
export function normalizeEmail(email: string): string {
  const trimmed = email.trim();
  if (trimmed === "") throw UserCreationErrors.emailEmpty();
  if (!ADDR_SPEC.test(trimmed)) throw UserCreationErrors.emailInvalid();
  return trimmed;
}

/** Parses a phone number (default region CH, as ZITADEL) and returns it in E.164. */
export function normalizePhone(phone: string): string {
  const trimmed = phone.trim();
  if (trimmed === "") throw UserCreationErrors.phoneEmpty();
  try {
    return parsePhoneNumberWithError(trimmed, "CH").number;
  } catch {
    throw UserCreationErrors.phoneInvalid();
  }
}
