import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";

/** The first bytes an HTTP/2 client sends on a cleartext connection (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

/**
 * Takes an HTTP/2 stream before node's compatibility layer makes a request and a response of it
 * (src/edge/grpc-stream.ts). Returns false to leave the stream to fastify; after returning true,
 * it may still hand the stream over with `handOver`, once, with the request's body (`replay`:
 * the bytes it already read, then the rest) if it started reading it; fastify then serves it as
 * if it had been its from the start.
 */
export type StreamTaker = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, handOver: (replay?: Replay) => void) => boolean;

/** The body of a request whose stream was read before it was handed over. */
export type Replay = AsyncIterable<Uint8Array>;

/** Where the composition root puts the stream taker once the routes it serves are known. */
export interface StreamSlot {
  take?: StreamTaker;
}

/**
 * HTTP/2 flow-control windows: how much a client may send on one stream, and on the whole
 * connection, before the server has read it. HTTP/2's default, 64 KiB for both, let an
 * ImportUsers stream carry a quarter of a thousand-record message before the client had to wait
 * for the server's event loop to read and acknowledge it: the server sat idle between messages
 * while the client waited. With 1 MiB a client has its next few messages on their way while one is
 * imported (a dry run of 300,000 users: 33,000 → 41,000 users/s; BENCHMARKS.md, "Bulk import"). The
 * server still reads a stream no faster than it imports (src/services/migration-service.ts), so
 * what a client can make it hold stays bounded: a window per stream, two per connection, well
 * under node's 10 MB `maxSessionMemory`.
 */
const STREAM_WINDOW_BYTES = 1024 * 1024;
const SESSION_WINDOW_BYTES = 2 * 1024 * 1024;

/**
 * A fastify `serverFactory` that serves HTTP/1.1 and HTTP/2 on one port.
 *
 * Each connection is handed to an HTTP/1.1 or an HTTP/2 server: with TLS by what ALPN
 * negotiated, without TLS by sniffing the first bytes for the HTTP/2 client preface (gRPC and
 * Connect over h2c send it; browsers, curl and gRPC-Web over HTTP/1.1 do not). Closing the
 * returned server stops accepting, lets in-flight requests finish, then closes idle HTTP/1.1
 * connections and HTTP/2 sessions. Each HTTP/2 stream is offered to `streams.take` first
 * (unary gRPC served without fastify, src/edge/grpc-stream.ts); the rest reach fastify through
 * node's compatibility layer as before.
 */
export function onePortServerFactory(tlsFiles?: TlsFiles, streams: StreamSlot = {}) {
  // Typed as fastify's default HTTP/1 factory: fastify handles HTTP/2 compat requests alike.
  return (handler: http.RequestListener): http.Server => {
    let closing = false;
    const h1 = http.createServer((req, res) => {
      if (closing) res.setHeader("connection", "close");
      handler(req, res);
    });
    // h1 never listens itself; "listening" starts the connection tracking closeIdleConnections needs.
    h1.emit("listening");
    const replays = new WeakMap<http2.ServerHttp2Stream, Replay>();
    const h2 = http2.createServer({ settings: { initialWindowSize: STREAM_WINDOW_BYTES } }, (req, res) => {
      const replay = replays.get(req.stream);
      if (replay) replayBody(req, replay);
      (handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void)(req, res);
    });
    // node's compatibility layer makes its request and response in a 'stream' listener of its
    // own (added with the 'request' listener): taken out here, so that the stream taker sees each
    // stream first and the compatibility layer only the streams it leaves.
    const [compat, ...others] = h2.listeners("stream") as Array<
      (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, raw: string[]) => void
    >;
    // Fail at start, not on the first request, should a Node version set its layer up otherwise.
    if (compat === undefined || others.length > 0) throw new Error("node:http2's compatibility layer has not exactly one 'stream' listener");
    h2.removeListener("stream", compat);
    h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, raw: string[]) => {
      const handOver = (replay?: Replay) => {
        if (replay) replays.set(stream, replay);
        compat(stream, headers, flags, raw);
      };
      // While closing, fastify answers new requests itself (503, its return503OnClosing).
      if (closing || !streams.take?.(stream, headers, handOver)) compat(stream, headers, flags, raw);
    });
    const sessions = new Set<http2.Http2Session>();
    h2.on("stream", resetWhenAnswered);
    h2.on("session", (session) => {
      session.setLocalWindowSize(SESSION_WINDOW_BYTES);
      sessions.add(session);
      session.once("close", () => sessions.delete(session));
    });

    // Nagle's algorithm off, as http.createServer has it by default (its own listener is not used here).
    const server = tlsFiles
      ? tls.createServer({ ...tlsFiles, noDelay: true, ALPNProtocols: ["h2", "http/1.1"] }, (socket) =>
          (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket),
        )
      : net.createServer({ noDelay: true }, (socket) => routeCleartext(socket, h1, h2));
    const close = server.close.bind(server);
    server.close = (callback?: (err?: Error) => void) => {
      closing = true;
      // Keep-alive connections whose last request was still running at close become idle later.
      const sweep = setInterval(() => h1.closeIdleConnections(), 50);
      close((err) => {
        clearInterval(sweep);
        h1.close(() => undefined); // stops h1's connection-tracking timer
        callback?.(err);
      });
      h1.closeIdleConnections();
      for (const session of sessions) session.close();
      return server;
    };
    return server as unknown as http.Server;
  };
}

