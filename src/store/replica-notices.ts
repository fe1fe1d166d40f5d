import pg from "pg";
import type { ReplicaNotice, ReplicaNotices } from "../domain/ports.js";

/** The channel every replica listens on. */
const CHANNEL = "userport_replica_notices";
/** How long a replica waits before listening again after its listening connection was lost. */
const RELISTEN_MS = 1000;

/**
 * {@link ReplicaNotices} over PostgreSQL's LISTEN/NOTIFY: a notice is a `pg_notify` on the shared
 * database, which PostgreSQL delivers to every connection listening on the channel, the sender's
 * own included. With `listen`, the replica keeps one connection of its own listening (outside the
 * pool, which must not lend it out); while that connection is down, `listening()` is false, so the
 * replica remembers nothing, and when it is lost or back, `{ forget: "everything" }` is heard,
 * since notices sent meanwhile were missed. Without `listen` (a maintenance command), it only sends.
 */
export async function openReplicaNotices(url: string, pool: pg.Pool, options: { listen: boolean }): Promise<ReplicaNotices & { close(): Promise<void> }> {
  const listeners: Array<(notice: ReplicaNotice) => void> = [];
  const hear = (notice: ReplicaNotice) => {
    for (const heard of listeners) heard(notice);
  };
  let client: pg.Client | undefined;
  let closed = false;
  let relisten: NodeJS.Timeout | undefined;

  async function listen(): Promise<void> {
    const connection = new pg.Client({ connectionString: url, application_name: "userport replica notices" });
    let dropped = false;
    const drop = () => {
      if (dropped) return;
      dropped = true;
      if (client === connection) {
        client = undefined;
        hear({ forget: "everything" });
      }
      connection.end().catch(() => {});
      if (!closed) relisten = setTimeout(() => void listen(), RELISTEN_MS).unref();
    };
    connection.on("error", drop);
    connection.on("end", drop);
    connection.on("notification", (message) => {
      if (message.channel !== CHANNEL || message.payload === undefined) return;
      const notice = parseNotice(message.payload);
      if (notice) hear(notice);
    });
    try {
      await connection.connect();
      await connection.query(`LISTEN ${CHANNEL}`);
    } catch {
      drop();
      return;
    }
    if (closed || dropped) {
      if (!dropped) await connection.end().catch(() => {});
      return;
    }
    client = connection;
    // Whatever changed before this moment was not heard.
    hear({ forget: "everything" });
  }

  if (options.listen) await listen();
  return {
    listening: () => client !== undefined,
    async send(notice) {
      await pool.query("SELECT pg_notify($1, $2)", [CHANNEL, JSON.stringify(notice)]);
    },
    onNotice(heard) {
      listeners.push(heard);
    },
    async close() {
      closed = true;
      clearTimeout(relisten);
      const connection = client;
      client = undefined;
      await connection?.end().catch(() => {});
    },
  };
}

function parseNotice(payload: string): ReplicaNotice | undefined {
  try {
    const notice = JSON.parse(payload) as Partial<Record<string, unknown>>;
    if (notice.forget === "callers" || notice.forget === "everything") return { forget: notice.forget };
    if (notice.forget === "org" && typeof notice.instanceId === "string" && typeof notice.orgId === "string") {
      return { forget: "org", instanceId: notice.instanceId, orgId: notice.orgId };
    }
  } catch {}
  // A notice this version does not know (sent by a newer replica): forgetting everything is always safe.
  return { forget: "everything" };
}
