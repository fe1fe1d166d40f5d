import { createInterface } from "node:readline";
import type { Readable } from "node:stream";

/**
 * The lines of a text stream with their 1-based numbers, read with node:readline (which buffers
 * one line at a time, never the file). CRLF and LF both end a line; a UTF-8 byte-order mark at
 * the start is dropped.
 */
export async function* numberedLines(input: Readable): AsyncGenerator<{ line: number; text: string }> {
  input.setEncoding("utf8");
  const reader = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  for await (const text of reader) {
    line++;
    yield { line, text: line === 1 && text.startsWith("\uFEFF") ? text.slice(1) : text };
  }
}

/**
 * NDJSON (one JSON value per line; blank lines are skipped): each line's value, or the parse
 * error of that line alone. node:readline and JSON.parse are all it takes, so no library.
 */
export async function* ndjson(input: Readable): AsyncGenerator<{ line: number; value?: unknown; error?: string }> {
  for await (const { line, text } of numberedLines(input)) {
    if (text.trim() === "") continue;
    try {
      yield { line, value: JSON.parse(text) };
    } catch (err) {
      yield { line, error: `not valid JSON: ${(err as Error).message}` };
    }
  }
}
