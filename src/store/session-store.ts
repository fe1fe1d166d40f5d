import type { Selectable, SelectQueryBuilder } from "kysely";
import type { CredentialChange, Passkey, SessionFilter, SessionRecord, SessionStore, SessionWrite, UserCredentials } from "../domain/ports.js";
import { projectedSequence } from "../domain/user-details.js";
import { foldCase } from "../domain/user-queries.js";
import type { Db } from "./db.js";
import { outboxStatements } from "./outbox-store.js";
import { param, prepare, statement, type WriteStatement } from "./prepared.js";
import type { Database, PasskeyTable, SessionTable, UserTable } from "./schema.js";
import { toUser } from "./user-store.js";

/** The SQL implementation of the session commands' store. */
export function createSessionStore({ db, read, writes }: Db): SessionStore {
  const selectUser = prepare<{ instance_id: string; id: string }>(
    db.selectFrom("users").selectAll().where("instance_id", "=", param<string>("instance_id")).where("id", "=", param<string>("id")),
  );
  const selectClaimOwner = prepare<{ instance_id: string; kind: string; value: string }>(
    db
      .selectFrom("unique_constraints")
      .select("owner_id")
      .where("instance_id", "=", param<string>("instance_id"))
      .where("kind", "=", param<string>("kind"))
      .where("value", "=", param<string>("value")),
  );
  const selectSession = prepare<{ instance_id: string; id: string }>(
    db.selectFrom("sessions").selectAll().where("instance_id", "=", param<string>("instance_id")).where("id", "=", param<string>("id")),
  );

  function credentialStatements(change: CredentialChange): WriteStatement[] {
    const statements = change.events.map((event, i) =>
      statement(
        db.insertInto("events").values({
          instance_id: change.instanceId,
          aggregate_type: "user",
          aggregate_id: change.userId,
          sequence: change.expectedSequence + 1 + i,
          type: event.type,
          payload: JSON.stringify(event.payload),
          creator: change.creator,
          created_at: change.at,
        }),
        // The first event takes the next sequence number: a change that lost a race fails here.
        i === 0 ? "sequence" : undefined,
      ),
    );
    const { set } = change;
    // A lockout (user.locked) dates the user for reads; checks and password events do not.
    const dated = projectedSequence(change.events, change.expectedSequence + 1);
    statements.push(
      statement(
        db
          .updateTable("users")
          .set({
            changed_at: change.at,
            sequence: change.expectedSequence + change.events.length,
            ...(dated !== undefined ? { details_sequence: dated, details_changed_at: change.at } : {}),
            ...(set.passwordHash !== undefined ? { password_hash: set.passwordHash } : {}),
            ...(set.passwordChangeRequired !== undefined ? { password_change_required: set.passwordChangeRequired ? 1 : 0 } : {}),
            ...(set.passwordChangedAt !== undefined ? { password_changed_at: set.passwordChangedAt } : {}),
            ...(set.failedAttempts !== undefined ? { password_failed_attempts: set.failedAttempts } : {}),
            ...(set.otpFailedAttempts !== undefined ? { otp_failed_attempts: set.otpFailedAttempts } : {}),
            ...(set.state !== undefined ? { state: set.state } : {}),
          })
          .where("instance_id", "=", change.instanceId)
          .where("id", "=", change.userId),
      ),
    );
    if (change.usedCodeId !== undefined) {
      statements.push(
        statement(db.updateTable("codes").set({ used_at: change.at }).where("instance_id", "=", change.instanceId).where("id", "=", change.usedCodeId)),
      );
    }
    if (change.newCode) {
      const code = change.newCode;
      statements.push(
        statement(
          db.insertInto("codes").values({
            instance_id: change.instanceId,
            id: code.id,
            user_id: change.userId,
            kind: code.kind,
            sealed_code: code.sealedCode,
            expires_at: code.expiresAt,
            created_at: change.at,
            returned: code.returned ? 1 : 0,
            url_template: code.urlTemplate ?? null,
            used_at: null,
          }),
        ),
      );
    }
    for (const passkey of change.passkeys?.put ?? []) {
      const row = passkeyRow(change.instanceId, passkey);
      const { instance_id, user_id, id, created_at, ...changed } = row;
      statements.push(
        statement(
          db
            .insertInto("passkeys")
            .values(row)
            .onConflict((oc) => oc.columns(["instance_id", "user_id", "id"]).doUpdateSet(changed)),
          // Two users cannot hold the same credential.
          "passkey_credential",
        ),
      );
    }
    for (const id of change.passkeys?.remove ?? []) {
      statements.push(
        statement(db.deleteFrom("passkeys").where("instance_id", "=", change.instanceId).where("user_id", "=", change.userId).where("id", "=", id)),
      );
    }
    statements.push(...outboxStatements(db, change.outbox));
    return statements;
  }

  function sessionStatements({ session, fromSequence, events }: SessionWrite): WriteStatement[] {
    const statements = events.map((event, i) =>
      statement(
        db.insertInto("events").values({
          instance_id: session.instanceId,
          aggregate_type: "session",
          aggregate_id: session.id,
          sequence: fromSequence + 1 + i,
          type: event.type,
          payload: JSON.stringify(event.payload),
          creator: session.creator,
          created_at: session.changedAt,
          // Sessions belong to the instance, as in ZITADEL.
          resource_owner: fromSequence === 0 ? session.instanceId : "",
        }),
        i === 0 ? "session_sequence" : undefined,
      ),
    );
    const row = toRow(session);
    statements.push(
      fromSequence === 0
        ? statement(db.insertInto("sessions").values(row))
        : statement(db.updateTable("sessions").set(row).where("instance_id", "=", session.instanceId).where("id", "=", session.id)),
    );
    return statements;
  }

  return {
    async credentials(instanceId, userId) {
      const rows = await read<Selectable<UserTable>>(selectUser.bind({ instance_id: instanceId, id: userId }));
      return rows[0] && toCredentials(rows[0]);
    },

    /**
     * The one place login names are resolved, as ZITADEL's login names are: the username (unique
     * in the instance, case-insensitive), or `username@domain` for a user of an organisation whose
     * domain policy requires domain login names, with `domain` one of its verified domains.
     */
    async userIdByLoginName(instanceId, loginName) {
      const claim = (kind: string, value: string) =>
        read<{ owner_id: string }>(selectClaimOwner.bind({ instance_id: instanceId, kind, value })).then((rows) => rows[0]?.owner_id);
      const plain = await claim("username", foldCase(loginName));
      if (plain !== undefined) return plain;
      const at = loginName.lastIndexOf("@");
      if (at <= 0) return undefined;
      const org = await db
        .selectFrom("org_domains as d")
        .innerJoin("orgs as o", (join) => join.onRef("o.instance_id", "=", "d.instance_id").onRef("o.id", "=", "d.org_id"))
        .select("d.org_id")
        .where("d.instance_id", "=", instanceId)
        .where("d.domain", "=", loginName.slice(at + 1).toLowerCase())
        .where("d.verified", "=", 1)
        .where("o.user_login_must_be_domain", "=", 1)
        .executeTakeFirst();
      return org && claim("org_username", `${org.org_id}/${foldCase(loginName.slice(0, at))}`);
    },

    write(change, request) {
      return writes.run(
        [...(change.credentials ? credentialStatements(change.credentials) : []), ...(change.session ? sessionStatements(change.session) : [])],
        request,
      );
    },

    async session(instanceId, sessionId) {
      const rows = await read<Selectable<SessionTable>>(selectSession.bind({ instance_id: instanceId, id: sessionId }));
      return rows[0] && toSession(rows[0]);
    },

    async listSessions(instanceId, filter, page, visible) {
      let query = db.selectFrom("sessions").where("instance_id", "=", instanceId).where("terminated", "=", 0);
      const orgIds = visible.orgIds;
      if (orgIds !== "all") {
        query = query.where((eb) =>
          eb.or([eb("creator", "=", visible.creator), eb("user_id", "=", visible.userId), ...(orgIds.length > 0 ? [eb("user_org_id", "in", orgIds)] : [])]),
        );
      }
      query = applyFilter(query, filter);
      const total = await query.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
      const rows = await query
        .selectAll()
        .orderBy("created_at", page.asc ? "asc" : "desc")
        .orderBy("id", page.asc ? "asc" : "desc")
        .limit(page.limit)
        .offset(page.offset)
        .execute();
      return { total: Number(total.n), sessions: rows.map(toSession) };
    },

    async passkeys(instanceId, userId) {
      const rows = await db
        .selectFrom("passkeys")
        .selectAll()
        .where("instance_id", "=", instanceId)
        .where("user_id", "=", userId)
        .orderBy("created_at")
        .orderBy("id")
        .execute();
      return rows.map(toPasskey);
    },

    async codeById(instanceId, userId, codeId) {
      const row = await db
        .selectFrom("codes")
        .select(["id", "kind", "sealed_code", "expires_at", "used_at"])
        .where("instance_id", "=", instanceId)
        .where("user_id", "=", userId)
        .where("id", "=", codeId)
        .executeTakeFirst();
      return row && { id: row.id, kind: row.kind, sealedCode: row.sealed_code, expiresAt: Number(row.expires_at), used: row.used_at !== null };
    },

    async latestCode(instanceId, userId, kind) {
      const row = await db
        .selectFrom("codes")
        .select(["id", "sealed_code", "expires_at", "used_at"])
        .where("instance_id", "=", instanceId)
        .where("user_id", "=", userId)
        .where("kind", "=", kind)
        .orderBy("created_at", "desc")
        .orderBy("id", "desc")
        .executeTakeFirst();
      return row && { id: row.id, sealedCode: row.sealed_code, expiresAt: Number(row.expires_at), used: row.used_at !== null };
    },
  };
}

