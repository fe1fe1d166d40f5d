import { toJson } from "@bufbuild/protobuf";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { DetailsSchema } from "../../gen/zitadel/object/v2/object_pb.js";
import { escapeHtml } from "../domain/html.js";
import type { User } from "../domain/ports.js";
import type { PasskeyCommands } from "../domain/passkeys.js";
import type { VerificationCommands } from "../domain/verification.js";
import { changeDetailsV2 } from "../services/convert.js";
import { httpStatusOf, restErrorBody, toConnectError } from "./errors.js";
import { codePageReply, registerPasskeyPage } from "./passkey-page.js";
import type { SourceLimit } from "./rate-limits.js";

/** The path ZITADEL's init mails link to (its login UI's "initialise user" step). */
export const INIT_PATH = "/ui/login/user/init";
/** Where ZITADEL's email verification mails link to (its login's EndpointMailVerification). */
export const MAIL_VERIFICATION_PATH = "/ui/login/mail/verification";
export { PASSWORDLESS_INIT_PATH } from "../domain/passkeys.js";

function page(reply: FastifyReply, status: number, title: string, body: string) {
  return codePageReply(reply, status).send(
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>` + `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`,
  );
}

/** A form field; values from the link (the code among them) are put back into the form, never logged or stored here. */
const field = (name: string, value: string | undefined, type = "hidden") => `<input type="${type}" name="${name}" value="${escapeHtml(value ?? "")}">`;

/** A form posting the link's user, organisation and code, with `fields` between the code and the button. */
const codeForm = (action: string, query: Record<string, string | undefined>, fields: string, button: string) =>
  `<form method="post" action="${action}">` +
  field("userID", query.userID) +
  field("orgID", query.orgID) +
  `<label>Code ${field("code", query.code, "text")}</label><br>` +
  fields +
  `<button type="submit">${button}</button></form>`;

/** A refusal the page itself decides (before any command runs), in the error shape of the REST API. */
class FormError extends Error {}

/**
 * The POST of a code form (url-encoded from the page, or JSON from a script): the route's source
 * limit first — no token guards these routes, the code is the credential — then `act`. Answers the
 * user's details as JSON, or `done` as a page; errors as ZITADEL's REST body or a page with its text.
 */
function codeAction(title: string, done: { title: string; body: string }, limitSource: SourceLimit, act: (text: (name: string) => string) => Promise<User>) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const text = (name: string) => (typeof body[name] === "string" ? (body[name] as string) : "");
    const json = (request.headers["content-type"] ?? "").startsWith("application/json");
    try {
      await limitSource(request.ip);
      const user = await act(text);
      if (json) return reply.send({ details: toJson(DetailsSchema, changeDetailsV2(user)) });
      return page(reply, 200, done.title, done.body);
    } catch (err) {
      if (err instanceof FormError) {
        return json ? reply.code(400).send({ code: 3, message: err.message, details: [] }) : page(reply, 400, title, `<p>${escapeHtml(err.message)}</p>`);
      }
      const error = toConnectError(err, request.log);
      const status = httpStatusOf(error.code);
      if (json) return reply.code(status).send(restErrorBody(error));
      return page(reply, status, title, `<p>${escapeHtml(error.rawMessage)}</p>`);
    }
  };
}

/**
 * The pages the links userport hands out lead to. ZITADEL's APIs have no RPC for these codes: its
 * hosted login checks them, so userport serves those login steps itself at the same paths.
 *
 * - `GET /ui/login/user/init?userID=…&code=…&orgID=…[&passwordset=true]` (the init mail): a form for
 *   the code and a new password; `POST` (the form, or JSON `{userID, code, password, orgID}`) checks
 *   the code and sets the password (ZITADEL's `HumanVerifyInitCode`), and the user becomes ACTIVE.
 * - `GET /ui/login/mail/verification?userID=…&code=…&orgID=…` shows a form with the code from the
 *   mail; `POST` (the form, or JSON `{userID, code, orgID}`) verifies the email. ZITADEL's login
 *   verifies already on the GET (internal/api/ui/login/mail_verify_handler.go); here a GET changes
 *   nothing, so a mail scanner that follows the link does not spend the code.
 * - `/ui/login/login/passwordless/init?userID=…&orgID=…&codeID=…&code=…` (the link of
 *   ImportHumanUser's `passwordlessRegistration` and of the passkey registration RPCs): the
 *   passkey registration page, src/edge/passkey-page.ts.
 */
export async function registerLoginPages(
  app: FastifyInstance,
  deps: { verification: VerificationCommands; passkeys: PasskeyCommands; instanceId: string; limitSource: SourceLimit },
): Promise<void> {
  const { verification, passkeys, instanceId, limitSource } = deps;
  await app.register(async (scope) => {
    // Browsers post forms url-encoded; only this scope parses them.
    scope.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });

    scope.get(INIT_PATH, async (request, reply) => {
      const query = request.query as Record<string, string | undefined>;
      const passwords =
        query.passwordset === "true"
          ? ""
          : `<label>New password ${field("password", "", "password")}</label><br>` +
            `<label>Confirm password ${field("passwordconfirm", "", "password")}</label><br>`;
      return page(reply, 200, "Initialize User", codeForm(INIT_PATH, query, passwords, "Finish initialization"));
    });

    scope.post(
      INIT_PATH,
      codeAction("Initialize User", { title: "Your user is initialized.", body: "" }, limitSource, (text) => {
        // ZITADEL's login checks the confirmation in the form before calling the command.
        if (text("passwordconfirm") !== "" && text("passwordconfirm") !== text("password")) throw new FormError("Passwords do not match");
        return verification.verifyInitCode(
          { instanceId, orgId: undefined, creator: text("userID"), api: "v2" },
          {
            userId: text("userID"),
            code: text("code"),
            ...(text("orgID") !== "" ? { orgId: text("orgID") } : {}),
            ...(text("password") !== "" ? { password: text("password") } : {}),
          },
        );
      }),
    );

    scope.get(MAIL_VERIFICATION_PATH, async (request, reply) =>
      page(
        reply,
        200,
        "Verify email",
        "<p>Enter the code from the mail to verify your email address.</p>" +
          codeForm(MAIL_VERIFICATION_PATH, request.query as Record<string, string | undefined>, "", "Verify"),
      ),
    );

    scope.post(
      MAIL_VERIFICATION_PATH,
      codeAction("Verify email", { title: "Email verified", body: "<p>Your email address is verified. You can close this page.</p>" }, limitSource, (text) =>
        verification.verifyEmailLink(
          { instanceId, orgId: undefined, creator: text("userID"), api: "v1" },
          { userId: text("userID"), code: text("code"), ...(text("orgID") !== "" ? { orgId: text("orgID") } : {}) },
        ),
      ),
    );
  });
  await registerPasskeyPage(app, { passkeys, instanceId, limitSource });
}
