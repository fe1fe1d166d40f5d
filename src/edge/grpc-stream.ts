import http2 from "node:http2";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import * as grpc from "@connectrpc/connect/protocol-grpc";
import type { RequestRecord, StreamCallLog } from "./access-log.js";
import { FastCall, type GrpcFastPath } from "./grpc-fast-path.js";
import { reencode } from "./grpc-message.js";
import type { StreamTaker } from "./one-port.js";

export interface GrpcStreamsOptions {
  /** The fast path of each unary method, by request path ("/package.Service/Method"). */
  fastPaths: ReadonlyMap<string, GrpcFastPath>;
  /** The access log and metrics of calls served here (src/edge/access-log.ts). */
  log: StreamCallLog;
  /** The context values a call starts with, as the fastify route's (the client's address, the request's record). */
  contextValues(clientAddress: string | undefined, record: RequestRecord): ContextValues;
  /** False while fastify must see every request itself (its own request lines at debug level). */
  enabled(): boolean;
}

/** The longest delay setTimeout takes (a longer one fires at once, with a warning). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Serves unary binary gRPC calls straight off node:http2's streams, before node's compatibility
 * layer and fastify make request and response objects of them (src/edge/one-port.ts hands every
 * HTTP/2 stream here first).
 *
 * Why it exists: for a unary call the compatibility layer (Http2ServerRequest/Response and their
 * proxied socket), fastify's routing and hooks, and Connect's node adapter (a URL, a Headers
 * object, an AbortController and its DOMException per call) cost more than the call itself in the
 * profiles (BENCHMARKS.md, "Import throughput"): a gRPC import cost twice the server CPU of the
 * same import over REST.
 *
 * What it takes: a POST to a path with a fast path (src/edge/grpc-fast-path.ts), content type
 * `application/grpc` or `application/grpc+proto`, no compression or `identity`, a `grpc-timeout`
 * that parses, no `Origin` (CORS is fastify's), and not at debug logging (fastify's own request
 * lines). Everything else goes to fastify untouched, before a byte is read.
 *
 * What it keeps identical to the fastify route (src/edge/rpc-routes.ts and the hooks of
 * src/edge/access-log.ts, src/edge/grpc-message.ts): the request id (the client's
 * `x-request-id` or a new one, returned in `x-request-id` and seen by the implementation), the
 * access log line and the metrics, the `grpc-message` encoding, the client's address in the
 * context values, the implementation run through Connect (its interceptors: auth, deadlines,
 * NUL check), the response's headers, message and trailers. The response goes out as the
 * compatibility layer sends it: a HEADERS frame, the message in DATA, the trailers in a final
 * HEADERS frame.
 *
 * What it leaves to fastify and Connect, by handing the stream over with the bytes it read
 * replayed in front of the rest of the body: a body that is not exactly one uncompressed envelope
 * within the size limit, a message that does not parse, a body larger than the limit, and a
 * body that has not ended when the call's deadline passes. Connect then answers it exactly as
 * before (its errors, src/edge/undecodable.ts). A client that resets the stream while its
 * message is read is answered by nobody, and logged as CANCELLED.
 */
export function createGrpcStreams(options: GrpcStreamsOptions): StreamTaker {
  const { fastPaths } = options;
  const startTurns = createTurns(CALLS_PER_TURN);
  return (stream, headers, handOver) => {
    if (headers[":method"] !== "POST") return false;
    const path = headers[":path"];
    const fast = path === undefined ? undefined : fastPaths.get(path);
    if (fast === undefined || path === undefined) return false;
    const contentType = headers["content-type"];
    if (contentType !== grpc.contentTypeProto && contentType !== "application/grpc") return false;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    if (headers.origin !== undefined) return false;
    const timeoutHeader = headers["grpc-timeout"];
    if (timeoutHeader !== undefined && typeof timeoutHeader !== "string") return false;
    const timeoutMs = fast.timeout(timeoutHeader);
    if (timeoutMs === null) return false;
    if (!options.enabled()) return false;
    serve(stream, headers, path, fast, timeoutMs, handOver, startTurns, options);
    return true;
  };
}

