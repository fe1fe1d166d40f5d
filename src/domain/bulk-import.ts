import { CLAIMS, isUsernameClaim, losesClaim, lostClaim, takenClaimError } from "./claims.js";
import { BulkErrors } from "./error-catalogue.js";
/**
 * The bulk import engine: records in batches, each validated and built by the same function as
 * a single create (`prepareHuman` / `prepareMachine` in users.ts), committed many per
 * transaction with a savepoint each (a failing record fails alone), answered only after commit.
 *
 * A job remembers the result of every key it imported, in the same transaction as the user, so a
 * key sent again is answered with its earlier result and writes nothing, and a resumed job
 * continues at the index the store says. A dry run runs every rule, duplicates within the run and
 * conflicts with stored users included, and writes nothing.
 */
import type { BulkStore, BulkUnit, ConflictPolicy, ImportJob, OutcomeCounts, RecordError, RecordResult, StagedUnits } from "./ports.js";
import { DomainError, isDomainError } from "./errors.js";
import type { HumanProfile } from "./human.js";
import type { IdGenerator } from "./ids.js";
import type { IdpCommands } from "./idps.js";
import type { Target } from "./authentication.js";
import { metadataSetEvent } from "./users.js";
import type { NewEvent, NewUser, User, UserStore, UserUpdate } from "./ports.js";
import { type CreateHumanInput, type CreateMachineInput, type CreationLookups, creationError, type UserCommands } from "./users.js";

/** Limits of the bulk API (documented in the README's "Bulk migration"). */
export const BULK_LIMITS = {
  /** Records in one stream message or one batch of an upload. */
  recordsPerMessage: 1000,
  /** Bytes of one record (its protobuf or JSON encoding). */
  bytesPerRecord: 1_048_576,
  /** Jobs of an organisation that are neither completed nor cancelled. */
  activeJobsPerOrg: 10,
} as const;

/**
 * Records of a batch prepared, and their writes handed to the store, together (see
 * `prepareBatch`). Plaintext passwords of a part are hashed concurrently, enough to keep every
 * hashing thread busy.
 */
const PREPARE_PART = 100;

/** Where an import acts, on whose behalf, and for which request (a stream's or an upload's is none). */
export type BulkTarget = Target;

/** One record as the API layer hands it over, after the request-shape (PGV) rules. */
export type BulkRecord =
  | { key: string; human: Omit<CreateHumanInput, keyof Target> }
  | { key: string; machine: Omit<CreateMachineInput, keyof Target> }
  /** A record that failed the request-shape rules: it fails alone, with this error. */
  | { key: string; invalid: DomainError };

export interface ImportOptions {
  dryRun: boolean;
  onConflict: ConflictPolicy;
  /** Resume this job instead of creating one. */
  jobId?: string;
  expectedRecords?: number;
}

/** A stream or upload in progress. */
export interface ImportSession {
  readonly target: BulkTarget;
  /** Undefined for a dry run, which stores nothing. */
  readonly job: ImportJob | undefined;
  readonly dryRun: boolean;
  readonly onConflict: ConflictPolicy;
  /** Results of this session so far, by outcome. */
  readonly counts: OutcomeCounts;
}

interface SessionState extends ImportSession {
  /** The index the next record gets. */
  next: number;
  counts: OutcomeCounts;
  /** Dry run: the results of keys seen, and the claims planned, in this run. */
  dryKeys: DryRunKeys;
  dryClaims: DryRunClaims;
  cancelled: boolean;
  /** Batches run their first phase (up to handing the writes over) one after another… */
  prepared: Promise<unknown>;
  /** …and their second (outcomes, results) in the same order. */
  finished: Promise<unknown>;
  /**
   * Results that wrote no user (failed, skipped) of batches already answered, and the index
   * they complete: stored with the next batch's transaction, or when the session closes.
   */
  unfinished: RecordResult[];
  unfinishedNext: number;
  /** Keys of batches prepared and not yet finished: a key sent again meanwhile gets their result. */
  recent: Map<string, { results: Array<RecordResult | undefined>; i: number }>;
  /** The claims of each batch handed to the store and not yet committed (see {@link claimsOf}). */
  committing: Set<ReadonlySet<string>>;
  /** Conflict updates handed to the store and not yet committed. */
  updating: number;
}

/** A job with what a reader wants to know about its progress. */
export interface ImportJobView extends ImportJob {
  counts: OutcomeCounts;
  /** Records per second of the current (or last) stream or upload. */
  rate: number;
  /** Milliseconds left at that rate, when the expected total is known and the job runs. */
  etaMs: number | undefined;
}

export interface BulkImportDeps {
  users: Pick<UserCommands, "checkHuman" | "prepareHuman" | "prepareMachine">;
  userStore: Pick<UserStore, "usernameRules" | "lastSequence" | "getUser" | "listMetadata">;
  idps: Pick<IdpCommands, "usableIdp">;
  store: BulkStore;
  newId: IdGenerator;
  now?: () => number;
}

