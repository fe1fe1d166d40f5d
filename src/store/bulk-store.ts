import { type Selectable, sql } from "kysely";
import type { BulkStore, BulkUnit, ImportJob, ImportOutcome, OutcomeCounts, RecordResult } from "../domain/ports.js";
import type { ErrorKind } from "../domain/errors.js";
import type { Db } from "./db.js";
import { outboxStatements } from "./outbox-store.js";
import { param, paramList, prepare, statement, type WriteStatement } from "./prepared.js";
import type { ImportJobRecordTable, ImportJobTable } from "./schema.js";
import { createUserInserts, userCreationStatements, userUpdateStatements } from "./user-store.js";

const RECORD_COLUMNS = ["instance_id", "job_id", "key", "idx", "outcome", "user_id", "error_kind", "error_id", "error_message"] as const;

/** Keys per IN list: below SQLite's and PostgreSQL's parameter limits. */
const CHUNK = 500;

/**
 * The items in lists of CHUNK each, the last one padded with its own first item (which changes
 * no `in (…)`): every list binds the one query prepared for CHUNK values. Built and compiled by
 * Kysely per list, an `in` of 500 values cost about 0.3 ms, for every batch of a bulk import.
 */
function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) {
    const part = items.slice(i, i + CHUNK);
    while (part.length < CHUNK) part.push(part[0]!);
    out.push(part);
  }
  return out;
}

/**
 * Import jobs and their results on SQL. A record's user is written by the very statements of a
 * single create (user-store.ts), together with the record's result, under one savepoint; the
 * results' primary key (job, key) makes a job import a key once even across concurrent streams.
 */
