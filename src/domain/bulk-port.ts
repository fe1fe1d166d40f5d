import type { ErrorKind } from "./errors.js";
import type { NewUser, UserUpdate } from "./store-port.js";

export type ConflictPolicy = "fail" | "skip" | "update";
export type ImportOutcome = "created" | "updated" | "skipped" | "failed";
export type ImportJobState = "OPEN" | "RUNNING" | "COMPLETED" | "CANCELLED";

/** An import job as stored: it belongs to its organisation and its creator. */
export interface ImportJob {
  instanceId: string;
  id: string;
  orgId: string;
  creator: string;
  state: ImportJobState;
  onConflict: ConflictPolicy;
  /** Every record before this index has a stored result: where a resumed job continues. */
  nextIndex: number;
  expectedRecords: number;
  createdAt: number;
  startedAt: number | undefined;
  finishedAt: number | undefined;
  /** When the current (or last) stream or upload began, and the index it began at: for the rate. */
  runStartedAt: number | undefined;
  runStartIndex: number;
  changedAt: number;
}

/** Why a record failed: the domain error's kind, ZITADEL id and message (never a secret). */
export interface RecordError {
  kind: ErrorKind;
  id: string;
  message: string;
}

/** The result of one record of a job, as stored and as answered. */
export interface RecordResult {
  index: number;
  key: string;
  outcome: ImportOutcome;
  /** The created or updated user, or the stored user a skipped record conflicted with. */
  userId: string;
  error?: RecordError;
  /** An earlier result of the key, answered again: nothing was written. */
  replayed?: boolean;
}

export type OutcomeCounts = Record<ImportOutcome, number>;

/**
 * What one record writes when it succeeds: the user's creation (or update) and its result, under
 * one savepoint, so that a user is never stored without the job knowing, nor the other way.
 */
export interface BulkUnit {
  result: RecordResult;
  /** The key has a stored failure, which this result replaces. */
  replacesFailure?: boolean;
  creation?: NewUser;
  update?: UserUpdate;
}

/** Storage of import jobs and their results (src/store/bulk-store.ts). */
export interface BulkStore {
  createJob(job: ImportJob): Promise<void>;
  getJob(instanceId: string, jobId: string): Promise<ImportJob | undefined>;
  /** A creator's jobs in an organisation, newest first. */
  listJobs(instanceId: string, orgId: string, creator: string, offset: number, limit: number): Promise<{ total: number; jobs: ImportJob[] }>;
  /** Jobs of the organisation that are neither completed nor cancelled. */
  countActiveJobs(instanceId: string, orgId: string): Promise<number>;
  updateJob(instanceId: string, jobId: string, set: Partial<Pick<ImportJob, "state" | "nextIndex" | "startedAt" | "finishedAt" | "runStartedAt" | "runStartIndex" | "expectedRecords">>, at: number): Promise<void>;
  /** The stored results of these keys in the job. */
  findResults(instanceId: string, jobId: string, keys: readonly string[]): Promise<Map<string, RecordResult>>;
  /** The highest index with a stored result, or -1. */
  lastIndex(instanceId: string, jobId: string): Promise<number>;
  /**
   * Commits the units in one transaction, each under its own savepoint; resolves once durable
   * with each unit's error (undefined when it committed). Rejects when the transaction failed.
   */
  commitUnits(
    instanceId: string,
    jobId: string | undefined,
    units: readonly BulkUnit[],
    /** What `finishBatch` would write for earlier batches, written in the same transaction instead. */
    finished?: { results: readonly RecordResult[]; nextIndex: number; at: number },
  ): Promise<unknown[]>;
  /**
   * Stores results that wrote no user (failed, skipped; a failed key's earlier failure is
   * replaced) and moves the job's next index, in one transaction.
   */
  finishBatch(instanceId: string, jobId: string, results: readonly RecordResult[], nextIndex: number, at: number): Promise<void>;
  countResults(instanceId: string, jobId: string): Promise<OutcomeCounts>;
  listResults(
    instanceId: string,
    jobId: string,
    outcome: ImportOutcome | undefined,
    offset: number,
    limit: number,
  ): Promise<{ total: number; results: RecordResult[] }>;
  /** The owners of unique claims (usernames, links, user ids) already stored, by `kind value`. */
  claimOwners(instanceId: string, claims: ReadonlyArray<{ kind: string; value: string }>): Promise<Map<string, string>>;
  /** Which of these user ids exist (for caller-chosen ids in a dry run). */
  existingUserIds(instanceId: string, ids: readonly string[]): Promise<Set<string>>;
}