/**
 * A record's input with the import's target. Object.assign, not `{ ...input, ...target }`: V8
 * copies a spread object and then adds the target's properties on a slow path, about 5 µs a
 * record (measured on Node 20), more than the rest of a dry run's checks of it.
 */
function withTarget<T extends object>(input: T, target: BulkTarget): T & BulkTarget {
  return Object.assign({}, input, { instanceId: target.instanceId, orgId: target.orgId, creator: target.creator, request: target.request });
}

const emptyCounts = (): OutcomeCounts => ({ created: 0, updated: 0, skipped: 0, failed: 0 });
const claimKey = (claim: { kind: string; value: string }) => `${claim.kind} ${claim.value}`;

const jobNotFound = () => BulkErrors.jobNotFound();

/** The error of a record as stored and answered: kind, id and message, never a value. */
function recordError(err: DomainError): RecordError {
  return { kind: err.kind, id: err.id, message: err.message };
}

export function createBulkImport(deps: BulkImportDeps) {
  const now = deps.now ?? Date.now;
  /** Sessions running in this process, by job id: one stream or upload per job at a time. */
  const running = new Map<string, SessionState>();

  /**
   * The reads of a create, remembered for one batch: a batch of a million-user import must not
   * ask for its organisation's domain policy once per user.
   */
  function batchLookups(dryRun: boolean): CreationLookups {
    const rules = new Map<string, ReturnType<CreationLookups["usernameRules"]>>();
    const idps = new Map<string, ReturnType<CreationLookups["usableIdp"]>>();
    return {
      usernameRules(instanceId, orgId, username) {
        const at = username.lastIndexOf("@");
        const key = `${orgId}/${at < 0 ? "" : username.slice(at + 1).toLowerCase()}`;
        let found = rules.get(key);
        if (!found) {
          found = deps.userStore.usernameRules(instanceId, orgId, username);
          rules.set(key, found);
        }
        return found;
      },
      lastSequence: (instanceId, userId) => deps.userStore.lastSequence(instanceId, userId),
      usableIdp(instanceId, orgId, id) {
        const key = `${orgId}/${id}`;
        let found = idps.get(key);
        if (!found) {
          found = deps.idps.usableIdp(instanceId, orgId, id);
          idps.set(key, found);
        }
        return found;
      },
      // A dry run checks a plaintext password's rules; the hash itself would be thrown away.
      ...(dryRun ? { hashPassword: async () => "" } : {}),
    };
  }

  /** A job of the target's organisation created by the caller; anyone else's is not found. */
  async function ownJob(target: BulkTarget, jobId: string): Promise<ImportJob> {
    const job = jobId === "" ? undefined : await deps.store.getJob(target.instanceId, jobId);
    if (!job || job.orgId !== target.orgId || job.creator !== target.creator) throw jobNotFound();
    return job;
  }

  async function createJob(target: BulkTarget, options: { onConflict: ConflictPolicy; expectedRecords?: number }, state: ImportJob["state"] = "OPEN") {
    if ((await deps.store.countActiveJobs(target.instanceId, target.orgId)) >= BULK_LIMITS.activeJobsPerOrg) {
      throw BulkErrors.tooManyActiveJobs(BULK_LIMITS.activeJobsPerOrg);
    }
    const at = now();
    const job: ImportJob = {
      instanceId: target.instanceId,
      id: deps.newId(),
      orgId: target.orgId,
      creator: target.creator,
      state,
      onConflict: options.onConflict,
      nextIndex: 0,
      expectedRecords: options.expectedRecords ?? 0,
      createdAt: at,
      startedAt: state === "RUNNING" ? at : undefined,
      finishedAt: undefined,
      runStartedAt: state === "RUNNING" ? at : undefined,
      runStartIndex: 0,
      changedAt: at,
    };
    await deps.store.createJob(job, target.request);
    return job;
  }

  /**
   * Starts a stream or an upload: a new job, the job named (resumed where the store says it
   * stopped), or a dry run without a job.
   */
  async function open(target: BulkTarget, options: ImportOptions): Promise<ImportSession> {
    const base = {
      target,
      dryRun: options.dryRun,
      counts: emptyCounts(),
      dryKeys: new DryRunKeys(),
      dryClaims: new DryRunClaims(),
      cancelled: false,
      prepared: Promise.resolve(),
      finished: Promise.resolve(),
      unfinished: [],
      unfinishedNext: -1,
      recent: new Map(),
      committing: new Set<ReadonlySet<string>>(),
      updating: 0,
    };
    if (options.dryRun && options.jobId === undefined) {
      const at = now();
      const job: ImportJob = {
        instanceId: target.instanceId,
        id: "",
        orgId: target.orgId,
        creator: target.creator,
        state: "RUNNING",
        onConflict: options.onConflict,
        nextIndex: 0,
        expectedRecords: options.expectedRecords ?? 0,
        createdAt: at,
        startedAt: at,
        finishedAt: undefined,
        runStartedAt: at,
        runStartIndex: 0,
        changedAt: at,
      };
      return { ...base, job: undefined, onConflict: options.onConflict, next: 0, dryJob: job } as SessionState;
    }
    if (options.dryRun) throw BulkErrors.dryRunResumed();
    let job: ImportJob;
    let next: number;
    if (options.jobId === undefined) {
      job = await createJob(
        target,
        { onConflict: options.onConflict, ...(options.expectedRecords ? { expectedRecords: options.expectedRecords } : {}) },
        "RUNNING",
      );
      next = 0;
    } else {
      job = await attachable(target, options.jobId);
      // Results committed after the job's index last moved (a crash between the two writes of a
      // batch) keep their indexes; new records are numbered after them.
      next = Math.max(job.nextIndex, (await deps.store.lastIndex(target.instanceId, job.id)) + 1);
      const at = now();
      const set = {
        state: "RUNNING" as const,
        runStartedAt: at,
        runStartIndex: job.nextIndex,
        startedAt: job.startedAt ?? at,
        ...(options.expectedRecords ? { expectedRecords: options.expectedRecords } : {}),
      };
      await deps.store.updateJob(target.instanceId, job.id, set, at, target.request);
      job = { ...job, ...set, changedAt: at };
    }
    const session: SessionState = { ...base, job, onConflict: job.onConflict, next };
    running.set(job.id, session);
    return session;
  }

  /** A job the caller may append to: its own, not cancelled, and not in use by another stream here. */
  async function attachable(target: BulkTarget, jobId: string): Promise<ImportJob> {
    const job = await ownJob(target, jobId);
    if (job.state === "CANCELLED") throw BulkErrors.jobCancelled();
    if (running.has(job.id)) throw BulkErrors.jobRunning();
    return job;
  }

  /** Ends a stream or upload: completed when it ended cleanly, else open for a resume. */
  async function close(session: ImportSession, completed: boolean): Promise<void> {
    const state = session as SessionState;
    if (!state.job) return;
    // Batches still under way finish first (their callers may have gone); then what they left.
    await state.prepared.catch(() => undefined);
    await state.finished.catch(() => undefined);
    running.delete(state.job.id);
    await flush(state);
    if (state.cancelled) return;
    const current = await deps.store.getJob(state.target.instanceId, state.job.id);
    if (!current || current.state === "CANCELLED") return;
    const at = now();
    await deps.store.updateJob(
      state.target.instanceId,
      state.job.id,
      completed ? { state: "COMPLETED", finishedAt: at } : { state: "OPEN" },
      at,
      state.target.request,
    );
  }

  /** Whether the job was cancelled (here, or by another replica) since the session started. */
  async function checkCancelled(state: SessionState): Promise<void> {
    if (!state.job) return;
    if (!state.cancelled) {
      const current = await deps.store.getJob(state.target.instanceId, state.job.id);
      state.cancelled = current?.state === "CANCELLED";
    }
    if (state.cancelled) throw BulkErrors.jobCancelled();
  }

  const keyOf = (record: BulkRecord): string => {
    if (record.key !== "") return record.key;
    if ("human" in record) return record.human.username.trim() || record.human.email.address.trim();
    if ("machine" in record) return record.machine.username.trim();
    return "";
  };

  /**
   * Imports one batch of records and resolves with their results in record order, once every
   * write of the batch is durably committed. Rejects (having written the batch or nothing of
   * it) when the store fails: the job can be resumed once the cause is gone.
   */
  function importBatch(session: ImportSession, records: readonly BulkRecord[]): Promise<RecordResult[]> {
    const state = session as SessionState;
    // The next batch may be read, validated and handed to the store while this one commits;
    // the order of indexes, commits and answers stays the order of the batches.
    const first = state.prepared.then(() => prepareBatch(state, records));
    state.prepared = first.catch(() => undefined);
    const second = Promise.all([first, state.finished]).then(([batch]) => finishBatch(state, batch));
    state.finished = second.catch(() => undefined);
    return second;
  }

  /** Writes what answered batches left (their failures and skips, and the job's index). */
  async function flush(state: SessionState): Promise<void> {
    if (!state.job || state.unfinishedNext < 0) return;
    const rest = state.unfinished.splice(0);
    const next = state.unfinishedNext;
    state.unfinishedNext = -1;
    await deps.store.finishBatch(state.target.instanceId, state.job.id, rest, next, now(), state.target.request);
  }

  interface PreparedBatch {
    results: Array<RecordResult | undefined>;
    keys: string[];
    /** The writes handed over; `type` is the user's type when `unit` no longer carries the change. */
    units: Array<{ i: number; unit: BulkUnit; type?: User["type"] }>;
    outcomes: Promise<unknown[]> | undefined;
    conflicts: Conflict[];
    duplicates: Array<[number, number]>;
    /** Records whose key an earlier batch, still under way when this one was prepared, had. */
    carried: Array<[number, { results: Array<RecordResult | undefined>; i: number }]>;
    fail: (i: number, err: DomainError) => RecordResult;
    /** The index after the batch's last record. */
    end: number;
  }

  /** The first phase of a batch: replays, indexes, validation, and the writes handed over. */
  async function prepareBatch(state: SessionState, records: readonly BulkRecord[]): Promise<PreparedBatch> {
    await checkCancelled(state);
    const { target } = state;
    const jobId = state.job?.id;
    const results: Array<RecordResult | undefined> = new Array(records.length);
    const keys = records.map(keyOf);

    // A key this job already imported is answered with its earlier result; a key given twice
    // in the batch is answered with the first one's.
    const earlier = state.dryRun ? state.dryKeys : await deps.store.findResults(target.instanceId, jobId!, [...new Set(keys.filter((key) => key !== ""))]);
    const firstOf = new Map<string, number>();
    /** Records whose key has a stored failure, which their result replaces. */
    const failedBefore = new Set<number>();
    const duplicates: Array<[number, number]> = [];
    const carried: Array<[number, { results: Array<RecordResult | undefined>; i: number }]> = [];
    const todo: number[] = [];
    keys.forEach((key, i) => {
      const inFlight = key === "" ? undefined : state.recent.get(key);
      if (inFlight) {
        carried.push([i, inFlight]);
        return;
      }
      const found = key === "" ? undefined : earlier.get(key);
      if (found && found.outcome !== "failed") {
        results[i] = { ...found, replayed: true };
        return;
      }
      if (found) failedBefore.add(i);
      const first = key === "" ? undefined : firstOf.get(key);
      if (first !== undefined) {
        duplicates.push([i, first]);
        return;
      }
      if (key !== "") firstOf.set(key, i);
      todo.push(i);
    });
    for (const i of todo) if (keys[i] !== "") state.recent.set(keys[i]!, { results, i });

    // Indexes in record order, then every record validated and built at once: plaintext
    // passwords are hashed concurrently on the hasher's threads, bounded by the batch.
    const indexOf = new Map<number, number>();
    for (const i of todo) {
      indexOf.set(i, state.next++);
      // A record without key or username is its own: it is known by its index.
      if (keys[i] === "") keys[i] = `@${indexOf.get(i)}`;
    }
    const lookups = batchLookups(state.dryRun);
    const prepareRecord = async (i: number): Promise<NewUser | DryRunPlan | DomainError> => {
      const record = records[i]!;
      try {
        if ("invalid" in record) throw record.invalid;
        // A dry run answers from the rules and the claims: it stops before building the rows
        // and events a write would need.
        if (state.dryRun) return await planRecord(record, target, lookups);
        if ("human" in record) return (await deps.users.prepareHuman(withTarget(record.human, target), lookups)).change;
        return (await deps.users.prepareMachine(withTarget(record.machine, target), lookups)).change;
      } catch (err) {
        if (isDomainError(err)) return err;
        throw err;
      }
    };
    const fail = (i: number, err: DomainError): RecordResult => ({
      index: indexOf.get(i)!,
      key: keys[i]!,
      outcome: "failed",
      userId: "",
      error: recordError(err),
    });

    const units: PreparedBatch["units"] = [];
    const planned: DryRunUnit[] = [];
    const staged: StagedUnits[] = [];
    const claims = new Set<string>();
    // Records are prepared a part at a time, and a real import hands each part's writes to the
    // store at once (for SQLite, encoded for its writer): a part's users, rows and events are let
    // go before the next part is built. Built whole, a batch's objects were alive at every
    // young-generation collection during its preparation and were copied and promoted; in parts,
    // most die young (BENCHMARKS.md, "Bulk import"). A dry run keeps only each record's plan.
    for (let at = 0; at < todo.length; at += PREPARE_PART) {
      const part = todo.slice(at, at + PREPARE_PART);
      const prepared = await Promise.all(part.map(prepareRecord));
      const written: PreparedBatch["units"] = [];
      part.forEach((i, n) => {
        const change = prepared[n]!;
        if (change instanceof DomainError) results[i] = fail(i, change);
        else if (!("user" in change)) planned.push({ i, result: { index: indexOf.get(i)!, key: keys[i]!, outcome: "created", userId: "" }, plan: change });
        else {
          const result: RecordResult = { index: indexOf.get(i)!, key: keys[i]!, outcome: "created", userId: change.user.id };
          written.push({ i, unit: { result, creation: change, ...(failedBefore.has(i) ? { replacesFailure: true } : {}) } });
        }
      });
      if (written.length === 0) continue;
      for (const claim of claimsOf(written)) claims.add(claim);
      staged.push(
        deps.store.stageUnits(
          target.instanceId,
          jobId,
          written.map(({ unit }) => unit),
        ),
      );
      // Under `fail` a conflict needs no more than the user's type: the rest of each change is
      // let go now, not kept (and promoted to the old generation) while the batch commits.
      if (state.onConflict === "fail") {
        for (const entry of written) {
          const type = entry.unit.creation?.user.type;
          entry.unit = { result: entry.unit.result };
          if (type !== undefined) entry.type = type;
        }
      }
      units.push(...written);
    }

    const conflicts: Conflict[] = [];
    let outcomes: Promise<unknown[]> | undefined;
    if (state.dryRun) {
      await dryRunClaims(state, planned, results, conflicts, fail);
    } else {
      // The results of answered batches that wrote no user go with this transaction.
      const rest = state.unfinished.splice(0);
      const finished = state.unfinishedNext < 0 ? undefined : { results: rest, nextIndex: state.unfinishedNext, at: now() };
      state.unfinishedNext = -1;
      // The store keeps batches in order only where it matters: when this batch claims a value
      // that a batch of this session still committing claims too (the earlier must win), or
      // while conflict updates are under way. Otherwise PostgreSQL runs it alongside the batch
      // before it.
      const unordered = state.updating === 0 && ![...state.committing].some((earlier) => overlaps(earlier, claims));
      state.committing.add(claims);
      outcomes = deps.store.commitStaged(target.instanceId, jobId, staged, finished, { unordered, request: target.request });
      const committed = () => void state.committing.delete(claims);
      outcomes.then(committed, committed);
    }
    return { results, keys, units, outcomes, conflicts, duplicates, carried, fail, end: state.next };
  }

  /** The second phase: each write's outcome, conflicts resolved, the results in record order. */
  async function finishBatch(state: SessionState, batch: PreparedBatch): Promise<RecordResult[]> {
    const { target } = state;
    const jobId = state.job?.id;
    const { results, units, conflicts, duplicates, fail } = batch;
    if (batch.outcomes) {
      const outcomes = await batch.outcomes;
      units.forEach(({ i, unit, type }, n) => {
        const outcome = outcomes[n];
        const claim = lostClaim(outcome);
        if (outcome === undefined) results[i] = unit.result;
        else if (claim !== undefined && isUsernameClaim(claim) && state.onConflict !== "fail") {
          const creation = unit.creation!;
          conflicts.push({ i, result: unit.result, claim: creation.uniques.find((c) => isUsernameClaim(c.kind))!, type: creation.user.type, creation });
        } else if (losesClaim(outcome, "bulk_record")) {
          // Another stream of this job, or an earlier batch still committing, had the key: its result stands.
          results[i] = { ...unit.result, replayed: true };
        } else {
          const err = creationError(outcome, unit.creation?.user.type ?? type);
          if (!isDomainError(err)) throw err;
          results[i] = fail(i, err);
        }
      });
      if (units.some((_, n) => losesClaim(outcomes[n], "bulk_record"))) {
        const stored = await deps.store.findResults(
          target.instanceId,
          jobId!,
          units.map(({ unit }) => unit.result.key),
        );
        units.forEach(({ i, unit }) => {
          const result = results[i];
          if (result?.replayed) results[i] = { ...(stored.get(unit.result.key) ?? result), replayed: true };
        });
      }
    }
    if (conflicts.length > 0) await resolveConflicts(state, conflicts, results, fail);

    for (const [i, first] of duplicates) results[i] = { ...results[first]!, replayed: true };
    for (const [i, earlier] of batch.carried) results[i] = { ...earlier.results[earlier.i]!, replayed: true };
    for (const [key, entry] of state.recent) if (entry.results === results) state.recent.delete(key);

    const done = results as RecordResult[];
    for (const result of done) state.counts[result.outcome]++;
    if (state.dryRun) {
      for (const result of done) if (result.key !== "") state.dryKeys.add(result.key, result);
    } else {
      // Failed and skipped records wrote no user: their results are stored with a later
      // transaction, together with the job's next index, so that a resumed job (which
      // continues at that index) neither repeats nor skips a record.
      state.unfinished.push(...done.filter((result) => !result.replayed && (result.outcome === "failed" || result.outcome === "skipped")));
      state.unfinishedNext = batch.end;
    }
    return done;
  }

  /**
   * What a dry run needs of a valid record: every rule run (`checkHuman`, the same checks a
   * create runs), then only its claims, its type and the id it chose; nothing is built.
   */
  async function planRecord(record: BulkRecord, target: BulkTarget, lookups: CreationLookups): Promise<DryRunPlan> {
    if ("human" in record) {
      const checked = await deps.users.checkHuman(withTarget(record.human, target), lookups);
      return { type: "human", uniques: checked.uniques, chosenId: record.human.userId };
    }
    if ("machine" in record) {
      // Machine users are few in an import, and their checks need the id (a username may fall back to it).
      const { change } = await deps.users.prepareMachine(withTarget(record.machine, target), lookups);
      return { type: "machine", uniques: change.uniques, chosenId: record.machine.userId };
    }
    throw record.invalid;
  }

  /**
   * A dry run's stand-in for the unique constraints: the claims of each record against those
   * stored and those of earlier records of the run.
   */
  async function dryRunClaims(
    state: SessionState,
    units: readonly DryRunUnit[],
    results: Array<RecordResult | undefined>,
    conflicts: Conflict[],
    fail: (i: number, err: DomainError) => RecordResult,
  ): Promise<void> {
    const { instanceId } = state.target;
    const claims = units.flatMap(({ plan }) => plan.uniques);
    const stored = await deps.store.claimOwners(instanceId, claims);
    // Only an id the record chose can be taken: a generated one is new. Remembering only those
    // keeps a dry run of a million records small.
    const chosenIds = units.flatMap(({ plan }) => (plan.chosenId === undefined ? [] : [plan.chosenId]));
    const existingIds = chosenIds.length === 0 ? new Set<string>() : await deps.store.existingUserIds(instanceId, chosenIds);
    for (const { i, result, plan } of units) {
      const { chosenId } = plan;
      const idTaken = chosenId !== undefined && (existingIds.has(chosenId) || state.dryClaims.has("user_id", chosenId));
      const taken = plan.uniques.find((claim) => (stored.size > 0 && stored.has(claimKey(claim))) || state.dryClaims.has(claim.kind, claim.value));
      if (taken && isUsernameClaim(taken.kind) && state.onConflict !== "fail") {
        conflicts.push({ i, result, claim: taken, type: plan.type });
        continue;
      }
      if (taken || idTaken) {
        results[i] = fail(i, takenClaimError(taken?.kind ?? "user_id", CLAIMS.newUser("human")));
        continue;
      }
      // A username is often the record's key too: the run then keeps one string for both.
      for (const claim of plan.uniques) state.dryClaims.add(claim.kind, claim.value === result.key ? result.key : claim.value);
      if (chosenId !== undefined) state.dryClaims.add("user_id", chosenId);
      // Nothing is stored, so there is no user id to name.
      results[i] = result;
    }
  }

  /** Records whose username is taken, under `skip` or `update`. */
  async function resolveConflicts(
    state: SessionState,
    conflicts: readonly Conflict[],
    results: Array<RecordResult | undefined>,
    fail: (i: number, err: DomainError) => RecordResult,
  ): Promise<void> {
    const { instanceId } = state.target;
    const owners = await deps.store.claimOwners(
      instanceId,
      conflicts.map(({ claim }) => claim),
    );
    const updates: Array<{ i: number; unit: BulkUnit }> = [];
    for (const { i, result, claim, type, creation } of conflicts) {
      const key = claimKey(claim);
      const isStored = owners.has(key);
      // A claim planned earlier in a dry run has no stored owner to name.
      const owner = owners.get(key) ?? (state.dryRun && state.dryClaims.has(claim.kind, claim.value) ? "" : undefined);
      if (owner === undefined) {
        // Removed meanwhile: the record is not imported; sending it again imports it.
        results[i] = fail(i, takenClaimError(claim.kind, CLAIMS.newUser("human")));
      } else if (state.onConflict === "skip") {
        results[i] = { ...result, outcome: "skipped", userId: state.dryRun && !isStored ? "" : owner };
      } else if (state.dryRun && !isStored) {
        // Updating a user created earlier in the same dry run.
        results[i] = { ...result, outcome: "updated", userId: "" };
      } else {
        const existing = isStored ? await deps.userStore.getUser(instanceId, owner) : undefined;
        const foreign = existing && foreignUser(state, existing, type);
        if (!existing || foreign) {
          results[i] = fail(i, foreign ?? takenClaimError(claim.kind, CLAIMS.newUser("human")));
        } else if (state.dryRun) {
          results[i] = { ...result, outcome: "updated", userId: existing.id };
        } else {
          const update = planUpdate(state, existing, creation!);
          const metadata = await deps.userStore.listMetadata(instanceId, existing.id);
          const changed = withMetadata(update, creation!, metadata);
          updates.push({ i, unit: { result: { ...result, outcome: "updated", userId: existing.id }, update: changed } });
        }
      }
    }
    if (updates.length === 0) return;
    state.updating++;
    const outcomes = await deps.store
      .commitUnits(
        instanceId,
        state.job?.id,
        updates.map(({ unit }) => unit),
        undefined,
        { request: state.target.request },
      )
      .finally(() => state.updating--);
    updates.forEach(({ i, unit }, n) => {
      const outcome = outcomes[n];
      if (outcome === undefined) results[i] = unit.result;
      else if (losesClaim(outcome, "sequence")) {
        results[i] = fail(i, BulkErrors.changedConcurrently());
      } else {
        const err = creationError(outcome);
        if (!isDomainError(err)) throw err;
        results[i] = fail(i, err);
      }
    });
  }

  /** A user of another organisation, or of the other type, is not the record's to change. */
  function foreignUser(state: SessionState, existing: User, type: User["type"]): DomainError | undefined {
    if (existing.orgId !== state.target.orgId || existing.type !== type) return takenClaimError("username", CLAIMS.username);
    return undefined;
  }

  /**
   * The update that makes a stored user of the job's organisation (`foreignUser` says it is not
   * foreign) look like the record: each changed part with its event, as the single changes write them.
   */
  function planUpdate(state: SessionState, existing: User, change: NewUser): UserUpdate {
    const at = now();
    const events: NewEvent[] = [];
    const set: NonNullable<UserUpdate["set"]> = {};
    const human = change.user.human;
    if (human && existing.human) {
      const before = existing.human;
      if (!sameProfile(before.profile, human.profile)) {
        set.profile = human.profile;
        events.push({
          type: "user.human.profile.changed",
          payload: {
            firstName: human.profile.givenName,
            lastName: human.profile.familyName,
            nickName: human.profile.nickName,
            displayName: human.profile.displayName,
            preferredLanguage: human.profile.preferredLanguage,
            gender: human.profile.gender,
          },
        });
      }
      if (before.email.address !== human.email.address) {
        set.email = human.email.address;
        set.emailVerified = human.email.verified;
        events.push({ type: "user.human.email.changed", payload: { email: human.email.address } });
        if (human.email.verified) events.push({ type: "user.human.email.verified", payload: {} });
      } else if (human.email.verified && !before.email.verified) {
        set.emailVerified = true;
        events.push({ type: "user.human.email.verified", payload: {} });
      }
      if (human.phone.number !== "" && before.phone.number !== human.phone.number) {
        set.phone = human.phone.number;
        set.phoneVerified = human.phone.verified;
        events.push({ type: "user.human.phone.changed", payload: { phone: human.phone.number } });
        if (human.phone.verified) events.push({ type: "user.human.phone.verified", payload: {} });
      }
      if (change.passwordHash !== undefined) {
        set.passwordHash = change.passwordHash;
        set.passwordChangeRequired = human.passwordChangeRequired;
        events.push({ type: "user.human.password.changed", payload: { changeRequired: human.passwordChangeRequired } });
      }
    }
    return { instanceId: existing.instanceId, userId: existing.id, expectedSequence: existing.sequence, events, at, creator: state.target.creator, set };
  }

  /** Adds the record's metadata entries whose values differ from the stored ones. */
  function withMetadata(update: UserUpdate, change: NewUser, stored: ReadonlyArray<{ key: string; value: Uint8Array }>): UserUpdate {
    const current = new Map(stored.map((entry) => [entry.key, Buffer.from(entry.value).toString("base64")]));
    const entries = (change.metadata ?? []).filter((entry) => current.get(entry.key) !== Buffer.from(entry.value).toString("base64"));
    if (entries.length === 0) return update;
    return { ...update, events: [...update.events, ...entries.map(metadataSetEvent)], setMetadata: entries };
  }

  /** A job of the caller, with its counts, rate and estimated time left. */
  async function getJob(target: BulkTarget, jobId: string): Promise<ImportJobView> {
    return view(await ownJob(target, jobId));
  }

  async function view(job: ImportJob): Promise<ImportJobView> {
    const counts = await deps.store.countResults(job.instanceId, job.id);
    const live = running.get(job.id);
    const nextIndex = live ? Math.max(job.nextIndex, live.next) : job.nextIndex;
    const end = job.state === "RUNNING" ? now() : job.state === "COMPLETED" ? (job.finishedAt ?? job.changedAt) : job.changedAt;
    const seconds = job.runStartedAt === undefined ? 0 : Math.max(end - job.runStartedAt, 1) / 1000;
    const rate = seconds === 0 ? 0 : Math.max(nextIndex - job.runStartIndex, 0) / seconds;
    const left = job.expectedRecords - nextIndex;
    const etaMs = job.state === "RUNNING" && left > 0 && rate > 0 ? Math.round((left / rate) * 1000) : undefined;
    return { ...job, nextIndex, counts, rate, etaMs };
  }

  async function listJobs(target: BulkTarget, offset: number, limit: number) {
    const page = await deps.store.listJobs(target.instanceId, target.orgId, target.creator, offset, limit);
    return { total: page.total, jobs: await Promise.all(page.jobs.map(view)) };
  }

  async function listResults(target: BulkTarget, jobId: string, outcome: RecordResult["outcome"] | undefined, offset: number, limit: number) {
    const job = await ownJob(target, jobId);
    return deps.store.listResults(job.instanceId, job.id, outcome, offset, limit);
  }

  /** Cancels a job: its running stream or upload stops before its next batch. */
  async function cancel(target: BulkTarget, jobId: string): Promise<ImportJobView> {
    const job = await ownJob(target, jobId);
    if (job.state === "CANCELLED") return view(job);
    const at = now();
    await deps.store.updateJob(job.instanceId, job.id, { state: "CANCELLED", finishedAt: at }, at, target.request);
    const live = running.get(job.id);
    if (live) live.cancelled = true;
    return view({ ...job, state: "CANCELLED", finishedAt: at, changedAt: at });
  }

  /** The job a session imports into, as it stands (a dry run's is not stored). */
  function sessionJob(session: ImportSession): ImportJobView {
    const state = session as SessionState & { dryJob?: ImportJob };
    const job = state.job ?? state.dryJob!;
    // Where the session starts numbering: past results committed after the job row's index last
    // moved (a crash between the two writes), so a client resuming from here sends nothing twice.
    return { ...job, nextIndex: Math.max(job.nextIndex, state.next), counts: emptyCounts(), rate: 0, etaMs: undefined };
  }

  return { open, close, importBatch, createJob, getJob, listJobs, listResults, cancel, attachable, sessionJob };
}

