import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { PasskeyErrors } from "../domain/error-catalogue.js";
import { escapeHtml } from "../domain/html.js";
import { type JsonObject, PASSWORDLESS_INIT_PATH, type PasskeyCommands } from "../domain/passkeys.js";
import { httpStatusOf, restErrorBody, toConnectError } from "./errors.js";
import type { SourceLimit } from "./rate-limits.js";

/** The options the page's script asks for before the browser's ceremony. */
export const PASSKEY_OPTIONS_PATH = `${PASSWORDLESS_INIT_PATH}/options`;
/** @simplewebauthn/browser's own bundle, served from node_modules: the page makes no third-party request. */
export const WEBAUTHN_BROWSER_SCRIPT_PATH = "/ui/login/assets/simplewebauthn-browser.js";
export const PASSKEY_PAGE_SCRIPT_PATH = "/ui/login/assets/passkey-registration.js";

function browserBundle(): string {
  const require = createRequire(import.meta.url);
  // The package's "require" entry is script/index.js; its UMD bundle sits beside it under dist/.
  const packageDir = dirname(dirname(require.resolve("@simplewebauthn/browser")));
  return readFileSync(join(packageDir, "dist", "bundle", "index.umd.min.js"), "utf8");
}

/**
 * The registration page's script: plain JavaScript, no framework. It reads the link's values from
 * the page's own URL (the code is never written into the HTML), asks for the creation options,
 * runs the browser's ceremony with @simplewebauthn/browser (global `SimpleWebAuthnBrowser`), and
 * posts the credential. Each outcome sets `data-state` on <main> and a message a person can read.
 */
const PAGE_SCRIPT = `(() => {
  const main = document.querySelector("main");
  const message = document.getElementById("message");
  const button = document.getElementById("register");
  const nameField = document.getElementById("name");
  const show = (state, text) => {
    main.dataset.state = state;
    message.textContent = text;
  };
  const params = new URLSearchParams(location.search);
  const link = { userID: params.get("userID") || "", orgID: params.get("orgID") || "", codeID: params.get("codeID") || "", code: params.get("code") || "" };
  const lib = window.SimpleWebAuthnBrowser;
  if (!lib || !lib.browserSupportsWebAuthn()) {
    button.disabled = true;
    show("unsupported", "This browser cannot register passkeys (WebAuthn is not available). Open the link in a current browser on a device with a screen lock or a security key.");
    return;
  }
  const explain = (body) => {
    const id = body && body.details && body.details[0] && body.details[0].id;
    if (id === ${JSON.stringify(PasskeyErrors.codeInvalid.id)}) return ["invalid", "This link is no longer valid: it has expired or was already used. Ask your administrator for a new one."];
    if (id === ${JSON.stringify(PasskeyErrors.createCredentialFailed.id)} || id === ${JSON.stringify(PasskeyErrors.credentialUnparsable.id)}) return ["failed", "The passkey could not be verified. Please try again."];
    return ["failed", "The passkey could not be registered" + (body && body.message ? ": " + body.message : ".")];
  };
  const post = async (url, body) => {
    const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const json = await response.json().catch(() => ({}));
    return { ok: response.ok, json };
  };
  button.addEventListener("click", async () => {
    button.disabled = true;
    show("working", "Follow your browser's prompt to create the passkey…");
    try {
      const started = await post(${JSON.stringify(PASSKEY_OPTIONS_PATH)}, link);
      if (!started.ok) return show(...explain(started.json));
      const options = started.json.publicKeyCredentialCreationOptions.publicKey;
      let credential;
      try {
        credential = await lib.startRegistration({ optionsJSON: options });
      } catch (err) {
        button.disabled = false;
        if (err && (err.name === "NotAllowedError" || err.name === "AbortError")) {
          return show("cancelled", "The passkey was not created: the request was cancelled or timed out. You can try again.");
        }
        if (err && err.name === "InvalidStateError") {
          return show("cancelled", "This authenticator already holds a passkey for your account. Use another one, or sign in with it.");
        }
        return show("cancelled", "The passkey was not created" + (err && err.message ? ": " + err.message : ".") + " You can try again.");
      }
      const finished = await post(${JSON.stringify(PASSWORDLESS_INIT_PATH)}, {
        ...link,
        passkeyId: started.json.passkeyId,
        passkeyName: nameField.value.trim() || "Passkey",
        publicKeyCredential: credential,
      });
      if (!finished.ok) return show(...explain(finished.json));
      show("done", "Your passkey is registered. You can now sign in with it and close this page.");
    } catch (err) {
      button.disabled = false;
      show("failed", "Something went wrong while talking to the server. Please try again.");
    }
  });
})();
`;

/**
 * The reply of an HTML page reached by a link: links carry one-time codes, so the page is not
 * cached, and the code does not travel on in a Referer header to anything the page links to.
 */
export function codePageReply(reply: FastifyReply, status: number): FastifyReply {
  return reply.code(status).header("content-type", "text/html; charset=utf-8").header("cache-control", "no-store").header("referrer-policy", "no-referrer");
}