/**
 * How many calls start in one turn of the event loop; the rest of a burst waits for the next turns.
 *
 * Why: a client multiplexing many calls on one HTTP/2 session (grpc-js with 50 in flight) sends
 * them in a few TCP segments, and node parses a segment's frames in one go. Started all at once,
 * the whole burst ran before the event loop came back to I/O: the writer thread's commits done
 * meanwhile, and the answers they allow, waited for the burst's last call, then went out together,
 * and the client answered with the next burst. Server and client took turns, each idle while the
 * other worked (server busy 0.6 of the time in the gRPC import phase of bench/import-throughput.ts).
 * Started a few per turn, the first calls' answers go out while later ones run, and the client's
 * next calls arrive while the server still works. gRPC import / REST import, in alternating runs:
 * 0.45-0.47 -> 0.64-0.72 at load 2-3, with 2 to 16 calls a turn alike; 0.53-0.55 -> 0.56-0.60 on
 * a quiet machine (2,805-3,014 -> 3,129-3,157 calls/s; BENCHMARKS.md, "Import throughput").
 */
const CALLS_PER_TURN = 8;

/** Starts up to `perTurn` calls in a turn of the event loop at once, and the rest `perTurn` a turn after it. */
function createTurns(perTurn: number): (start: () => void) => void {
  let startedThisTurn = 0;
  let nextTurn = false;
  const waiting: (() => void)[] = [];
  const turn = () => {
    const starting = waiting.splice(0, perTurn);
    startedThisTurn = starting.length;
    nextTurn = false;
    // Immediates set while immediates run wait for the next turn, after its I/O.
    if (starting.length > 0) scheduleTurn();
    for (const start of starting) start();
  };
  const scheduleTurn = () => {
    if (nextTurn) return;
    nextTurn = true;
    setImmediate(turn);
  };
  return (start) => {
    scheduleTurn();
    if (startedThisTurn < perTurn) {
      startedThisTurn++;
      start();
    } else waiting.push(start);
  };
}

function serve(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  path: string,
  fast: GrpcFastPath,
  timeoutMs: number | undefined,
  handOver: Parameters<StreamTaker>[2],
  startTurns: (start: () => void) => void,
  options: GrpcStreamsOptions,
): void {
  const arrived = Date.now();
  const chunks: Buffer[] = [];
  let size = 0;
  // The read must not outlive the caller's deadline: Connect's handler then answers
  // DEADLINE_EXCEEDED as it always did. Beyond setTimeout's range the read has no deadline.
  const timer = timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS ? setTimeout(() => unfinished(), timeoutMs) : undefined;
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    size += chunk.byteLength;
    // More than one envelope at the size limit: Connect says which limit it broke.
    if (size > fast.readMaxBytes + 5) unfinished();
  };
  const onEnd = () => {
    detach();
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
    const message = fast.decode(body);
    if (message === undefined) handOver(replayed(chunks));
    // The deadline counts from the request's arrival, as in Connect's handler (its context is made before the read).
    else
      startTurns(() => {
        // The client went away while its call waited for its turn: nobody is left to answer.
        if (stream.closed || stream.destroyed) {
          options.log.start(headers, path).finish(undefined, true);
          return;
        }
        void answer(stream, headers, path, fast, message, timeoutMs === undefined ? undefined : timeoutMs - (Date.now() - arrived), options);
      });
  };
  const onClose = () => {
    detach();
    // The client went away while its message was read: nobody is left to answer.
    options.log.start(headers, path).finish(undefined, true);
  };
  const detach = () => {
    clearTimeout(timer);
    stream.off("data", onData);
    stream.off("end", onEnd);
    stream.off("close", onClose);
  };
  /** Connect's handler reads the rest, after the bytes read so far. */
  const unfinished = () => {
    detach();
    handOver(readingOn(stream, chunks));
  };
  stream.on("data", onData);
  stream.once("end", onEnd);
  stream.once("close", onClose);
}

async function answer(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  path: string,
  fast: GrpcFastPath,
  message: unknown,
  timeoutMs: number | undefined,
  options: GrpcStreamsOptions,
): Promise<void> {
  const log = options.log.start(headers, path);
  const call = new FastCall({
    requestMethod: "POST",
    requestHeaders: headers,
    url: () => urlOf(stream, headers, path),
    timeoutMs,
    values: options.contextValues(stream.session?.socket?.remoteAddress, log.record),
  });
  let responded = false;
  let sent: string | undefined;
  // A client that resets the stream while the implementation runs cancels the call, as
  // Connect's node adapter does (the reset's code as a ConnectError).
  const onClose = () => {
    if (!call.aborted) call.abort(resetError(stream.rstCode));
    log.finish(sent, !responded);
  };
  stream.once("close", onClose);
  try {
    const { header, body, trailer } = await fast.answer(message, call);
    if (stream.closed || stream.destroyed) return;
    reencode(header);
    reencode(trailer);
    header["x-request-id"] = log.id;
    header[":status"] = "200";
    const status = trailer["grpc-status"];
    sent = typeof status === "string" ? status : undefined;
    stream.respond(header, { waitForTrailers: true });
    responded = true;
    stream.once("wantTrailers", () => stream.sendTrailers(trailer));
    stream.end(body);
  } catch {
    // Writing failed half-way (the stream broke): never leave the client waiting for the rest.
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  } finally {
    call.done();
  }
}

