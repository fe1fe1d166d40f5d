import type { FastifyInstance } from "fastify";

/**
 * Percent-encodes a gRPC status message the way the gRPC spec and Go's gRPC do: only bytes
 * outside printable ASCII, and "%" itself.
 *
 * Connect-ES encodes `grpc-message` with encodeURIComponent, which is valid, but grpc-js (and so
 * nice-grpc and ZITADEL's Node clients) decode it with decodeURI, leaving "%3A" for ":" in
 * every message. Re-encoding minimally gives every client the text ZITADEL's server would.
 */
function encodeGrpcMessage(message: string): string {
  return message.replace(/[^\x20-\x24\x26-\x7e]/gu, (char) =>
    [...Buffer.from(char, "utf8")].map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, "0")}`).join(""),
  );
}

/** Re-encodes the `grpc-message` in `headers` (a response's headers or trailers) in place. */
export function reencode(headers: Record<string, unknown> | undefined): void {
  const value = headers?.["grpc-message"];
  if (typeof value !== "string") return;
  try {
    headers!["grpc-message"] = encodeGrpcMessage(decodeURIComponent(value));
  } catch {
    // Not valid percent-encoding: leave it as it is.
  }
}

/** Rewrites `grpc-message` in the headers and trailers of gRPC (not gRPC-Web) responses. */
export function registerGrpcMessageEncoding(app: FastifyInstance): void {
  app.addHook("onRequest", (request, reply, done) => {
    const contentType = request.headers["content-type"] ?? "";
    if (contentType.startsWith("application/grpc") && !contentType.startsWith("application/grpc-web")) {
      const raw = reply.raw as unknown as {
        writeHead: (status: number, headers?: Record<string, unknown>) => unknown;
        addTrailers: (trailers: Record<string, unknown>) => void;
      };
      const writeHead = raw.writeHead.bind(raw);
      const addTrailers = raw.addTrailers.bind(raw);
      raw.writeHead = (status, headers) => {
        reencode(headers);
        return writeHead(status, headers);
      };
      raw.addTrailers = (trailers) => {
        reencode(trailers);
        addTrailers(trailers);
      };
    }
    done();
  });
}