export type BulkImport = ReturnType<typeof createBulkImport>;

/** What the creations of a batch claim: their unique claims and their user ids. */
function claimsOf(units: ReadonlyArray<{ unit: BulkUnit }>): ReadonlySet<string> {
  const claims = new Set<string>();
  for (const { unit } of units) {
    const creation = unit.creation;
    if (!creation) continue;
    claims.add(`user_id ${creation.user.id}`);
    for (const claim of creation.uniques) claims.add(claimKey(claim));
  }
  return claims;
}

function overlaps(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  for (const value of small) if (large.has(value)) return true;
  return false;
}

function sameProfile(a: HumanProfile, b: HumanProfile): boolean {
  return (
    a.givenName === b.givenName &&
    a.familyName === b.familyName &&
    a.nickName === b.nickName &&
    a.displayName === b.displayName &&
    a.preferredLanguage === b.preferredLanguage &&
    a.gender === b.gender
  );
}

/**
 * A dry run's results by key, for a key sent again, kept as the store keeps a job's: the first
 * result of a key, replaced when it was a failure (`BulkUnit.replacesFailure`). Most results are
 * "created" with no user id, kept as their index alone: a dry run of a million records must not
 * hold a million objects.
 */
class DryRunKeys {
  readonly #results = new Map<string, number | RecordResult>();

