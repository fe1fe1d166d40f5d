import type { Readable } from "node:stream";
import { parse } from "csv-parse";

/**
 * Rows of a CSV file, streamed by csv-parse (RFC 4180: quoted fields, embedded newlines and
 * quotes, a BOM). A row whose quoting or column count is broken is reported with its line and
 * skipped; the rows after it are read on. `columns: true` reads the first row as the header and
 * yields objects; otherwise arrays.
 */
export async function* csvRows(
  input: Readable,
  options: { columns: boolean; delimiter?: string },
): AsyncGenerator<{ line: number; row?: Record<string, string> | string[]; error?: string }> {
  const skipped: Array<{ line: number; error: string }> = [];
  const parser = input.pipe(
    parse({
      bom: true,
      columns: options.columns ? (header: string[]) => header.map((name) => name.trim()) : false,
      delimiter: options.delimiter ?? ",",
      skip_empty_lines: true,
      relax_column_count_less: true,
      info: true,
      skip_records_with_error: true,
      on_skip: (err) => {
        skipped.push({
          line: Number((err as unknown as { lines?: number } | undefined)?.lines ?? 0),
          error: `not a valid CSV row: ${err?.message.replace(/^Invalid Record Length: /, "") ?? "unreadable"}`,
        });
        return undefined;
      },
    }),
  );
  for await (const { record, info } of parser as AsyncIterable<{ record: Record<string, string> | string[]; info: { lines: number } }>) {
    // csv-parse may report a broken row before it hands out the rows above it: keep file order.
    while (skipped.length > 0 && skipped[0]!.line < info.lines) yield skipped.shift()!;
    yield { line: info.lines, row: record };
  }
  yield* skipped.splice(0);
}

/** true, yes, y, 1 (any case) */
export const truthy = (value: string | undefined) => value !== undefined && /^(true|yes|y|1)$/i.test(value.trim());