type SessionQuery = SelectQueryBuilder<Database, "sessions", object>;

function applyFilter(query: SessionQuery, filter: SessionFilter): SessionQuery {
  let q = query;
  if (filter.ids) q = q.where("id", "in", filter.ids.length === 0 ? [""] : filter.ids);
  if (filter.userId !== undefined) q = q.where("user_id", "=", filter.userId);
  if (filter.creator !== undefined) q = q.where("creator", "=", filter.creator);
  if (filter.createdAt) q = q.where("created_at", filter.createdAt.method, filter.createdAt.at);
  if (filter.expiresAt) {
    const { method, at } = filter.expiresAt;
    // As ZITADEL's expirationDateQueryToQuery (internal/api/grpc/session/v2/query.go): "later than"
    // also finds the sessions that never expire, so that it lists the sessions still alive.
    q =
      method === ">" || method === ">="
        ? q.where((eb) => eb.or([eb("expires_at", method, at), eb("expires_at", "is", null)]))
        : q.where("expires_at", method, at);
  }
  if (filter.fingerprintId !== undefined) {
    q = q.where("user_agent", "like", `%"fingerprintId":${JSON.stringify(filter.fingerprintId)}%`);
  }
  return q;
}

function toCredentials(row: Selectable<UserTable>): UserCredentials {
  return {
    user: toUser(row),
    passwordHash: row.password_hash ?? undefined,
    failedAttempts: Number(row.password_failed_attempts ?? 0),
    otpFailedAttempts: Number(row.otp_failed_attempts ?? 0),
    sealedTotpSecret: row.totp_secret ?? undefined,
  };
}