export function createBulkStore({ db, read, writes }: Db): BulkStore {
  const insert = createUserInserts(db);
  const values = Object.fromEntries(RECORD_COLUMNS.map((column) => [column, param(column)]));
  const insertRecord = prepare<Record<string, unknown>>(db.insertInto("import_job_records").values(values as never));
  // A failure (or skip) replaces an earlier failure of the key, never a result that wrote a user.
  const upsertRecord = prepare<Record<string, unknown>>(
    db
      .insertInto("import_job_records")
      .values(values as never)
      .onConflict((oc) =>
        oc
          .columns(["instance_id", "job_id", "key"])
          .doUpdateSet({
            idx: (eb) => eb.ref("excluded.idx"),
            outcome: (eb) => eb.ref("excluded.outcome"),
            user_id: (eb) => eb.ref("excluded.user_id"),
            error_kind: (eb) => eb.ref("excluded.error_kind"),
            error_id: (eb) => eb.ref("excluded.error_id"),
            error_message: (eb) => eb.ref("excluded.error_message"),
          })
          .where("import_job_records.outcome", "=", sql<string>`'failed'`),
      ),
  );
  const dropFailure = prepare<{ instance_id: string; job_id: string; key: string }>(
    db
      .deleteFrom("import_job_records")
      .where("instance_id", "=", param<string>("instance_id"))
      .where("job_id", "=", param<string>("job_id"))
      .where("key", "=", param<string>("key"))
      .where("outcome", "=", sql<string>`'failed'`),
  );
  const selectResults = prepare<{ instance_id: string; job_id: string; keys: string[] }>(
    db
      .selectFrom("import_job_records")
      .selectAll()
      .where("instance_id", "=", param<string>("instance_id"))
      .where("job_id", "=", param<string>("job_id"))
      .where("key", "in", paramList<string>("keys", CHUNK)),
  );
  const selectClaimOwners = prepare<{ instance_id: string; kind: string; values: string[] }>(
    db
      .selectFrom("unique_constraints")
      .select(["value", "owner_id"])
      .where("instance_id", "=", param<string>("instance_id"))
      .where("kind", "=", param<string>("kind"))
      .where("value", "in", paramList<string>("values", CHUNK)),
  );
  const selectUserIds = prepare<{ instance_id: string; ids: string[] }>(
    db.selectFrom("users").select("id").where("instance_id", "=", param<string>("instance_id")).where("id", "in", paramList<string>("ids", CHUNK)),
  );
  const selectJob = prepare<{ instance_id: string; id: string }>(
    db.selectFrom("import_jobs").selectAll().where("instance_id", "=", param<string>("instance_id")).where("id", "=", param<string>("id")),
  );

  const recordRow = (instanceId: string, jobId: string, result: RecordResult) => ({
    instance_id: instanceId,
    job_id: jobId,
    key: result.key,
    idx: result.index,
    outcome: result.outcome,
    user_id: result.userId,
    error_kind: result.error?.kind ?? "",
    error_id: result.error?.id ?? "",
    error_message: result.error?.message ?? "",
  });

  function unitStatements(instanceId: string, jobId: string | undefined, unit: BulkUnit): WriteStatement[] {
    const statements: WriteStatement[] = [];
    if (jobId !== undefined) {
      if (unit.replacesFailure) statements.push(dropFailure.statement({ instance_id: instanceId, job_id: jobId, key: unit.result.key }));
      // First: a key another stream of the job committed fails here, before any user row.
      statements.push(insertRecord.statement(recordRow(instanceId, jobId, unit.result), "bulk_record"));
    }
    if (unit.creation) statements.push(...userCreationStatements(insert, unit.creation), ...outboxStatements(db, unit.creation.outbox));
    if (unit.update) statements.push(...userUpdateStatements(db, insert, unit.update));
    return statements;
  }

  function finishStatements(instanceId: string, jobId: string, results: readonly RecordResult[], nextIndex: number, at: number): WriteStatement[] {
    return [
      ...results.map((result) => upsertRecord.statement(recordRow(instanceId, jobId, result))),
      statement(
        db
          .updateTable("import_jobs")
          .set({ next_index: nextIndex, changed_at: at })
          .where("instance_id", "=", instanceId)
          .where("id", "=", jobId)
          .where("next_index", "<", nextIndex),
      ),
    ];
  }

  const stageUnits: BulkStore["stageUnits"] = (instanceId, jobId, units) => writes.stageUnits(units.map((unit) => unitStatements(instanceId, jobId, unit)));

  const commitStaged: BulkStore["commitStaged"] = async (instanceId, jobId, staged, finished, options) => {
    const count = staged.reduce((units, part) => units + part.count, 0);
    const parts = [...staged];
    if (finished && jobId !== undefined)
      parts.push(writes.stageUnits([finishStatements(instanceId, jobId, finished.results, finished.nextIndex, finished.at)]));
    const outcomes = await writes.runStaged(parts, options);
    if (outcomes.length > count && outcomes[count] !== undefined) throw outcomes[count];
    return outcomes.slice(0, count);
  };

  return {
    async createJob(job, request) {
      await writes.run([statement(db.insertInto("import_jobs").values(toRow(job)))], request);
    },
    async getJob(instanceId, jobId) {
      const rows = await read<Selectable<ImportJobTable>>(selectJob.bind({ instance_id: instanceId, id: jobId }));
      return rows[0] && toJob(rows[0]);
    },
    async listJobs(instanceId, orgId, creator, offset, limit) {
      const base = db.selectFrom("import_jobs").where("instance_id", "=", instanceId).where("org_id", "=", orgId).where("creator", "=", creator);
      const total = await base.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
      const rows = await base.selectAll().orderBy("created_at", "desc").orderBy("id", "desc").offset(offset).limit(limit).execute();
      return { total: Number(total?.n ?? 0), jobs: rows.map(toJob) };
    },
    async countActiveJobs(instanceId, orgId) {
      const row = await db
        .selectFrom("import_jobs")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("instance_id", "=", instanceId)
        .where("org_id", "=", orgId)
        .where("state", "in", ["OPEN", "RUNNING"])
        .executeTakeFirst();
      return Number(row?.n ?? 0);
    },
    async updateJob(instanceId, jobId, set, at, request) {
      const columns: Partial<ImportJobTable> = { changed_at: at };
      if (set.state !== undefined) columns.state = set.state;
      if (set.nextIndex !== undefined) columns.next_index = set.nextIndex;
      if (set.startedAt !== undefined) columns.started_at = set.startedAt;
      if (set.finishedAt !== undefined) columns.finished_at = set.finishedAt;
      if (set.runStartedAt !== undefined) columns.run_started_at = set.runStartedAt;
      if (set.runStartIndex !== undefined) columns.run_start_index = set.runStartIndex;
      if (set.expectedRecords !== undefined) columns.expected_records = set.expectedRecords;
      await writes.run([statement(db.updateTable("import_jobs").set(columns).where("instance_id", "=", instanceId).where("id", "=", jobId))], request);
    },
    async findResults(instanceId, jobId, keys) {
      const found = new Map<string, RecordResult>();
      for (const part of chunks(keys)) {
        const query = selectResults.bind({ instance_id: instanceId, job_id: jobId, keys: part });
        for (const row of await read<Selectable<ImportJobRecordTable>>(query)) found.set(row.key, toResult(row));
      }
      return found;
    },
    async lastIndex(instanceId, jobId) {
      const row = await db
        .selectFrom("import_job_records")
        .select((eb) => eb.fn.max("idx").as("last"))
        .where("instance_id", "=", instanceId)
        .where("job_id", "=", jobId)
        .executeTakeFirst();
      return row?.last === null || row?.last === undefined ? -1 : Number(row.last);
    },
    commitUnits: (instanceId, jobId, units, finished, options) => commitStaged(instanceId, jobId, [stageUnits(instanceId, jobId, units)], finished, options),
    stageUnits,
    commitStaged,
    async finishBatch(instanceId, jobId, results, nextIndex, at, request) {
      await writes.run(finishStatements(instanceId, jobId, results, nextIndex, at), request);
    },
    async countResults(instanceId, jobId) {
      const rows = await db
        .selectFrom("import_job_records")
        .select(["outcome", (eb) => eb.fn.countAll<number>().as("n")])
        .where("instance_id", "=", instanceId)
        .where("job_id", "=", jobId)
        .groupBy("outcome")
        .execute();
      const counts: OutcomeCounts = { created: 0, updated: 0, skipped: 0, failed: 0 };
      for (const row of rows) counts[row.outcome as ImportOutcome] = Number(row.n);
      return counts;
    },
    async listResults(instanceId, jobId, outcome, offset, limit) {
      let base = db.selectFrom("import_job_records").where("instance_id", "=", instanceId).where("job_id", "=", jobId);
      if (outcome !== undefined) base = base.where("outcome", "=", outcome);
      const total = await base.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
      const rows = await base.selectAll().orderBy("idx").orderBy("key").offset(offset).limit(limit).execute();
      return { total: Number(total?.n ?? 0), results: rows.map(toResult) };
    },
    async claimOwners(instanceId, claims) {
      const owners = new Map<string, string>();
      const byKind = new Map<string, string[]>();
      for (const claim of claims) {
        const values = byKind.get(claim.kind);
        if (values) values.push(claim.value);
        else byKind.set(claim.kind, [claim.value]);
      }
      for (const [kind, values] of byKind) {
        for (const part of chunks([...new Set(values)])) {
          const query = selectClaimOwners.bind({ instance_id: instanceId, kind, values: part });
          for (const row of await read<{ value: string; owner_id: string }>(query)) owners.set(`${kind} ${row.value}`, row.owner_id);
        }
      }
      return owners;
    },
    async existingUserIds(instanceId, ids) {
      const found = new Set<string>();
      for (const part of chunks([...new Set(ids)])) {
        const query = selectUserIds.bind({ instance_id: instanceId, ids: part });
        for (const row of await read<{ id: string }>(query)) found.add(row.id);
      }
      return found;
    },
  };
}

