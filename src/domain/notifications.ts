import { VerificationErrors } from "./error-catalogue.js";
import { escapeHtml } from "./html.js";
import type { IdGenerator } from "./ids.js";
import type { SecretBox } from "./secrets.js";
import type { NotificationKind, OutboxMessage, User } from "./ports.js";

/**
 * Notifications: the mails (and SMS texts) ZITADEL sends for codes, rendered here and written to
 * the outbox in the same transaction as the change that made the code; src/notify delivers them.
 */

/** The values a link template may use, as ZITADEL's Go templates name them (`{{.UserID}}` …). */
export interface UrlTemplateData {
  UserID: string;
  Code: string;
  OrgID: string;
  LoginName: string;
  DisplayName: string;
  PreferredLanguage: string;
  PasswordSet?: string;
  /** Passkey registration links only. */
  CodeID?: string;
}

const ACTION = /\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}/gs;
const FIELD = /^\.([A-Za-z_][A-Za-z0-9_]*)$/;

/**
 * Renders a link template the way ZITADEL's `renderURLTemplate` (Go text/template) does for field
 * references: a template that does not parse is `DOMAIN-oGh5e`, one naming a field the data does
 * not have `DOMAIN-ieYa7`, both "URL Template is invalid". Only `{{.Field}}` actions are
 * supported (ZITADEL documents no others); any other action counts as unparsable here.
 */
export function renderUrlTemplate(template: string, data: UrlTemplateData): string {
  let out = "";
  let last = 0;
  let executionError = false;
  const literal = (text: string) => {
    // An opening delimiter outside an action is an unclosed action: Go fails to parse it.
    if (text.includes("{{")) throw VerificationErrors.urlTemplateUnparsable();
    out += text;
  };
  for (const match of template.matchAll(ACTION)) {
    literal(template.slice(last, match.index));
    last = match.index + match[0].length;
    const field = FIELD.exec(match[2] ?? "");
    if (!field) throw VerificationErrors.urlTemplateUnparsable();
    const value = (data as unknown as Record<string, string | undefined>)[field[1]!];
    if (value === undefined) executionError = true;
    else out += value;
  }
  literal(template.slice(last));
  if (executionError) throw VerificationErrors.urlTemplateUnknownField();
  return out;
}

/** Checks a template before a code is made for it, with placeholder values. */
export function checkUrlTemplate(template: string, extra: Partial<UrlTemplateData> = {}): void {
  renderUrlTemplate(template, {
    ...extra,
    UserID: "u",
    Code: "c",
    OrgID: "o",
    LoginName: "l",
    DisplayName: "d",
    PreferredLanguage: "en",
    PasswordSet: "false",
  });
}

/** The login UI paths ZITADEL's own mails link to, used when the request gave no template. */
const DEFAULT_LINKS: Record<Exclude<NotificationKind, "phone_verification">, string> = {
  init: "/ui/login/user/init?userID={{.UserID}}&loginname={{.LoginName}}&code={{.Code}}&orgID={{.OrgID}}&passwordset={{.PasswordSet}}",
  email_verification: "/ui/login/mail/verification?userID={{.UserID}}&code={{.Code}}&orgID={{.OrgID}}",
  password_reset: "/ui/login/password/init?userID={{.UserID}}&code={{.Code}}&orgID={{.OrgID}}",
  passwordless_registration: "/ui/login/login/passwordless/init?userID={{.UserID}}&orgID={{.OrgID}}&codeID={{.CodeID}}&code={{.Code}}",
};

type Language = "en" | "de";

interface Texts {
  subject: string;
  greeting: (name: string) => string;
  body: string;
  action: string;
  code: string;
  expiry: string;
}