/**
 * RFC 9113 §8.1: once the response is complete, a request the client is still sending is reset
 * with NO_ERROR. Without it, a client that goes on sending after an early answer (an error
 * status, a refused upload), or whose upload is stalled by flow control because nobody reads it
 * any more, keeps the stream and so its session open, and a graceful close of the server waits
 * for ever. The reset waits until the response's last frame (END_STREAM, with any trailers)
 * was sent, so the client has the whole answer first.
 *
 * A stream closed with request bytes nobody read (a body over the size limit, refused before it
 * was read) is never destroyed by node, and its session, holding them, stops reading its socket,
 * so it does not even see its client go: once the response is complete, it is destroyed.
 * Whoever closed it: the reset here, or the client's own.
 */
function resetWhenAnswered(stream: http2.ServerHttp2Stream): void {
  stream.once("finish", () => {
    let tries = 0;
    const check = () => {
      if (stream.destroyed || stream.readableEnded) return; // the request was read whole: the stream closes by itself
      if (!stream.closed) {
        const state = stream.state;
        // Not before the response's last frame (END_STREAM, with any trailers) went out.
        if (!state.localClose && ++tries <= 200) {
          setTimeout(check, 5);
          return;
        }
        if (!state.remoteClose) stream.close(http2.constants.NGHTTP2_NO_ERROR);
      }
      setImmediate(() => stream.destroy());
    };
    setImmediate(check);
  });
}

/**
 * A request whose stream was read before the compatibility layer saw it: its body is the replay.
 * Whoever reads the request's body (src/edge/envelope-chunks.ts, src/edge/rpc-routes.ts) reads it
 * by async iteration.
 */
function replayBody(req: http2.Http2ServerRequest, replay: Replay): void {
  Object.defineProperty(req, Symbol.asyncIterator, { configurable: true, value: () => replay[Symbol.asyncIterator]() });
}

/** Reads just enough of the first bytes to tell HTTP/2 from HTTP/1.1, then hands the socket over. */
function routeCleartext(socket: net.Socket, h1: http.Server, h2: http2.Http2Server): void {
  let seen = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    seen = Buffer.concat([seen, chunk]);
    const compared = Math.min(seen.length, H2_PREFACE.length);
    const isH2 = seen.subarray(0, compared).equals(H2_PREFACE.subarray(0, compared));
    if (isH2 && seen.length < H2_PREFACE.length) return; // could still be either: wait for more
    socket.off("data", onData);
    socket.pause();
    socket.unshift(seen);
    if (isH2) {
      // The HTTP/2 session reads bytes already buffered on the socket itself (on the next tick);
      // resuming here would let them flow past it.
      h2.emit("connection", socket);
    } else {
      h1.emit("connection", socket);
      socket.resume();
    }
  };
  socket.on("data", onData);
  socket.on("error", () => socket.destroy());
}