const optional = (value: number | null) => (value === null ? undefined : Number(value));

function toJob(row: Selectable<ImportJobTable>): ImportJob {
  return {
    instanceId: row.instance_id,
    id: row.id,
    orgId: row.org_id,
    creator: row.creator,
    state: row.state as ImportJob["state"],
    onConflict: row.on_conflict as ImportJob["onConflict"],
    nextIndex: Number(row.next_index),
    expectedRecords: Number(row.expected_records),
    createdAt: Number(row.created_at),
    startedAt: optional(row.started_at),
    finishedAt: optional(row.finished_at),
    runStartedAt: optional(row.run_started_at),
    runStartIndex: Number(row.run_start_index),
    changedAt: Number(row.changed_at),
  };
}

function toRow(job: ImportJob): ImportJobTable {
  return {
    instance_id: job.instanceId,
    id: job.id,
    org_id: job.orgId,
    creator: job.creator,
    state: job.state,
    on_conflict: job.onConflict,
    next_index: job.nextIndex,
    expected_records: job.expectedRecords,
    created_at: job.createdAt,
    started_at: job.startedAt ?? null,
    finished_at: job.finishedAt ?? null,
    run_started_at: job.runStartedAt ?? null,
    run_start_index: job.runStartIndex,
    changed_at: job.changedAt,
  };
}

function toResult(row: Selectable<ImportJobRecordTable>): RecordResult {
  return {
    index: Number(row.idx),
    key: row.key,
    outcome: row.outcome as ImportOutcome,
    userId: row.user_id,
    ...(row.outcome === "failed" ? { error: { kind: row.error_kind as ErrorKind, id: row.error_id, message: row.error_message } } : {}),
  };
}