/** Texts after ZITADEL's default message texts (internal/notification/static/i18n). */
const TEXTS: Record<Language, Record<NotificationKind, Texts>> = {
  en: {
    init: {
      subject: "Initialize User",
      greeting: (name) => `Hello ${name},`,
      body: "This user was created. Use the code below or the link to initialize it and set your password.",
      action: "Finish initialization",
      code: "Code",
      expiry: "The code is valid for 72 hours.",
    },
    email_verification: {
      subject: "Verify email",
      greeting: (name) => `Hello ${name},`,
      body: "A new email has been added. Please use the code below or the link to verify your email.",
      action: "Verify email",
      code: "Code",
      expiry: "The code is valid for 1 hour.",
    },
    phone_verification: {
      subject: "Verify phone",
      greeting: (name) => `Hello ${name},`,
      body: "A new phone number has been added. Please use the following code to verify it.",
      action: "",
      code: "Code",
      expiry: "The code is valid for 1 hour.",
    },
    password_reset: {
      subject: "Reset password",
      greeting: (name) => `Hello ${name},`,
      body: "We received a password reset request. Please use the code below or the link to reset your password.",
      action: "Reset password",
      code: "Code",
      expiry: "The code is valid for 1 hour. If you did not ask for this, ignore this mail.",
    },
    passwordless_registration: {
      subject: "Add Passkey",
      greeting: (name) => `Hello ${name},`,
      body: "Use the link below to register a passkey (a fingerprint, face recognition, a security key or your device's screen lock) for signing in.",
      action: "Add passkey",
      code: "Code",
      expiry: "The link is valid for 1 hour and can be used once.",
    },
  },
  de: {
    init: {
      subject: "Benutzer initialisieren",
      greeting: (name) => `Hallo ${name},`,
      body: "Dieser Benutzer wurde erstellt. Mit dem Code oder dem Link unten schliessen Sie die Initialisierung ab und setzen Ihr Passwort.",
      action: "Initialisierung abschliessen",
      code: "Code",
      expiry: "Der Code ist 72 Stunden gültig.",
    },
    email_verification: {
      subject: "E-Mail verifizieren",
      greeting: (name) => `Hallo ${name},`,
      body: "Eine neue E-Mail-Adresse wurde hinzugefügt. Bitte verifizieren Sie sie mit dem Code oder dem Link unten.",
      action: "E-Mail verifizieren",
      code: "Code",
      expiry: "Der Code ist 1 Stunde gültig.",
    },
    phone_verification: {
      subject: "Telefonnummer verifizieren",
      greeting: (name) => `Hallo ${name},`,
      body: "Eine neue Telefonnummer wurde hinzugefügt. Bitte verifizieren Sie sie mit diesem Code.",
      action: "",
      code: "Code",
      expiry: "Der Code ist 1 Stunde gültig.",
    },
    password_reset: {
      subject: "Passwort zurücksetzen",
      greeting: (name) => `Hallo ${name},`,
      body: "Wir haben eine Anfrage zum Zurücksetzen Ihres Passworts erhalten. Bitte verwenden Sie den Code oder den Link unten.",
      action: "Passwort zurücksetzen",
      code: "Code",
      expiry: "Der Code ist 1 Stunde gültig. Falls Sie das nicht angefordert haben, ignorieren Sie diese Mail.",
    },
    passwordless_registration: {
      subject: "Passkey hinzufügen",
      greeting: (name) => `Hallo ${name},`,
      body: "Mit dem Link unten registrieren Sie einen Passkey (Fingerabdruck, Gesichtserkennung, Sicherheitsschlüssel oder die Bildschirmsperre Ihres Geräts) für die Anmeldung.",
      action: "Passkey hinzufügen",
      code: "Code",
      expiry: "Der Link ist 1 Stunde gültig und einmal verwendbar.",
    },
  },
};

/** The user's preferred language where we have texts for it ("de-CH" reads German), else English. */
export function messageLanguage(preferredLanguage: string): Language {
  return preferredLanguage.toLowerCase().split("-")[0] === "de" ? "de" : "en";
}

export interface NotificationInput {
  kind: NotificationKind;
  user: User;
  /** The plaintext code; it ends up only inside the sealed body. */
  code: string;
  /** The request's link template; ZITADEL's login UI link when absent. */
  urlTemplate?: string;
  at: number;
  /** The code's id, for passkey registration links. */
  codeId?: string;
}

export interface NotifierDeps {
  secretBox: SecretBox;
  newId: IdGenerator;
  /** Base of the default links, e.g. `https://id.example.com` (no trailing slash). */
  externalUrl: string;
}

/** Renders notifications into outbox messages; the caller writes them with its change. */
export function createNotifier(deps: NotifierDeps) {
  /**
   * The message for one code, in the user's language. Mails go to the user's email, phone codes
   * to the phone (kept undeliverable: no SMS provider can be configured). A template that does not
   * render throws ZITADEL's error, so check it before anything is written.
   */
  function compose(input: NotificationInput): OutboxMessage {
    const { user, code, kind } = input;
    const human = user.human;
    if (!human) throw new Error("notifications go to human users only");
    const texts = TEXTS[messageLanguage(human.profile.preferredLanguage)][kind];
    const name = human.profile.displayName || `${human.profile.givenName} ${human.profile.familyName}`.trim() || user.username;
    const sms = kind === "phone_verification";
    let link: string | undefined;
    if (!sms) {
      const data: UrlTemplateData = {
        UserID: user.id,
        Code: code,
        OrgID: user.orgId,
        LoginName: user.username,
        DisplayName: human.profile.displayName,
        PreferredLanguage: human.profile.preferredLanguage,
        PasswordSet: String(human.passwordSet),
        ...(input.codeId !== undefined ? { CodeID: input.codeId } : {}),
      };
      link =
        input.urlTemplate !== undefined
          ? renderUrlTemplate(input.urlTemplate, data)
          : deps.externalUrl + renderUrlTemplate(DEFAULT_LINKS[kind], { ...data, LoginName: encodeURIComponent(user.username) });
    }
    const lines = [texts.greeting(name), "", texts.body, "", `${texts.code}: ${code}`];
    if (link) lines.push("", `${texts.action}: ${link}`);
    lines.push("", texts.expiry);
    const text = lines.join("\n");
    const html = link
      ? `<p>${escapeHtml(texts.greeting(name))}</p><p>${escapeHtml(texts.body)}</p>` +
        `<p>${escapeHtml(texts.code)}: <strong>${escapeHtml(code)}</strong></p>` +
        `<p><a href="${escapeHtml(link)}">${escapeHtml(texts.action)}</a></p><p>${escapeHtml(texts.expiry)}</p>`
      : undefined;
    return {
      id: deps.newId(),
      instanceId: user.instanceId,
      userId: user.id,
      kind,
      channel: sms ? "sms" : "email",
      recipient: sms ? human.phone.number : human.email.address,
      deliverable: !sms,
      subject: texts.subject,
      sealedBody: deps.secretBox.seal(JSON.stringify(sms ? { text: `${texts.code}: ${code}` } : { text, html })),
      createdAt: input.at,
    };
  }

  return { compose };
}

export type Notifier = ReturnType<typeof createNotifier>;