const optionalMs = (value: number | null) => (value === null ? undefined : Number(value));

function toSession(row: Selectable<SessionTable>): SessionRecord {
  return {
    instanceId: row.instance_id,
    id: row.id,
    creator: row.creator,
    userId: row.user_id,
    userOrgId: row.user_org_id,
    userCheckedAt: optionalMs(row.user_checked_at),
    passwordCheckedAt: optionalMs(row.password_checked_at),
    totpCheckedAt: optionalMs(row.totp_checked_at),
    webAuthNChallenge: row.webauthn_challenge === null || row.webauthn_challenge === undefined ? undefined : JSON.parse(row.webauthn_challenge),
    webAuthNCheckedAt: optionalMs(row.webauthn_checked_at ?? null),
    webAuthNUserVerified:
      row.webauthn_user_verified === null || row.webauthn_user_verified === undefined ? undefined : Number(row.webauthn_user_verified) === 1,
    tokenDigest: row.token_digest,
    userAgent: JSON.parse(row.user_agent),
    metadata: JSON.parse(row.metadata),
    expiresAt: optionalMs(row.expires_at),
    terminated: Number(row.terminated) === 1,
    createdAt: Number(row.created_at),
    changedAt: Number(row.changed_at),
    sequence: Number(row.sequence),
  };
}

function toRow(session: SessionRecord): SessionTable {
  return {
    instance_id: session.instanceId,
    id: session.id,
    creator: session.creator,
    user_id: session.userId,
    user_org_id: session.userOrgId,
    user_checked_at: session.userCheckedAt ?? null,
    password_checked_at: session.passwordCheckedAt ?? null,
    totp_checked_at: session.totpCheckedAt ?? null,
    webauthn_challenge: session.webAuthNChallenge ? JSON.stringify(session.webAuthNChallenge) : null,
    webauthn_checked_at: session.webAuthNCheckedAt ?? null,
    webauthn_user_verified: session.webAuthNUserVerified === undefined ? null : session.webAuthNUserVerified ? 1 : 0,
    token_digest: session.tokenDigest,
    user_agent: JSON.stringify(session.userAgent),
    metadata: JSON.stringify(session.metadata),
    expires_at: session.expiresAt ?? null,
    terminated: session.terminated ? 1 : 0,
    created_at: session.createdAt,
    changed_at: session.changedAt,
    sequence: session.sequence,
  };
}

function passkeyRow(instanceId: string, passkey: Passkey): PasskeyTable {
  return {
    instance_id: instanceId,
    user_id: passkey.userId,
    id: passkey.id,
    state: passkey.state,
    name: passkey.name,
    challenge: passkey.challenge,
    rp_id: passkey.rpId,
    user_verification: passkey.userVerification,
    authenticator_attachment: passkey.authenticatorAttachment,
    credential_id: passkey.credentialId ?? null,
    public_key: passkey.publicKey ?? null,
    sign_count: passkey.signCount,
    transports: JSON.stringify(passkey.transports),
    aaguid: passkey.aaguid,
    attestation_type: passkey.attestationType,
    created_at: passkey.createdAt,
    changed_at: passkey.changedAt,
  };
}

function toPasskey(row: Selectable<PasskeyTable>): Passkey {
  return {
    id: row.id,
    userId: row.user_id,
    state: row.state === "READY" ? "READY" : "NOT_READY",
    name: row.name,
    challenge: row.challenge,
    rpId: row.rp_id,
    userVerification: row.user_verification,
    authenticatorAttachment: row.authenticator_attachment,
    credentialId: row.credential_id ?? undefined,
    publicKey: row.public_key ?? undefined,
    signCount: Number(row.sign_count),
    transports: JSON.parse(row.transports),
    aaguid: row.aaguid,
    attestationType: row.attestation_type,
    createdAt: Number(row.created_at),
    changedAt: Number(row.changed_at),
  };
}