async function* replayed(chunks: Buffer[]): AsyncGenerator<Uint8Array> {
  yield* chunks;
}

/** How many bytes read ahead of the handler's reads pause the stream (HTTP/2 flow control then holds the client). */
const READ_AHEAD_BYTES = 1 << 20;

/**
 * The body of a stream handed over before it ended: the chunks read so far, then the rest as it
 * arrives. This stays the stream's only reader (node's compatibility layer does not resume a
 * stream it did not pause, and data read off a stream nobody listens to is lost); it pauses the
 * stream while the handler lags behind, and fails like the request's own body when the stream
 * closes before it ended.
 */
function readingOn(stream: http2.ServerHttp2Stream, chunks: Buffer[]): AsyncIterable<Uint8Array> {
  const queue = [...chunks];
  let queued = queue.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  let ended = false;
  let failed: Error | undefined;
  let wake: (() => void) | undefined;
  const onData = (chunk: Buffer) => {
    queue.push(chunk);
    queued += chunk.byteLength;
    if (queued > READ_AHEAD_BYTES) stream.pause();
    wake?.();
  };
  const onEnd = () => {
    ended = true;
    wake?.();
  };
  const onClose = () => {
    if (!ended) failed = Object.assign(new Error("the stream closed before the request ended"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
    wake?.();
  };
  stream.on("data", onData);
  stream.once("end", onEnd);
  stream.once("close", onClose);
  return {
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          const chunk = queue.shift();
          if (chunk !== undefined) {
            queued -= chunk.byteLength;
            if (queued <= READ_AHEAD_BYTES && stream.isPaused()) stream.resume();
            yield chunk;
          } else if (ended) return;
          else if (failed) throw failed;
          else await new Promise<void>((resolve) => (wake = resolve));
        }
      } finally {
        stream.off("data", onData);
        stream.off("end", onEnd);
        stream.off("close", onClose);
      }
    },
  };
}

/** The origin of the last authority seen: a client sends the same one on every call. */
let lastOrigin = { scheme: "", authority: "", origin: "" };

/**
 * The URL received, as Connect's node adapter builds it (`new URL(path, scheme://authority)`).
 * The path is a method's, which URL parsing leaves as it is; the origin is parsed once per
 * authority.
 */
function urlOf(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, path: string): string {
  const scheme = (stream.session?.socket as { encrypted?: boolean } | undefined)?.encrypted === true ? "https" : "http";
  const authority = headers[":authority"] ?? headers.host ?? "";
  if (lastOrigin.scheme !== scheme || lastOrigin.authority !== authority) {
    lastOrigin = { scheme, authority, origin: new URL(`${scheme}://${authority}`).origin };
  }
  return lastOrigin.origin + path;
}

/** The gRPC code of a reset, as Connect's node adapter maps it (its connectErrorFromH2ResetCode is not exported). */
const RESET_CODES: Record<number, Code> = {
  1: Code.Internal, // PROTOCOL_ERROR
  2: Code.Internal, // INTERNAL_ERROR
  3: Code.Internal, // FLOW_CONTROL_ERROR
  4: Code.Internal, // SETTINGS_TIMEOUT
  6: Code.Internal, // FRAME_SIZE_ERROR
  7: Code.Unavailable, // REFUSED_STREAM
  8: Code.Canceled, // CANCEL
  9: Code.Internal, // COMPRESSION_ERROR
  10: Code.Internal, // CONNECT_ERROR
  11: Code.ResourceExhausted, // ENHANCE_YOUR_CALM
  12: Code.PermissionDenied, // INADEQUATE_SECURITY
  13: Code.PermissionDenied, // HTTP_1_1_REQUIRED
};

/** Why a call whose stream closed before it was answered was cancelled. */
export function resetError(rstCode: number | undefined): ConnectError {
  const code = rstCode === undefined ? undefined : RESET_CODES[rstCode];
  if (code === undefined) return new ConnectError("the client went away", Code.Canceled);
  return new ConnectError(`http/2 stream closed with error code 0x${rstCode!.toString(16)}`, code);
}
