import { BulkErrors, RequestErrors } from "../domain/error-catalogue.js";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  CancelImportJobResponseSchema,
  ConflictPolicy,
  CreateImportJobResponseSchema,
  GetImportJobResponseSchema,
  type ImportJob,
  ImportJobSchema,
  ImportErrorSchema,
  ImportJobState,
  ImportOutcome,
  type ImportRecord,
  ImportOptionsSchema,
  ImportRecordSchema,
  type ImportResult,
  ImportResultSchema,
  type ImportUsersRequest,
  type ImportUsersResponse,
  ImportUsersResponseSchema,
  ListImportJobResultsResponseSchema,
  ListImportJobsResponseSchema,
  type MigrationService,
} from "../../gen/userport/migration/v1/migration_pb.js";
import type { ConflictPolicy as DomainConflictPolicy, ImportOutcome as DomainOutcome, RecordResult } from "../domain/ports.js";
import { BULK_LIMITS, type BulkImport, type BulkRecord, type BulkTarget, type ImportJobView, type ImportSession } from "../domain/bulk-import.js";
import { CODE_OF_KIND } from "../edge/errors.js";
import { type DomainError, isDomainError } from "../domain/errors.js";
import type { Access } from "../edge/access.js";
import { humanOf, machineOf } from "./user-service.js";
import { validateMessage } from "../edge/validation.js";

const POLICY: Record<number, DomainConflictPolicy> = {
  [ConflictPolicy.UNSPECIFIED]: "fail",
  [ConflictPolicy.FAIL]: "fail",
  [ConflictPolicy.SKIP]: "skip",
  [ConflictPolicy.UPDATE]: "update",
};
const POLICY_PB: Record<DomainConflictPolicy, ConflictPolicy> = { fail: ConflictPolicy.FAIL, skip: ConflictPolicy.SKIP, update: ConflictPolicy.UPDATE };
const OUTCOME_PB: Record<DomainOutcome, ImportOutcome> = {
  created: ImportOutcome.CREATED,
  updated: ImportOutcome.UPDATED,
  skipped: ImportOutcome.SKIPPED,
  failed: ImportOutcome.FAILED,
};
const OUTCOME_OF: Record<number, DomainOutcome | undefined> = {
  [ImportOutcome.UNSPECIFIED]: undefined,
  [ImportOutcome.CREATED]: "created",
  [ImportOutcome.UPDATED]: "updated",
  [ImportOutcome.SKIPPED]: "skipped",
  [ImportOutcome.FAILED]: "failed",
};
const STATE_PB: Record<ImportJobView["state"], ImportJobState> = {
  OPEN: ImportJobState.OPEN,
  RUNNING: ImportJobState.RUNNING,
  COMPLETED: ImportJobState.COMPLETED,
  CANCELLED: ImportJobState.CANCELLED,
};

export function policyOf(policy: ConflictPolicy): DomainConflictPolicy {
  const found = POLICY[policy];
  if (found === undefined) throw RequestErrors.onConflictUnknown();
  return found;
}

export function jobToPb(job: ImportJobView, dryRun = false): ImportJob {
  const ms = (at: number | undefined) => (at === undefined ? undefined : timestampFromMs(at));
  return create(ImportJobSchema, {
    id: job.id,
    organizationId: job.orgId,
    creatorId: job.creator,
    state: STATE_PB[job.state],
    onConflict: POLICY_PB[job.onConflict],
    nextIndex: BigInt(job.nextIndex),
    recordsDone: BigInt(job.counts.created + job.counts.updated + job.counts.skipped + job.counts.failed),
    created: BigInt(job.counts.created),
    updated: BigInt(job.counts.updated),
    skipped: BigInt(job.counts.skipped),
    failed: BigInt(job.counts.failed),
    expectedRecords: BigInt(job.expectedRecords),
    rate: job.rate,
    eta: job.etaMs === undefined ? undefined : durationFromMs(job.etaMs),
    createdAt: ms(job.createdAt),
    startedAt: ms(job.startedAt),
    finishedAt: ms(job.finishedAt),
    dryRun,
  });
}

export function resultToPb(result: RecordResult): ImportResult {
  // Every field given: a message literal, without create()'s reflection, a thousand per response.
  return {
    $typeName: ImportResultSchema.typeName,
    index: BigInt(result.index),
    key: result.key,
    outcome: OUTCOME_PB[result.outcome],
    userId: result.userId,
    error: result.error && create(ImportErrorSchema, { code: CODE_OF_KIND[result.error.kind], id: result.error.id, message: result.error.message }),
    replayed: result.replayed ?? false,
  };
}

