import type { FastifyInstance } from "fastify";

/** Bodies made of length-prefixed messages: gRPC, gRPC-Web (binary) and Connect's streaming protocol. */
const ENVELOPED = /^application\/(grpc|grpc-web|connect)(\+[\w-]+)?\s*(;|$)/i;

/**
 * The body in chunks that never run past the end of a message envelope (5 bytes of flags and
 * length, then the message). Connect's envelope decoder splits each chunk into envelopes and
 * throws when one of them is malformed or larger than `readMaxBytes`, losing the envelopes it
 * had already split from that chunk: the messages a client sent before a broken one would be
 * dropped unread. Split here, a chunk holds at most one envelope's end, so every message before
 * a broken one reaches the handler first.
 */
export async function* envelopeAligned(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const header = new Uint8Array(5);
  let headerFill = 0;
  let payloadLeft = 0;
  for await (const chunk of source) {
    let start = 0;
    let at = 0;
    while (at < chunk.length) {
      if (payloadLeft > 0) {
        const take = Math.min(payloadLeft, chunk.length - at);
        at += take;
        payloadLeft -= take;
      } else {
        const take = Math.min(5 - headerFill, chunk.length - at);
        header.set(chunk.subarray(at, at + take), headerFill);
        headerFill += take;
        at += take;
        if (headerFill < 5) continue;
        headerFill = 0;
        payloadLeft = new DataView(header.buffer).getUint32(1);
      }
      if (payloadLeft === 0 && headerFill === 0) {
        yield chunk.subarray(start, at);
        start = at;
      }
    }
    if (start < chunk.length) yield chunk.subarray(start);
  }
}

/** Makes the enveloped request bodies of `app`'s routes arrive envelope-aligned ({@link envelopeAligned}). */
export function alignEnvelopeChunks(app: FastifyInstance): void {
  app.addHook("onRequest", async (request) => {
    if (!ENVELOPED.test(request.headers["content-type"] ?? "")) return;
    const raw = request.raw;
    const chunks = raw[Symbol.asyncIterator].bind(raw);
    Object.defineProperty(raw, Symbol.asyncIterator, {
      configurable: true,
      value: () => envelopeAligned({ [Symbol.asyncIterator]: chunks })[Symbol.asyncIterator](),
    });
  });
}
