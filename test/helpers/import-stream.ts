/**
 * Clients of the bidirectional `userport.migration.v1.MigrationService/ImportUsers` stream over a
 * real socket: a raw `@grpc/grpc-js` client (gRPC over HTTP/2), Connect's gRPC transport, and
 * Connect's own protocol over HTTP/2 in binary and in JSON (the server encodes binary results by
 * hand: src/edge/import-results.ts). Requests and responses are protojson here, so one test fits all.
 */
import { fromBinary, fromJson, type JsonObject, toBinary, toJson } from "@bufbuild/protobuf";
import { type Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  ImportUsersRequestSchema,
  ImportUsersResponseSchema,
  MigrationService,
  type ImportUsersRequest,
} from "../../gen/userport/migration/v1/migration_pb.js";
import { ErrorDetailSchema } from "../../gen/zitadel/message_pb.js";
import { decodeRpcStatus } from "./clients.js";

export const STREAM_TRANSPORTS = ["grpc-js", "connect-grpc-h2", "connect-h2", "connect-json-h2"] as const;
export type StreamTransport = (typeof STREAM_TRANSPORTS)[number];

export interface StreamError {
  code: Code;
  message: string;
  ids: string[];
}

/** An open ImportUsers call: send messages, read responses one at a time. */
export interface ImportCall {
  send(request: JsonObject): void;
  end(): void;
  /** The next response, or undefined once the server ended the stream without error. Throws a StreamError. */
  next(): Promise<JsonObject | undefined>;
  cancel(): void;
}

class Queue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiting: Array<(result: IteratorResult<T>) => void> = [];
  #ended = false;
  push(item: T) {
    const waiter = this.#waiting.shift();
    if (waiter) waiter({ value: item, done: false });
    else this.#items.push(item);
  }
  end() {
    this.#ended = true;
    for (const waiter of this.#waiting.splice(0)) waiter({ value: undefined, done: true });
  }
  #take(): Promise<IteratorResult<T>> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
  // A generator: Connect's client wants an iterator with return() and throw().
  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (let next = await this.#take(); !next.done; next = await this.#take()) yield next.value;
  }
}

export function openImport(url: string, token: string, transport: StreamTransport, headers: Record<string, string> = {}): ImportCall {
  const all = { authorization: `Bearer ${token}`, ...headers };
  if (transport === "grpc-js") {
    const client = new grpc.Client(new URL(url).host, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(all)) metadata.set(key, value);
    const call = client.makeBidiStreamRequest<ImportUsersRequest, JsonObject>(
      `/${MigrationService.typeName}/ImportUsers`,
      (message) => Buffer.from(toBinary(ImportUsersRequestSchema, message)),
      (bytes: Buffer) => toJson(ImportUsersResponseSchema, fromBinary(ImportUsersResponseSchema, bytes)) as JsonObject,
      metadata,
      {},
    );
    const responses = call[Symbol.asyncIterator]() as AsyncIterator<JsonObject>;
    return {
      send: (request) => void call.write(fromJson(ImportUsersRequestSchema, request)),
      end: () => call.end(),
      async next() {
        try {
          const result = await responses.next();
          if (result.done) {
            client.close();
            return undefined;
          }
          return result.value;
        } catch (err) {
          client.close();
          throw grpcJsError(err as grpc.ServiceError);
        }
      },
      cancel: () => {
        call.cancel();
        client.close();
      },
    };
  }
  const base =
    transport === "connect-grpc-h2"
      ? createGrpcTransport({ baseUrl: url })
      : createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: transport === "connect-h2" });
  const requests = new Queue<ImportUsersRequest>();
  const abort = new AbortController();
  const responses = createClient(MigrationService, base).importUsers(requests, { headers: all, signal: abort.signal })[Symbol.asyncIterator]();
  return {
    send: (request) => requests.push(fromJson(ImportUsersRequestSchema, request)),
    end: () => requests.end(),
    async next() {
      try {
        const result = await responses.next();
        return result.done ? undefined : (toJson(ImportUsersResponseSchema, result.value) as JsonObject);
      } catch (err) {
        const error = ConnectError.from(err);
        throw { code: error.code, message: error.rawMessage, ids: error.findDetails(ErrorDetailSchema).map((d) => d.id) } satisfies StreamError;
      }
    },
    cancel: () => abort.abort(),
  };
}

function grpcJsError(err: grpc.ServiceError): StreamError {
  const [bin] = err.metadata?.get("grpc-status-details-bin") ?? [];
  const ids: string[] = [];
  if (bin !== undefined) {
    for (const any of decodeRpcStatus(typeof bin === "string" ? Buffer.from(bin, "base64") : bin).details) {
      if (any.typeUrl.endsWith("zitadel.v1.ErrorDetail")) ids.push(fromBinary(ErrorDetailSchema, any.value).id);
    }
  }
  return { code: err.code as number as Code, message: decodeURIComponent(err.details ?? ""), ids };
}

/** Sends the options and the batches, then reads every response to the end. */
export async function runImport(
  url: string,
  token: string,
  transport: StreamTransport,
  options: JsonObject,
  batches: JsonObject[][],
  headers: Record<string, string> = {},
): Promise<{ job: JsonObject; results: JsonObject[]; responses: JsonObject[]; error?: StreamError }> {
  const call = openImport(url, token, transport, headers);
  call.send({ options });
  for (const records of batches) call.send({ records: { records } });
  call.end();
  const responses: JsonObject[] = [];
  try {
    for (let response = await call.next(); response; response = await call.next()) responses.push(response);
  } catch (err) {
    return {
      job: (responses[0]?.job ?? {}) as JsonObject,
      results: responses.flatMap((r) => (r.results ?? []) as JsonObject[]),
      responses,
      error: err as StreamError,
    };
  }
  return { job: (responses[0]?.job ?? {}) as JsonObject, results: responses.flatMap((r) => (r.results ?? []) as JsonObject[]), responses };
}
