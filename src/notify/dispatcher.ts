import nodemailer from "nodemailer";
import type { SecretBox } from "../domain/secrets.js";
import type { ClaimedMessage, OutboxStore } from "../domain/ports.js";

/** Where the dispatcher reports; pino's logger fits. Lines never carry a message body or code. */
export interface DispatchLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** Sends one mail; resolves once the server accepted it. */
export type MailSender = (mail: { to: string; subject: string; text: string; html?: string }) => Promise<void>;

export interface DispatcherOptions {
  store: OutboxStore;
  secretBox: SecretBox;
  send: MailSender;
  log: DispatchLog;
  now: () => number;
  /** How often to look for due messages when the last look found none. */
  pollMs: number;
  /** First retry delay; each further failure doubles it, up to `retryMaxMs`. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** How long a claim holds: longer than one delivery may take, so only a crashed sender loses it. */
  leaseMs: number;
  batchSize: number;
}

export interface Dispatcher {
  /** Looks for due messages now instead of at the next poll. */
  wake(): void;
  /** Stops polling and waits for the delivery under way to be recorded. */
  stop(): Promise<void>;
}

/** The delay before attempt `failures + 1`: base · 2^(failures − 1), capped. */
export function retryDelay(failures: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 30));
}

/**
 * A nodemailer SMTP sender for `smtp://user:pass@host:port` (or `smtps://`). Each message gets
 * its own connection: mails are rare, and a pool would hold a broken connection across an
 * outage. Timeouts stay well inside the dispatcher's claim lease.
 */
export function smtpSender(url: string, from: string): { send: MailSender; close(): void } {
  const transport = nodemailer.createTransport({
    url,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  } as Parameters<typeof nodemailer.createTransport>[0]);
  return {
    async send(mail) {
      await transport.sendMail({ from, ...mail });
    },
    close: () => transport.close(),
  };
}

/**
 * What is recorded of a failed attempt: nodemailer's error class, the SMTP reply code and the
 * command it answered (e.g. "EMESSAGE 451 DATA"). Never the error text, which may quote what
 * was sent.
 */
export function describeFailure(err: unknown): string {
  const e = (err ?? {}) as { code?: unknown; responseCode?: unknown; command?: unknown };
  const parts = [typeof e.code === "string" ? e.code : "ERROR"];
  if (typeof e.responseCode === "number") parts.push(String(e.responseCode));
  if (typeof e.command === "string") parts.push(e.command.split(" ")[0]!.slice(0, 16));
  return parts.join(" ");
}

/**
 * Delivers the outbox at least once: claims due messages, sends each, and marks it sent only
 * after the SMTP server accepted it. A failure schedules the next attempt with exponential
 * backoff; all of it lives in the outbox table, so a restart resumes where the last run stopped
 * (a crash between acceptance and marking sends that message again: at-least-once).
 */
export function startDispatcher(options: DispatcherOptions): Dispatcher {
  const { store, log } = options;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  async function deliver(message: ClaimedMessage): Promise<void> {
    let body: { text: string; html?: string };
    try {
      body = JSON.parse(options.secretBox.open(message.sealedBody)) as { text: string; html?: string };
    } catch {
      // Sealed with another master key: it can never be sent, so it is parked for good.
      log.error({ messageId: message.id }, "outbox message cannot be opened with this master key");
      await store.markFailed(message, { nextAttemptAt: Number.MAX_SAFE_INTEGER, error: "UNREADABLE" });
      return;
    }
    try {
      await options.send({ to: message.recipient, subject: message.subject, ...body });
    } catch (err) {
      const failures = message.attempts + 1;
      const error = describeFailure(err);
      const nextAttemptAt = options.now() + retryDelay(failures, options.retryBaseMs, options.retryMaxMs);
      log.warn({ messageId: message.id, kind: message.kind, attempts: failures, error }, "mail delivery failed; will retry");
      await store.markFailed(message, { nextAttemptAt, error });
      return;
    }
    await store.markSent(message, options.now());
    log.info({ messageId: message.id, kind: message.kind }, "mail delivered");
  }

  async function round(): Promise<void> {
    do {
      again = false;
      const claimed = await store.claimDue(options.now(), options.batchSize, options.leaseMs);
      for (const [i, message] of claimed.entries()) {
        if (stopped) {
          // Shutting down: what was claimed and not tried goes back at once, not after the lease.
          for (const rest of claimed.slice(i)) await store.release(rest);
          return;
        }
        await deliver(message);
      }
      if (claimed.length === options.batchSize) again = true; // more may be due
    } while (again && !stopped);
  }

  function schedule(delay: number) {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(tick, delay);
  }

  function tick() {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = round()
      .catch((err: unknown) => log.error({ err }, "outbox dispatch failed"))
      .finally(() => {
        running = undefined;
        schedule(again ? 0 : options.pollMs);
      });
  }

  schedule(0);
  return {
    wake() {
      if (running) again = true;
      else schedule(0);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
