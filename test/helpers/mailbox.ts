/**
 * A real SMTP server in the test process (the `smtp-server` package) that keeps what it accepts:
 * userport's dispatcher talks to it over a socket, with AUTH, exactly as to a mail relay. It can
 * be told to refuse messages with a temporary 4xx, and be stopped and started again on its port.
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";

export interface ReceivedMail {
  from: string;
  to: string[];
  /** The header block, unfolded and with encoded words decoded where they are UTF-8 Q/B. */
  subject: string;
  /** The text part, quoted-printable decoded. */
  text: string;
  raw: string;
}

export interface Mailbox {
  readonly port: number;
  /** `smtp://user:pass@127.0.0.1:<port>` for USERPORT_SMTP_URL. */
  readonly url: string;
  readonly mails: ReceivedMail[];
  /** Refuse the next `n` messages at DATA with `451 4.3.0` (a temporary failure). */
  refuseNext(n: number): void;
  /** How many messages were refused so far. */
  readonly refused: number;
  /** Waits until a mail to `address` arrived (polling the list; vitest's timeout bounds it). */
  waitFor(address: string): Promise<ReceivedMail>;
  /** Mails received for `address`. */
  to(address: string): ReceivedMail[];
  stop(): Promise<void>;
  /** Listens again on the same port after `stop`. */
  start(): Promise<void>;
}

const USER = "userport";
const PASS = "smtp-secret";

function decodeQuotedPrintable(text: string): string {
  const bytes = text.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/gi, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(bytes, "latin1").toString("utf8");
}

function decodeWords(header: string): string {
  return header.replace(/=\?utf-8\?([QB])\?([^?]*)\?=\s*/gi, (_m, enc: string, data: string) =>
    enc.toUpperCase() === "B" ? Buffer.from(data, "base64").toString("utf8") : decodeQuotedPrintable(data.replace(/_/g, " ")),
  );
}

/** Parses just enough MIME to read what nodemailer writes: the subject and the text/plain part. */
function parse(raw: string, from: string, to: string[]): ReceivedMail {
  const [head = ""] = raw.split(/\r?\n\r?\n/, 1);
  const unfolded = head.replace(/\r?\n[ \t]+/g, " ");
  const subject = decodeWords(/^subject: (.*)$/im.exec(unfolded)?.[1] ?? "");
  const textPart = /content-type: text\/plain[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*?\r?\n([\s\S]*?)(?:\r?\n--|$)/i.exec(raw);
  const encoding = textPart && /content-transfer-encoding: base64/i.test(raw.slice(Math.max(0, textPart.index - 200), textPart.index + 300)) ? "base64" : "qp";
  const body = textPart?.[1] ?? "";
  const text = encoding === "base64" ? Buffer.from(body, "base64").toString("utf8") : decodeQuotedPrintable(body);
  return { from, to, subject, text, raw };
}

export async function startMailbox(): Promise<Mailbox> {
  const mails: ReceivedMail[] = [];
  let refuse = 0;
  let refused = 0;
  let port = 0;
  let server: SMTPServer | undefined;

  const listen = async () => {
    server = new SMTPServer({
      // No TLS in tests: nodemailer would otherwise upgrade with STARTTLS; AUTH is still checked.
      disabledCommands: ["STARTTLS"],
      allowInsecureAuth: true,
      logger: false,
      onAuth(auth, _session, callback) {
        if (auth.username === USER && auth.password === PASS) callback(null, { user: USER });
        else callback(new Error("Invalid username or password"));
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("end", () => {
          if (refuse > 0) {
            refuse--;
            refused++;
            callback(Object.assign(new Error("Try again later"), { responseCode: 451 }));
            return;
          }
          const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : "";
          mails.push(
            parse(
              Buffer.concat(chunks).toString("utf8"),
              from,
              session.envelope.rcptTo.map((r) => r.address),
            ),
          );
          callback();
        });
      },
    });
    const net = server.listen(port, "127.0.0.1");
    await once(net, "listening");
    port = (net.address() as AddressInfo).port;
  };
  await listen();

  const to = (address: string) => mails.filter((mail) => mail.to.includes(address));
  return {
    get port() {
      return port;
    },
    get url() {
      return `smtp://${USER}:${PASS}@127.0.0.1:${port}`;
    },
    mails,
    refuseNext(n) {
      refuse = n;
    },
    get refused() {
      return refused;
    },
    to,
    async waitFor(address) {
      for (;;) {
        const found = to(address)[0];
        if (found) return found;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async stop() {
      const current = server;
      server = undefined;
      if (current) await new Promise<void>((resolve) => current.close(() => resolve()));
    },
    start: listen,
  };
}

/** The code in a mail ("Code: XXXXXX"), as a user would copy it. */
export function codeIn(mail: ReceivedMail): string {
  const match = /Code: ([A-Za-z0-9]+)/.exec(mail.text);
  if (!match) throw new Error(`no code in mail: ${mail.text}`);
  return match[1]!;
}

/** The link in a mail's text. */
export function linkIn(mail: ReceivedMail): URL {
  const match = /(https?:\/\/\S+)/.exec(mail.text);
  if (!match) throw new Error(`no link in mail: ${mail.text}`);
  return new URL(match[1]!);
}
