/**
 * Streaming a large JSON document (a realm export, a Firebase export, ZITADEL's ImportData) value
 * by value: stream-json's tokenizer (a maintained streaming JSON parser) reads the text, and only
 * the values at the paths a converter asks for are assembled (stream-json's Assembler), one at a
 * time, so memory holds one user, never the file.
 *
 * The text is handed to the tokenizer a line at a time (chunks are split at newlines, never
 * joined), so every assembled value carries the line it starts on, for the per-record report.
 */
import type { Readable } from "node:stream";
import { none } from "stream-chain/defs.js";
import Assembler from "stream-json/assembler.js";
import parser from "stream-json/core/parser.js";

type Token = { name: string; value?: unknown };
export type JsonPath = ReadonlyArray<string | number>;

export type JsonEvent =
  | { kind: "value"; path: JsonPath; value: unknown; line: number }
  /** The end of a container whose path `ends` selected (e.g. one organisation of an ImportData file). */
  | { kind: "end"; path: JsonPath; line: number }
  /** The text stops being JSON here: the last event; nothing after it can be read. */
  | { kind: "error"; line: number; message: string };

interface Frame {
  array: boolean;
  key: string | number | null;
  index: number;
}

/**
 * Yields every value whose path `collect` selects (its descendants are not walked), and an "end"
 * event when a container whose path `ends` selects is closed. Where the document stops being JSON,
 * the last event is an "error" with its line: nothing after that point can be read.
 */
export async function* jsonValues(
  input: Readable,
  collect: (path: JsonPath) => boolean,
  ends: (path: JsonPath) => boolean = () => false,
): AsyncGenerator<JsonEvent> {
  const tokenizer = parser({ packValues: true, streamValues: false }) as unknown as (chunk: unknown) => AsyncIterable<Token>;
  const stack: Frame[] = [];
  const path: Array<string | number> = [];
  let assembler: Assembler | undefined;
  let assembling: { path: JsonPath; line: number; depth: number } | undefined;
  let line = 1;
  const out: JsonEvent[] = [];

  /** The path of the value that starts now, advancing the parent array's index. */
  const nextPath = (): Array<string | number> => {
    const parent = stack.at(-1);
    if (parent?.array) return [...path, parent.index++];
    return parent ? [...path, parent.key as string] : [];
  };

  const handle = (token: Token) => {
    if (assembler && assembling) {
      assembler.consume(token as never);
      if (token.name === "startObject" || token.name === "startArray") assembling.depth++;
      if (token.name === "endObject" || token.name === "endArray") assembling.depth--;
      if (assembling.depth === 0) {
        out.push({ kind: "value", path: assembling.path, value: assembler.current, line: assembling.line });
        assembler = undefined;
        assembling = undefined;
      }
      return;
    }
    switch (token.name) {
      case "keyValue":
        stack.at(-1)!.key = token.value as string;
        return;
      case "endObject":
      case "endArray": {
        stack.pop();
        const closed = [...path];
        path.pop();
        if (ends(closed)) out.push({ kind: "end", path: closed, line });
        return;
      }
      default: {
        const valuePath = nextPath();
        const container = token.name === "startObject" || token.name === "startArray";
        if (collect(valuePath)) {
          assembler = new Assembler();
          assembler.consume(token as never);
          if (container) assembling = { path: valuePath, line, depth: 1 };
          else out.push({ kind: "value", path: valuePath, value: assembler.current, line });
          if (!container) assembler = undefined;
          return;
        }
        if (container) {
          stack.push({ array: token.name === "startArray", key: null, index: 0 });
          path.length = 0;
          path.push(...valuePath);
        }
      }
    }
  };

  let failure: string | undefined;
  const feed = async (piece: unknown) => {
    try {
      for await (const token of tokenizer(piece)) handle(token);
    } catch (err) {
      failure = `not valid JSON: ${(err as Error).message}`;
    }
  };

  input.setEncoding("utf8");
  let first = true;
  for await (let chunk of input as AsyncIterable<string>) {
    if (first && chunk.startsWith("\uFEFF")) chunk = chunk.slice(1);
    first = false;
    let start = 0;
    for (let nl = chunk.indexOf("\n"); nl >= 0; nl = chunk.indexOf("\n", start)) {
      await feed(chunk.slice(start, nl + 1));
      yield* out.splice(0);
      if (failure !== undefined) return yield { kind: "error", line, message: failure };
      line++;
      start = nl + 1;
    }
    if (start < chunk.length) {
      await feed(chunk.slice(start));
      yield* out.splice(0);
      if (failure !== undefined) return yield { kind: "error", line, message: failure };
    }
  }
  await feed(none);
  yield* out.splice(0);
  if (failure !== undefined) return yield { kind: "error", line, message: failure };
  if (stack.length > 0 || assembling) yield { kind: "error", line, message: "not valid JSON: the document ends before it is complete" };
}

/** A path pattern: strings match keys, "*" any key or index. */
export const matches = (path: JsonPath, pattern: ReadonlyArray<string>) =>
  path.length === pattern.length && pattern.every((part, i) => part === "*" || part === path[i]);