  get(key: string): RecordResult | undefined {
    const found = this.#results.get(key);
    return typeof found === "number" ? { index: found, key, outcome: "created", userId: "" } : found;
  }

  /**
   * Remembers a record's result, unless it was answered from an earlier one. A record that was
   * not is the first of its key in the run, or follows a failure of it (a batch's keys are
   * answered from the batch itself, or from earlier batches still under way): its result is kept.
   */
  add(key: string, result: RecordResult): void {
    if (result.replayed) return;
    const plain = result.outcome === "created" && result.userId === "" && result.key === key && result.error === undefined;
    this.#results.set(key, plain ? result.index : result);
  }
}

/** The unique claims a dry run planned, by kind: values only, no `kind value` string per claim. */
class DryRunClaims {
  readonly #byKind = new Map<string, Set<string>>();

  has(kind: string, value: string): boolean {
    return this.#byKind.get(kind)?.has(value) ?? false;
  }

  add(kind: string, value: string): void {
    let values = this.#byKind.get(kind);
    if (!values) {
      values = new Set();
      this.#byKind.set(kind, values);
    }
    values.add(value);
  }
}

/** What a dry run keeps of a valid record: its type, its unique claims and the id it chose. */
interface DryRunPlan {
  type: User["type"];
  uniques: ReadonlyArray<{ kind: string; value: string }>;
  chosenId: string | undefined;
}

interface DryRunUnit {
  i: number;
  /** The record's result if its claims are free. */
  result: RecordResult;
  plan: DryRunPlan;
}

/** A record whose username is taken, under `skip` or `update`; `creation` for a real import's update. */
interface Conflict {
  i: number;
  result: RecordResult;
  claim: { kind: string; value: string };
  type: User["type"];
  creation?: NewUser;
}
