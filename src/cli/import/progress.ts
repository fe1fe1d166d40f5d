/**
 * Progress of `userport import` on standard error: a live bar (cli-progress) on a terminal, a
 * plain line every few seconds otherwise (a pipe, CI logs). The bar's fraction is records of the
 * total when the total is known (native NDJSON is counted before the import), else bytes of the
 * file read; records/s and the ETA come from the same fraction.
 */
import cliProgress from "cli-progress";

export interface Counts {
  done: number;
  created: number;
  updated: number;
  skipped: number;
  failed: number;
}

export interface ProgressSource {
  counts(): Counts;
  /** Records in the file, when known. */
  totalRecords?: number;
  /** Bytes of the file read so far and its size, when it is a file. */
  bytes?: () => { read: number; size: number };
}

export interface Progress {
  stop(): void;
}

const number = (n: number) => Math.round(n).toLocaleString("en");

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** The fraction done (0–1), or undefined when neither the records nor the bytes are known. */
function fraction(source: ProgressSource): number | undefined {
  const { done } = source.counts();
  if (source.totalRecords) return Math.min(1, done / source.totalRecords);
  const bytes = source.bytes?.();
  if (bytes && bytes.size > 0) return Math.min(1, bytes.read / bytes.size);
  return undefined;
}

export function startProgress(source: ProgressSource, options: { tty: boolean; everySeconds: number; stream: NodeJS.WriteStream }): Progress {
  const started = Date.now();
  const rate = () => source.counts().done / Math.max(0.001, (Date.now() - started) / 1000);
  const eta = () => {
    const f = fraction(source);
    if (f === undefined || f <= 0) return Number.NaN;
    const elapsed = (Date.now() - started) / 1000;
    return (elapsed / f) * (1 - f);
  };
  const of = () => (source.totalRecords ? `/${number(source.totalRecords)}` : "");

  if (options.tty) {
    const bar = new cliProgress.SingleBar(
      {
        stream: options.stream,
        format: "{bar} {percent} | {records} records | {rate}/s | created {created} updated {updated} skipped {skipped} failed {failed} | ETA {etaText}",
        hideCursor: true,
        clearOnComplete: false,
        fps: 5,
        barsize: 24,
      },
      cliProgress.Presets.shades_classic,
    );
    const payload = () => {
      const c = source.counts();
      const f = fraction(source);
      return {
        percent: f === undefined ? "  –" : `${Math.floor(f * 100)}%`.padStart(4),
        records: `${number(c.done)}${of()}`,
        rate: number(rate()),
        created: number(c.created),
        updated: number(c.updated),
        skipped: number(c.skipped),
        failed: number(c.failed),
        etaText: formatSeconds(eta()),
      };
    };
    bar.start(1000, 0, payload());
    const timer = setInterval(() => bar.update(Math.round((fraction(source) ?? 0) * 1000), payload()), 200);
    return {
      stop() {
        clearInterval(timer);
        bar.update(Math.round((fraction(source) ?? 0) * 1000), payload());
        bar.stop();
      },
    };
  }

  const line = () => {
    const c = source.counts();
    const f = fraction(source);
    const percent = f === undefined ? "" : ` (${Math.floor(f * 100)}%)`;
    options.stream.write(
      `import: ${number(c.done)}${of()} records${percent}, ${number(rate())}/s, created ${number(c.created)}, updated ${number(c.updated)}, skipped ${number(c.skipped)}, failed ${number(c.failed)}, ETA ${formatSeconds(eta())}\n`,
    );
  };
  const timer = setInterval(line, Math.max(0.1, options.everySeconds) * 1000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
    },
  };
}
