import type { FastifyRequest } from "fastify";

/**
 * What the log may say about a request. Secrets travel in query strings (the session token of
 * `GET /v2/sessions/{id}?sessionToken=…`, the codes in the links of init, verification and
 * passwordless mails) and in headers (`authorization`, cookies); none of them may reach a log
 * line at any level. Request logging (debug and trace) goes through these serializers, and the
 * logger censors the secret headers wherever they would appear. Bodies are never logged.
 */

const REDACTED = "[REDACTED]";

/**
 * Query parameters whose values are (or may be) secrets: codes, tokens, passwords, keys; and
 * Connect's `message`, which carries a whole request message in a GET.
 */
const SECRET_PARAMETER = /code|token|passw|secret|key|otp|credential|assertion|signature|auth|jwt|pat|^message$/i;

function decodedName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, " "));
  } catch {
    return raw;
  }
}

/** The URL with the values of secret query parameters replaced; everything else as it came. */
export function redactUrl(url: string): string {
  const queryStart = url.indexOf("?");
  if (queryStart < 0) return url;
  const query = url
    .slice(queryStart + 1)
    .split("&")
    .map((pair) => {
      const equals = pair.indexOf("=");
      const name = equals < 0 ? pair : pair.slice(0, equals);
      return SECRET_PARAMETER.test(decodedName(name)) ? `${name}=${REDACTED}` : pair;
    })
    .join("&");
  return `${url.slice(0, queryStart)}?${query}`;
}

/** fastify's default request serializer, with the URL redacted (and, as there, no headers or body). */
export function serializeRequest(request: FastifyRequest) {
  return {
    method: request.method,
    url: redactUrl(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/** Paths pino censors in every log line, should a request's or response's headers be logged. */
export const REDACTED_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "req.headers['proxy-authorization']",
  "headers.authorization",
  "headers.cookie",
  "headers['proxy-authorization']",
  "res.headers['set-cookie']",
  "password",
  "*.password",
  "token",
  "*.token",
  "sessionToken",
  "*.sessionToken",
];

/** The `logger` options for fastify: level, the redacting serializers and the censored paths. */
export function loggerOptions(level: string) {
  return {
    level,
    serializers: { req: serializeRequest },
    redact: { paths: REDACTED_PATHS, censor: REDACTED },
  };
}