/** A page of the login flow, reached by a link that carries a one-time code. */
function page(reply: FastifyReply, status: number, state: string, body: string, scripts = false) {
  return codePageReply(reply, status).send(
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">' +
      "<title>Passkey registration</title>" +
      "<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;line-height:1.5}" +
      "#message{padding:.75rem 1rem;border-radius:.4rem;background:#eef}" +
      'main[data-state="done"] #message{background:#e6f6e6}main[data-state="invalid"] #message,main[data-state="expired"] #message,' +
      'main[data-state="used"] #message,main[data-state="failed"] #message,main[data-state="unsupported"] #message{background:#fde8e8}' +
      'main[data-state="cancelled"] #message{background:#fff4dd}button{font-size:1rem;padding:.5rem 1rem}</style>' +
      (scripts ? `<script src="${WEBAUTHN_BROWSER_SCRIPT_PATH}"></script><script src="${PASSKEY_PAGE_SCRIPT_PATH}" defer></script>` : "") +
      `</head><body><main data-state="${escapeHtml(state)}"><h1>Passkey registration</h1>${body}</main></body></html>`,
  );
}

const STATE_TEXTS = {
  invalid: "This link is not valid. Check that you opened the whole link from the mail, or ask your administrator for a new one.",
  expired: "This link has expired. Ask your administrator for a new one.",
  used: "This link was already used to register a passkey. Sign in with your passkey, or ask your administrator for a new link.",
} as const;

/**
 * The passkey registration page ZITADEL's passwordless links lead to
 * (`/ui/login/login/passwordless/init?userID=…&orgID=…&codeID=…&code=…`, its login's
 * EndpointPasswordlessRegistration), served by userport:
 *
 * - `GET` checks the link's code without spending it and shows a button (or why the link cannot
 *   be used: unknown, expired or used);
 * - `POST …/options` (JSON `{userID, codeID, code}`) starts the registration with the code
 *   (ZITADEL's HumanAddPasswordlessSetupInitCode) and answers the creation options;
 * - `POST` (JSON `{userID, codeID, code, passkeyId, passkeyName, publicKeyCredential}`) verifies
 *   the credential and spends the code (HumanPasswordlessSetupInitCode): a cancelled ceremony
 *   leaves the link usable.
 *
 * No token guards these routes, the code is the credential: each is limited per client address.
 */
export async function registerPasskeyPage(
  app: FastifyInstance,
  deps: { passkeys: PasskeyCommands; instanceId: string; limitSource: SourceLimit },
): Promise<void> {
  const { passkeys, instanceId, limitSource } = deps;
  const bundle = browserBundle();

  const script = (source: string) => async (_request: FastifyRequest, reply: FastifyReply) =>
    reply.header("content-type", "text/javascript; charset=utf-8").header("cache-control", "public, max-age=3600").send(source);
  app.get(WEBAUTHN_BROWSER_SCRIPT_PATH, script(bundle));
  app.get(PASSKEY_PAGE_SCRIPT_PATH, script(PAGE_SCRIPT));

  app.get(PASSWORDLESS_INIT_PATH, async (request, reply) => {
    const query = request.query as Record<string, string | undefined>;
    try {
      await limitSource(request.ip);
    } catch (err) {
      const error = toConnectError(err, request.log);
      return page(reply, httpStatusOf(error.code), "failed", `<p id="message">${escapeHtml(error.rawMessage)}</p>`);
    }
    const state = await passkeys.registrationCodeState(instanceId, query.userID ?? "", query.codeID ?? "", query.code ?? "");
    if (state !== "valid") return page(reply, 400, state, `<p id="message">${escapeHtml(STATE_TEXTS[state])}</p>`);
    return page(
      reply,
      200,
      "ready",
      '<p id="message">Register a passkey to sign in without a password: your device asks for your fingerprint, face, screen lock or security key.</p>' +
        '<p><label>Name of the passkey <input id="name" name="name" maxlength="200" value="Passkey"></label></p>' +
        '<p><button id="register" type="button">Register passkey</button></p>',
      true,
    );
  });

  /** JSON in, JSON out, errors as ZITADEL's REST body. */
  const json =
    (act: (body: Record<string, unknown>, text: (name: string) => string) => Promise<unknown>) => async (request: FastifyRequest, reply: FastifyReply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const text = (name: string) => (typeof body[name] === "string" ? (body[name] as string) : "");
      try {
        await limitSource(request.ip);
        return reply.header("cache-control", "no-store").send(await act(body, text));
      } catch (err) {
        const error = toConnectError(err, request.log);
        return reply.code(httpStatusOf(error.code)).header("cache-control", "no-store").send(restErrorBody(error));
      }
    };

  app.post(
    PASSKEY_OPTIONS_PATH,
    json(async (_body, text) => {
      const started = await passkeys.registerPasskey({
        principal: undefined,
        instanceId,
        userId: text("userID"),
        code: { id: text("codeID"), code: text("code"), consume: false },
        authenticator: "",
        domain: "",
      });
      return { passkeyId: started.passkeyId, publicKeyCredentialCreationOptions: started.creationOptions };
    }),
  );

  app.post(
    PASSWORDLESS_INIT_PATH,
    json(async (body, text) => {
      const credential = body.publicKeyCredential;
      const verified = await passkeys.verifyRegistration({
        principal: undefined,
        instanceId,
        userId: text("userID"),
        passkeyId: text("passkeyId"),
        credential: credential !== null && typeof credential === "object" && !Array.isArray(credential) ? (credential as JsonObject) : {},
        name: text("passkeyName").slice(0, 200) || "Passkey",
        code: { id: text("codeID"), code: text("code") },
      });
      return { passkeyId: verified.passkey.id };
    }),
  );
}
