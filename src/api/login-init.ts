import { toJson } from "@bufbuild/protobuf";
import type { FastifyInstance } from "fastify";
import { DetailsSchema } from "../../gen/zitadel/object/v2/object_pb.js";
import type { VerificationCommands } from "../domain/verification.js";
import { changeDetailsV2 } from "./convert.js";
import { type ErrorLogger, httpStatusOf, restErrorBody, toConnectError } from "./errors.js";
import type { SourceLimit } from "./rate-limits.js";

/** The path ZITADEL's init mails link to (its login UI's "initialise user" step). */
export const INIT_PATH = "/ui/login/user/init";

export const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/**
 * The target of the init mail's link. ZITADEL's APIs have no RPC for an init code: its hosted
 * login checks it (`HumanVerifyInitCode`), so userport serves that login step itself at the same
 * path. GET shows a form for the code from the link and a new password; POST (the form, or JSON
 * `{userID, code, password, orgID}`) checks the code and sets the password, and the user becomes
 * ACTIVE. The code is the credential, as in ZITADEL's login, so no token is needed.
 */
export async function registerInitRoute(
  app: FastifyInstance,
  verification: VerificationCommands,
  instanceId: string,
  logUnexpected: ErrorLogger,
  limitSource: SourceLimit,
): Promise<void> {
  await app.register(async (scope) => {
    // Browsers post forms url-encoded; only this scope parses them.
    scope.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });

    scope.get(INIT_PATH, async (request, reply) => {
      const query = request.query as Record<string, string | undefined>;
      const field = (name: string, value: string | undefined, type = "hidden") =>
        `<input type="${type}" name="${name}" value="${escapeHtml(value ?? "")}">`;
      // The code comes from the link; it is put back into the form, never logged or stored here.
      return reply
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .send(
          `<!doctype html><html><head><meta charset="utf-8"><title>Initialize User</title></head><body>` +
            `<h1>Initialize User</h1><form method="post" action="${INIT_PATH}">` +
            field("userID", query.userID) +
            field("orgID", query.orgID) +
            `<label>Code ${field("code", query.code, "text")}</label><br>` +
            (query.passwordset === "true"
              ? ""
              : `<label>New password ${field("password", "", "password")}</label><br>` +
                `<label>Confirm password ${field("passwordconfirm", "", "password")}</label><br>`) +
            `<button type="submit">Finish initialization</button></form></body></html>`,
        );
    });

    scope.post(INIT_PATH, async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const text = (name: string) => (typeof body[name] === "string" ? (body[name] as string) : "");
      const json = (request.headers["content-type"] ?? "").startsWith("application/json");
      try {
        // No token guards this route: each client address gets a bounded number of code checks.
        await limitSource(request.ip);
        if (text("passwordconfirm") !== "" && text("passwordconfirm") !== text("password")) {
          // ZITADEL's login checks the confirmation in the form before calling the command.
          throw Object.assign(new Error("passwords do not match"), { mismatch: true });
        }
        const user = await verification.verifyInitCode(
          { instanceId, orgId: undefined, creator: text("userID"), api: "v2" },
          {
            userId: text("userID"),
            code: text("code"),
            ...(text("orgID") !== "" ? { orgId: text("orgID") } : {}),
            ...(text("password") !== "" ? { password: text("password") } : {}),
          },
        );
        if (json) return reply.send({ details: toJson(DetailsSchema, changeDetailsV2(user)) });
        return reply
          .header("content-type", "text/html; charset=utf-8")
          .send("<!doctype html><html><body><h1>Your user is initialized.</h1></body></html>");
      } catch (err) {
        if ((err as { mismatch?: boolean }).mismatch) {
          const body = { code: 3, message: "Passwords do not match", details: [] };
          return json ? reply.code(400).send(body) : reply.code(400).header("content-type", "text/html; charset=utf-8").send(body.message);
        }
        const error = toConnectError(err, logUnexpected);
        const status = httpStatusOf(error.code);
        if (json) return reply.code(status).send(restErrorBody(error));
        return reply.code(status).header("content-type", "text/html; charset=utf-8").send(escapeHtml(error.rawMessage));
      }
    });
  });
}
