import http from "node:http";
import http2 from "node:http2";
import net from "node:net";

/** The first bytes an HTTP/2 client sends on a cleartext connection (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

/**
 * A fastify `serverFactory` that serves HTTP/1.1 and HTTP/2 on one port.
 *
 * With TLS, ALPN picks the protocol. Without it, each new connection is sniffed: one that starts
 * with the HTTP/2 client preface (gRPC, Connect over h2c) goes to an HTTP/2 server, anything else
 * (browsers, curl, gRPC-Web) to an HTTP/1.1 server. Closing the returned server stops accepting,
 * lets in-flight requests finish and then closes idle connections and HTTP/2 sessions.
 */
export function onePortServerFactory(tls?: TlsFiles) {
  // Typed as fastify's default HTTP/1 factory: fastify handles HTTP/2 compat requests alike.
  return (handler: http.RequestListener): http.Server => {
    const h2Handler = handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
    if (tls) return http2.createSecureServer({ ...tls, allowHTTP1: true }, h2Handler) as unknown as http.Server;
    let closing = false;
    const h1 = http.createServer((req, res) => {
      if (closing) res.setHeader("connection", "close");
      handler(req, res);
    });
    const h2 = http2.createServer(h2Handler);
    const sessions = new Set<http2.Http2Session>();
    h2.on("session", (session) => {
      sessions.add(session);
      session.once("close", () => sessions.delete(session));
    });

    const server = net.createServer((socket) => routeConnection(socket, h1, h2));
    const close = server.close.bind(server);
    server.close = (callback?: (err?: Error) => void) => {
      closing = true;
      // Keep-alive connections whose last request was still running at close become idle later.
      const sweep = setInterval(() => h1.closeIdleConnections(), 50);
      close((err) => {
        clearInterval(sweep);
        callback?.(err);
      });
      h1.closeIdleConnections();
      for (const session of sessions) session.close();
      return server;
    };
    return server as unknown as http.Server;
  };
}

/** Reads just enough of the first bytes to tell HTTP/2 from HTTP/1.1, then hands the socket over. */
function routeConnection(socket: net.Socket, h1: http.Server, h2: http2.Http2Server): void {
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