/**
 * A record as the engine takes it: the request-shape (PGV) rules of AddHumanUser or CreateUser
 * run here, as in the single RPCs; a record that breaks one fails alone.
 */
export function toBulkRecord(record: ImportRecord, target: BulkTarget): BulkRecord {
  const key = record.key;
  try {
    // A machine record without an organisation is in the job's, as CreateUser requires one.
    if (record.user.case === "machine" && record.user.value.organizationId === "") record.user.value.organizationId = target.orgId;
    // PGV's rules of the record and of the request it carries, as the single RPCs run them.
    validateMessage(ImportRecordSchema, record);
    const user = record.user;
    if (user.case === "human") {
      const req = user.value;
      const org = req.organization?.org;
      if ((org?.case === "orgId" && org.value !== target.orgId) || org?.case === "orgDomain") {
        throw BulkErrors.foreignOrg();
      }
      const human = humanOf(req);
      return {
        key,
        human: { path: "v2", ...(req.userId !== undefined ? { userId: req.userId } : {}), username: req.username ?? "", ...human },
      };
    }
    if (user.case === "machine") {
      const req = user.value;
      if (req.organizationId !== "" && req.organizationId !== target.orgId) {
        throw BulkErrors.foreignOrg();
      }
      if (req.userType.case !== "machine") throw BulkErrors.humanInMachineRecord();
      return { key, machine: machineOf(req, req.userType.value) };
    }
    throw BulkErrors.emptyRecord();
  } catch (err) {
    if (!isDomainError(err)) throw err;
    return { key, invalid: err };
  }
}

/**
 * Batches of one stream in the engine at once: one committing, one queued at the store's writer
 * behind it, and one being prepared. With two, the writer sat idle between a commit and the end of
 * the next batch's preparation: 1,000,000 users into SQLite 21,965 -> 22,892 users/s, peak server
 * RSS 289 and 282 MB (bench/bulk-import.ts, one pair; two pairs of 300,000 users: +4-7 %).
 */
export const PIPELINE = 3;

function tooManyRecords(count: number): DomainError {
  return BulkErrors.tooManyRecords(BULK_LIMITS.recordsPerMessage, count);
}

/** What a client's malformed or oversized stream message becomes: INVALID_ARGUMENT, no parser internals. */
function streamReadError(err: unknown): unknown {
  if (!(err instanceof ConnectError)) return err;
  if (err.code === Code.ResourceExhausted) {
    return BulkErrors.messageTooLarge();
  }
  if (err.code === Code.InvalidArgument || err.code === Code.Internal || err.code === Code.Unknown) {
    return BulkErrors.messageUndecodable();
  }
  return err;
}

