import { toJson } from "@bufbuild/protobuf";
import type { FastifyInstance, FastifyReply } from "fastify";
import { DetailsSchema } from "../../gen/zitadel/object/v2/object_pb.js";
import type { VerificationCommands } from "../domain/verification.js";
import { changeDetailsV2 } from "./convert.js";
import { type ErrorLogger, httpStatusOf, restErrorBody, toConnectError } from "./errors.js";
import { escapeHtml } from "./login-init.js";
import type { SourceLimit } from "./rate-limits.js";

/** Where ZITADEL's email verification mails link to (its login's EndpointMailVerification). */
export const MAIL_VERIFICATION_PATH = "/ui/login/mail/verification";
/** Where ZITADEL's passwordless registration links lead (its login's EndpointPasswordlessRegistration). */
export const PASSWORDLESS_INIT_PATH = "/ui/login/login/passwordless/init";

/**
 * Links carry one-time codes: the pages are not cached, and the code does not travel on in a
 * Referer header to anything the page links to.
 */
function page(reply: FastifyReply, status: number, title: string, body: string) {
  return reply
    .code(status)
    .header("content-type", "text/html; charset=utf-8")
    .header("cache-control", "no-store")
    .header("referrer-policy", "no-referrer")
    .send(
      `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>` +
        `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`,
    );
}

/**
 * The login pages the links userport hands out lead to, besides the init step
 * (src/api/login-init.ts):
 *
 * - `GET /ui/login/mail/verification?userID=…&code=…&orgID=…` shows a form with the code from the
 *   mail; `POST` (the form, or JSON `{userID, code, orgID}`) verifies the email. ZITADEL's login
 *   verifies already on the GET (internal/api/ui/login/mail_verify_handler.go); here a GET changes
 *   nothing, so a mail scanner that follows the link does not spend the code.
 * - `GET /ui/login/login/passwordless/init?userID=…&orgID=…&codeID=…&code=…` (the link of
 *   ImportHumanUser's `passwordlessRegistration`): passkey registration is not served yet, so the
 *   page says what to do instead. The code is not put into the page.
 */
export async function registerLoginPages(
  app: FastifyInstance,
  verification: VerificationCommands,
  instanceId: string,
  logUnexpected: ErrorLogger,
  limitSource: SourceLimit,
): Promise<void> {
  await app.register(async (scope) => {
    scope.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });

    scope.get(MAIL_VERIFICATION_PATH, async (request, reply) => {
      const query = request.query as Record<string, string | undefined>;
      const field = (name: string, value: string | undefined, type = "hidden") =>
        `<input type="${type}" name="${name}" value="${escapeHtml(value ?? "")}">`;
      return page(
        reply,
        200,
        "Verify email",
        `<p>Enter the code from the mail to verify your email address.</p>` +
          `<form method="post" action="${MAIL_VERIFICATION_PATH}">` +
          field("userID", query.userID) +
          field("orgID", query.orgID) +
          `<label>Code ${field("code", query.code, "text")}</label><br>` +
          `<button type="submit">Verify</button></form>`,
      );
    });

    scope.post(MAIL_VERIFICATION_PATH, async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const text = (name: string) => (typeof body[name] === "string" ? (body[name] as string) : "");
      const json = (request.headers["content-type"] ?? "").startsWith("application/json");
      try {
        // No token guards this route: each client address gets a bounded number of code checks.
        await limitSource(request.ip);
        const user = await verification.verifyEmailLink(
          { instanceId, orgId: undefined, creator: text("userID"), api: "v1" },
          { userId: text("userID"), code: text("code"), ...(text("orgID") !== "" ? { orgId: text("orgID") } : {}) },
        );
        if (json) return reply.send({ details: toJson(DetailsSchema, changeDetailsV2(user)) });
        return page(reply, 200, "Email verified", "<p>Your email address is verified. You can close this page.</p>");
      } catch (err) {
        const error = toConnectError(err, logUnexpected);
        const status = httpStatusOf(error.code);
        if (json) return reply.code(status).send(restErrorBody(error));
        return page(reply, status, "Verify email", `<p>${escapeHtml(error.rawMessage)}</p>`);
      }
    });

    scope.get(PASSWORDLESS_INIT_PATH, async (_request, reply) =>
      page(
        reply,
        200,
        "Passkey registration",
        "<p>Registering a passkey is not available on this server yet, so this link cannot be used.</p>" +
          "<p>Sign in with your password instead, or contact your administrator to set up your account.</p>",
      ),
    );
  });
}
