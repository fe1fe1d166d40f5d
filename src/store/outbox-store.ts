import { randomBytes } from "node:crypto";
import { type Kysely, sql } from "kysely";
import type { ClaimedMessage, OutboxMessage, OutboxStore } from "../domain/ports.js";
import type { Db } from "./db.js";
import { type Prepared, param, prepare, type WriteStatement } from "./prepared.js";
import type { Database, OutboxTable } from "./schema.js";

/** Clears a claim; literals, since prepared statements bind only named parameters. */
const UNCLAIMED = { claim_token: sql<null>`NULL`, claimed_until: sql<number>`0` };

const inserts = new WeakMap<Kysely<Database>, Prepared<Record<string, unknown>>>();

/**
 * The statements that enqueue messages: add them to the `writes.run` unit of the change that
 * caused them, so a message exists exactly when its change committed.
 */
export function outboxStatements(db: Kysely<Database>, messages: readonly OutboxMessage[] | undefined): WriteStatement[] {
  if (!messages || messages.length === 0) return [];
  let insert = inserts.get(db);
  if (!insert) {
    const columns: Array<keyof OutboxTable> = [
      "id",
      "instance_id",
      "user_id",
      "kind",
      "channel",
      "recipient",
      "deliverable",
      "subject",
      "sealed_body",
      "created_at",
      "attempts",
      "next_attempt_at",
      "claimed_until",
      "claim_token",
      "sent_at",
      "last_error",
    ];
    insert = prepare(db.insertInto("outbox").values(Object.fromEntries(columns.map((c) => [c, param(c)])) as never));
    inserts.set(db, insert);
  }
  return messages.map((message) =>
    insert.statement({
      id: message.id,
      instance_id: message.instanceId,
      user_id: message.userId,
      kind: message.kind,
      channel: message.channel,
      recipient: message.recipient,
      deliverable: message.deliverable ? 1 : 0,
      subject: message.subject,
      sealed_body: message.sealedBody,
      created_at: message.createdAt,
      attempts: 0,
      next_attempt_at: message.createdAt,
      claimed_until: 0,
      claim_token: null,
      sent_at: null,
      last_error: null,
    }),
  );
}

/**
 * The dispatcher's view of the outbox. Claiming is an UPDATE that takes only messages nobody
 * holds (`claimed_until` passed) and stamps them with a fresh token, then a read of what carries
 * the token: under concurrent dispatchers (replicas on one PostgreSQL) a message goes to one of
 * them, since the UPDATE re-checks its condition on the row it locks. It needs no SKIP LOCKED,
 * so it runs on SQLite too.
 */
export function createOutboxStore({ db, writes }: Db): OutboxStore {
  const finish = {
    sent: prepare<{ sent_at: number; id: string; claim_token: string }>(
      db
        .updateTable("outbox")
        .set({ sent_at: param("sent_at"), ...UNCLAIMED })
        .where("id", "=", param<string>("id"))
        .where("claim_token", "=", param<string>("claim_token")),
    ),
    released: prepare<{ id: string; claim_token: string }>(
      db
        .updateTable("outbox")
        .set({ ...UNCLAIMED })
        .where("id", "=", param<string>("id"))
        .where("claim_token", "=", param<string>("claim_token")),
    ),
    failed: prepare<{ attempts: number; next_attempt_at: number; last_error: string; id: string; claim_token: string }>(
      db
        .updateTable("outbox")
        .set({
          attempts: param("attempts"),
          next_attempt_at: param("next_attempt_at"),
          last_error: param("last_error"),
          ...UNCLAIMED,
        })
        .where("id", "=", param<string>("id"))
        .where("claim_token", "=", param<string>("claim_token")),
    ),
  };
  const due = (now: number) =>
    db.selectFrom("outbox").where("sent_at", "is", null).where("deliverable", "=", 1).where("next_attempt_at", "<=", now).where("claimed_until", "<=", now);

  return {
    async claimDue(now, limit, leaseMs) {
      // A read first: when nothing is due (nearly always) polling costs no write and no fsync.
      const candidates = await due(now).select("id").orderBy("next_attempt_at").limit(limit).execute();
      if (candidates.length === 0) return [];
      const token = randomBytes(16).toString("hex");
      const claim = db
        .updateTable("outbox")
        .set({ claim_token: token, claimed_until: now + leaseMs })
        .where(
          "id",
          "in",
          candidates.map((row) => row.id),
        )
        .where("sent_at", "is", null)
        .where("deliverable", "=", 1)
        .where("next_attempt_at", "<=", now)
        .where("claimed_until", "<=", now)
        .compile();
      await writes.run([{ sql: claim.sql, parameters: claim.parameters }]);
      const rows = await db
        .selectFrom("outbox")
        .select(["id", "kind", "channel", "recipient", "subject", "sealed_body", "attempts"])
        .where("claim_token", "=", token)
        .orderBy("next_attempt_at")
        .execute();
      return rows.map(
        (row): ClaimedMessage => ({
          id: row.id,
          kind: row.kind as ClaimedMessage["kind"],
          recipient: row.recipient,
          subject: row.subject,
          sealedBody: row.sealed_body,
          attempts: Number(row.attempts),
          claimToken: token,
        }),
      );
    },
    markSent: (message, at) => writes.run([finish.sent.statement({ sent_at: at, id: message.id, claim_token: message.claimToken })]),
    markFailed: (message, failure) =>
      writes.run([
        finish.failed.statement({
          attempts: message.attempts + 1,
          next_attempt_at: failure.nextAttemptAt,
          last_error: failure.error,
          id: message.id,
          claim_token: message.claimToken,
        }),
      ]),
    release: (message) => writes.run([finish.released.statement({ id: message.id, claim_token: message.claimToken })]),
    async countUnsent() {
      const row = await db
        .selectFrom("outbox")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("sent_at", "is", null)
        .executeTakeFirst();
      return Number(row?.n ?? 0);
    },
  };
}