/** `userport.migration.v1.MigrationService`. */
export function createMigrationService(deps: { bulk: BulkImport; access: Access }): ServiceImpl<typeof MigrationService> {
  const { bulk, access } = deps;
  const targetOf = (ctx: HandlerContext, orgId: string) => access.target(ctx, orgId === "" ? undefined : { orgId });

  return {
    async *importUsers(requests: AsyncIterable<ImportUsersRequest>, ctx: HandlerContext): AsyncIterable<ImportUsersResponse> {
      const iterator = requests[Symbol.asyncIterator]();
      const read = async () => {
        try {
          return await iterator.next();
        } catch (err) {
          throw streamReadError(err);
        }
      };
      const first = await read();
      if (first.done) return;
      if (first.value.payload.case !== "options") throw BulkErrors.optionsMissing();
      const options = first.value.payload.value;
      const target = await targetOf(ctx, options.organizationId);
      validateMessage(ImportOptionsSchema, options);
      const session: ImportSession = await bulk.open(target, {
        dryRun: options.dryRun,
        onConflict: policyOf(options.onConflict),
        ...(options.jobId !== "" ? { jobId: options.jobId } : {}),
        ...(options.expectedRecords > 0n ? { expectedRecords: Number(options.expectedRecords) } : {}),
      });
      let completed = false;
      // Batches handed to the engine and not answered yet: later ones are read and prepared
      // while earlier ones commit; no more are read until the oldest is answered.
      const pending: Array<Promise<RecordResult[]>> = [];
      const answer = async () => {
        const results = await pending.shift()!;
        const counts = session.counts;
        return create(ImportUsersResponseSchema, {
          results: results.map(resultToPb),
          progress: {
            recordsDone: BigInt(counts.created + counts.updated + counts.skipped + counts.failed),
            created: BigInt(counts.created),
            updated: BigInt(counts.updated),
            skipped: BigInt(counts.skipped),
            failed: BigInt(counts.failed),
          },
        });
      };
      try {
        yield create(ImportUsersResponseSchema, { job: jobToPb(bulk.sessionJob(session), options.dryRun) });
        let reading = read();
        for (;;) {
          // A batch answered as soon as it committed, even while the client has nothing to send.
          if (pending.length > 0) {
            const first = await Promise.race([
              reading.then(
                () => "read",
                () => "read",
              ),
              pending[0]!.then(
                () => "batch",
                () => "batch",
              ),
            ]);
            if (first === "batch") {
              yield await answer();
              continue;
            }
          }
          let next: IteratorResult<ImportUsersRequest>;
          try {
            next = await reading;
          } catch (err) {
            // The results of every earlier record go out before the stream ends with the error.
            while (pending.length > 0) yield await answer();
            throw err;
          }
          if (next.done) break;
          const payload = next.value.payload;
          if (payload.case !== "records" || payload.value.records.length > BULK_LIMITS.recordsPerMessage) {
            while (pending.length > 0) yield await answer();
            if (payload.case !== "records") throw BulkErrors.optionsRepeated();
            throw tooManyRecords(payload.value.records.length);
          }
          const records = payload.value.records;
          if (records.length > 0) {
            const batch = bulk.importBatch(
              session,
              records.map((record) => toBulkRecord(record, target)),
            );
            batch.catch(() => undefined); // awaited in order by answer(); a failure ends the stream there
            pending.push(batch);
            // No more is read until the oldest batch is answered: memory stays bounded.
            if (pending.length >= PIPELINE) yield await answer();
          }
          reading = read();
        }
        while (pending.length > 0) yield await answer();
        completed = true;
      } finally {
        await bulk.close(session, completed);
      }
    },

    async createImportJob(req, ctx) {
      const target = await targetOf(ctx, req.organizationId);
      const job = await bulk.createJob(target, {
        onConflict: policyOf(req.onConflict),
        ...(req.expectedRecords > 0n ? { expectedRecords: Number(req.expectedRecords) } : {}),
      });
      return create(CreateImportJobResponseSchema, { job: jobToPb(await bulk.getJob(target, job.id)) });
    },

    async getImportJob(req, ctx) {
      const target = await access.target(ctx);
      return create(GetImportJobResponseSchema, { job: jobToPb(await bulk.getJob(target, req.jobId)) });
    },

    async listImportJobs(req, ctx) {
      const target = await targetOf(ctx, req.organizationId);
      const limit = req.limit === 0 ? 100 : Math.min(req.limit, 1000);
      const page = await bulk.listJobs(target, Number(req.offset), limit);
      return create(ListImportJobsResponseSchema, { totalResult: BigInt(page.total), result: page.jobs.map((job) => jobToPb(job)) });
    },

    async listImportJobResults(req, ctx) {
      const target = await access.target(ctx);
      if (!(req.outcome in OUTCOME_OF)) {
        throw RequestErrors.outcomeUnknown();
      }
      if (req.limit > 1000) throw RequestErrors.resultsLimitTooHigh();
      const page = await bulk.listResults(target, req.jobId, OUTCOME_OF[req.outcome], Number(req.offset), req.limit === 0 ? 100 : req.limit);
      return create(ListImportJobResultsResponseSchema, { totalResult: BigInt(page.total), result: page.results.map(resultToPb) });
    },

    async cancelImportJob(req, ctx) {
      const target = await access.target(ctx);
      return create(CancelImportJobResponseSchema, { job: jobToPb(await bulk.cancel(target, req.jobId)) });
    },
  };
}

/** Parses one NDJSON line as an `ImportRecord` (protojson); a line that is not one fails alone. */
export function recordFromJsonLine(line: string, target: BulkTarget): BulkRecord {
  let json: JsonValue;
  try {
    json = JSON.parse(line) as JsonValue;
  } catch {
    return { key: "", invalid: BulkErrors.lineNotJson() };
  }
  const key = json !== null && typeof json === "object" && !Array.isArray(json) && typeof json.key === "string" ? json.key : "";
  let record: ImportRecord;
  try {
    record = fromJson(ImportRecordSchema, json, { ignoreUnknownFields: true });
  } catch (err) {
    // protobuf-es may quote the value, which could be a password: only the field name goes back.
    const field = /field ([\w.]+)/.exec(String((err as Error).message))?.[1];
    return { key, invalid: BulkErrors.lineInvalid(field) };
  }
  return toBulkRecord(record, target);
}
