/**
 * The BulkStore contract (src/domain/ports.ts) as the bulk import relies on it
 * (src/domain/bulk-import.ts): jobs as stored, and commitUnits writing each record's user and
 * result together under its own savepoint, answering each unit's outcome while the others commit;
 * a key is imported once per job (a second result is UniqueViolation("bulk_record")); results
 * that wrote no user replace only earlier failures; the job's next index never moves back.
 * Behaviour only: the engine under it (batching, savepoints, workers) is free to change.
 */
import { describe, expect, it } from "vitest";
import type { BulkUnit, ImportJob, NewUser, RecordResult } from "../../src/domain/ports.js";
import { UniqueViolation } from "../../src/domain/ports.js";
import { createBulkStore } from "../../src/store/bulk-store.js";
import { createUserStore } from "../../src/store/user-store.js";
import { T0, ids, newHuman, storesUnderTest, useStore } from "../helpers/stores.js";

describe.each(storesUnderTest)("BulkStore on %s", (kind) => {
  const store = useStore(kind);
  const bulk = () => createBulkStore(store());
  const users = () => createUserStore(store());

  function job(overrides: Partial<ImportJob> = {}): ImportJob {
    return {
      instanceId: ids("inst"),
      id: ids("job"),
      orgId: ids("org"),
      creator: "importer",
      state: "OPEN",
      onConflict: "fail",
      nextIndex: 0,
      expectedRecords: 0,
      createdAt: T0,
      startedAt: undefined,
      finishedAt: undefined,
      runStartedAt: undefined,
      runStartIndex: 0,
      changedAt: T0,
      ...overrides,
    };
  }

  async function openJob(overrides: Partial<ImportJob> = {}) {
    const created = job(overrides);
    await bulk().createJob(created);
    return created;
  }

  const created = (index: number, creation: NewUser, key = `key-${index}`): BulkUnit => ({
    result: { index, key, outcome: "created", userId: creation.user.id },
    creation,
  });
  const failed = (index: number, key = `key-${index}`): RecordResult => ({
    index,
    key,
    outcome: "failed",
    userId: "",
    error: { kind: "InvalidArgument", id: "COMMAND-xyz", message: "Email is invalid" },
  });

  describe("jobs", () => {
    it("stores a job and reads it back as written", async () => {
      const written = await openJob({ expectedRecords: 10, onConflict: "skip" });
      expect(await bulk().getJob(written.instanceId, written.id)).toEqual(written);
      expect(await bulk().getJob(written.instanceId, ids("job"))).toBeUndefined();
      expect(await bulk().getJob(ids("inst"), written.id)).toBeUndefined();
    });

    it("updates the fields asked for and the change time", async () => {
      const written = await openJob();
      await bulk().updateJob(written.instanceId, written.id, { state: "RUNNING", startedAt: T0 + 5, runStartedAt: T0 + 5, runStartIndex: 3 }, T0 + 6);
      expect(await bulk().getJob(written.instanceId, written.id)).toEqual({
        ...written,
        state: "RUNNING",
        startedAt: T0 + 5,
        runStartedAt: T0 + 5,
        runStartIndex: 3,
        changedAt: T0 + 6,
      });
      await bulk().updateJob(written.instanceId, written.id, { state: "COMPLETED", finishedAt: T0 + 9, nextIndex: 7, expectedRecords: 7 }, T0 + 9);
      expect(await bulk().getJob(written.instanceId, written.id)).toMatchObject({
        state: "COMPLETED",
        finishedAt: T0 + 9,
        nextIndex: 7,
        expectedRecords: 7,
        startedAt: T0 + 5,
      });
    });

    it("lists a creator's jobs in an organisation newest first, and counts the active ones", async () => {
      const instanceId = ids("inst");
      const orgId = ids("org");
      const older = await openJob({ instanceId, orgId, createdAt: T0 + 1 });
      const newer = await openJob({ instanceId, orgId, createdAt: T0 + 2, state: "RUNNING" });
      await openJob({ instanceId, orgId, createdAt: T0 + 3, creator: "someone-else", state: "COMPLETED" });
      await openJob({ instanceId, orgId: ids("org"), createdAt: T0 + 4 });
      const all = await bulk().listJobs(instanceId, orgId, "importer", 0, 10);
      expect(all.total).toBe(2);
      expect(all.jobs.map((j) => j.id)).toEqual([newer.id, older.id]);
      expect(await bulk().listJobs(instanceId, orgId, "importer", 1, 10)).toMatchObject({ total: 2, jobs: [{ id: older.id }] });
      expect(await bulk().countActiveJobs(instanceId, orgId)).toBe(2);
      await bulk().updateJob(instanceId, newer.id, { state: "CANCELLED" }, T0 + 5);
      expect(await bulk().countActiveJobs(instanceId, orgId)).toBe(1);
    });
  });

  describe("commitUnits", () => {
    it("writes each unit's user with its result, and answers each unit's outcome", async () => {
      const j = await openJob();
      const scope = { instanceId: j.instanceId, orgId: j.orgId };
      const holder = newHuman(scope);
      await users().createUser(holder);
      const a = newHuman(scope);
      const taken = newHuman({ ...scope, username: holder.user.username });
      const c = newHuman(scope);
      const outcomes = await bulk().commitUnits(j.instanceId, j.id, [created(0, a), created(1, taken), created(2, c)]);
      expect(outcomes[0]).toBeUndefined();
      expect(outcomes[1]).toBeInstanceOf(UniqueViolation);
      expect((outcomes[1] as UniqueViolation).kind).toBe("username");
      expect(outcomes[2]).toBeUndefined();
      expect(outcomes).toHaveLength(3);

      expect((await users().getUser(j.instanceId, a.user.id))?.username).toBe(a.user.username);
      expect(await users().getUser(j.instanceId, taken.user.id)).toBeUndefined();
      expect(await users().lastSequence(j.instanceId, taken.user.id)).toBe(0);
      expect((await users().getUser(j.instanceId, c.user.id))?.username).toBe(c.user.username);
      const stored = await bulk().findResults(j.instanceId, j.id, ["key-0", "key-1", "key-2"]);
      expect([...stored.keys()].sort()).toEqual(["key-0", "key-2"]);
      expect(stored.get("key-0")).toEqual({ index: 0, key: "key-0", outcome: "created", userId: a.user.id });
      expect(await bulk().lastIndex(j.instanceId, j.id)).toBe(2);
    });

    it("imports a key once per job: a second result is UniqueViolation('bulk_record') and writes no user", async () => {
      const j = await openJob();
      const scope = { instanceId: j.instanceId, orgId: j.orgId };
      const first = newHuman(scope);
      expect(await bulk().commitUnits(j.instanceId, j.id, [created(0, first, "same")])).toEqual([undefined]);
      const second = newHuman(scope);
      const [outcome] = await bulk().commitUnits(j.instanceId, j.id, [created(1, second, "same")]);
      expect(outcome).toMatchObject({ name: "UniqueViolation", kind: "bulk_record" });
      expect(await users().getUser(j.instanceId, second.user.id)).toBeUndefined();
      expect((await bulk().findResults(j.instanceId, j.id, ["same"])).get("same")?.userId).toBe(first.user.id);
      // The same key is free in another job.
      const other = await openJob(scope);
      expect(await bulk().commitUnits(j.instanceId, other.id, [created(0, newHuman(scope), "same")])).toEqual([undefined]);
    });

    it("lets concurrent commits of one key import it once", async () => {
      const j = await openJob();
      const scope = { instanceId: j.instanceId, orgId: j.orgId };
      const attempts = Array.from({ length: 4 }, (_, i) => created(i, newHuman(scope), "contended"));
      const outcomes = (await Promise.all(attempts.map((unit) => bulk().commitUnits(j.instanceId, j.id, [unit])))).flat();
      expect(outcomes.filter((o) => o === undefined)).toHaveLength(1);
      for (const o of outcomes.filter((o) => o !== undefined)) expect(o).toMatchObject({ kind: "bulk_record" });
      const existing = await bulk().existingUserIds(
        j.instanceId,
        attempts.map((unit) => unit.creation!.user.id),
      );
      expect(existing.size).toBe(1);
    });

    it("replaces a stored failure of the key when asked to", async () => {
      const j = await openJob();
      await bulk().finishBatch(j.instanceId, j.id, [failed(0, "retry")], 1, T0 + 1);
      const fixed = newHuman({ instanceId: j.instanceId, orgId: j.orgId });
      const [outcome] = await bulk().commitUnits(j.instanceId, j.id, [{ ...created(5, fixed, "retry"), replacesFailure: true }]);
      expect(outcome).toBeUndefined();
      expect((await bulk().findResults(j.instanceId, j.id, ["retry"])).get("retry")).toEqual({
        index: 5,
        key: "retry",
        outcome: "created",
        userId: fixed.user.id,
      });
      expect(await bulk().countResults(j.instanceId, j.id)).toEqual({ created: 1, updated: 0, skipped: 0, failed: 0 });
    });

    it("updates existing users as units", async () => {
      const j = await openJob();
      const existing = newHuman({ instanceId: j.instanceId, orgId: j.orgId });
      await users().createUser(existing);
      const update: BulkUnit = {
        result: { index: 0, key: "upd", outcome: "updated", userId: existing.user.id },
        update: {
          instanceId: j.instanceId,
          userId: existing.user.id,
          expectedSequence: 1,
          events: [{ type: "user.human.profile.changed", payload: {} }],
          at: T0 + 10,
          creator: "importer",
          set: { email: "updated@example.com" },
        },
      };
      const stale: BulkUnit = { ...update, result: { ...update.result, index: 1, key: "upd-2" } };
      const outcomes = await bulk().commitUnits(j.instanceId, j.id, [update]);
      expect(outcomes).toEqual([undefined]);
      expect(await users().getUser(j.instanceId, existing.user.id)).toMatchObject({ sequence: 2, human: { email: { address: "updated@example.com" } } });
      // The same update again is built on a stale sequence: refused, and no result stored for it.
      expect((await bulk().commitUnits(j.instanceId, j.id, [stale]))[0]).toMatchObject({ kind: "sequence" });
      expect((await bulk().findResults(j.instanceId, j.id, ["upd", "upd-2"])).size).toBe(1);
    });

    it("writes units without a job (no results), and answers nothing for no units", async () => {
      const instanceId = ids("inst");
      const lone = newHuman({ instanceId, orgId: ids("org") });
      expect(await bulk().commitUnits(instanceId, undefined, [created(0, lone)])).toEqual([undefined]);
      expect(await users().getUser(instanceId, lone.user.id)).toBeDefined();
      expect(await bulk().commitUnits(instanceId, undefined, [])).toEqual([]);
    });

    it("writes earlier batches' results and next index in the same transaction", async () => {
      const j = await openJob();
      const user = newHuman({ instanceId: j.instanceId, orgId: j.orgId });
      const outcomes = await bulk().commitUnits(j.instanceId, j.id, [created(3, user)], {
        results: [failed(0), { index: 1, key: "key-1", outcome: "skipped", userId: ids("other") }],
        nextIndex: 3,
        at: T0 + 20,
      });
      expect(outcomes).toEqual([undefined]);
      expect(await bulk().countResults(j.instanceId, j.id)).toEqual({ created: 1, updated: 0, skipped: 1, failed: 1 });
      expect(await bulk().getJob(j.instanceId, j.id)).toMatchObject({ nextIndex: 3, changedAt: T0 + 20 });
    });
  });

  describe("finishBatch and results", () => {
    it("stores results that wrote no user, replacing only earlier failures, and never moves the next index back", async () => {
      const j = await openJob();
      const user = newHuman({ instanceId: j.instanceId, orgId: j.orgId });
      await bulk().commitUnits(j.instanceId, j.id, [created(0, user, "kept")]);
      await bulk().finishBatch(j.instanceId, j.id, [failed(1, "again"), failed(2)], 3, T0 + 1);
      expect(await bulk().getJob(j.instanceId, j.id)).toMatchObject({ nextIndex: 3, changedAt: T0 + 1 });

      const skipped: RecordResult = { index: 4, key: "again", outcome: "skipped", userId: user.user.id };
      await bulk().finishBatch(j.instanceId, j.id, [failed(5, "kept"), skipped], 2, T0 + 2);
      const stored = await bulk().findResults(j.instanceId, j.id, ["kept", "again", "key-2", "missing"]);
      expect(stored.get("kept")).toMatchObject({ outcome: "created", index: 0 });
      expect(stored.get("again")).toEqual(skipped);
      expect(stored.get("key-2")).toEqual(failed(2));
      expect(stored.has("missing")).toBe(false);
      expect((await bulk().getJob(j.instanceId, j.id))?.nextIndex).toBe(3);
      expect(await bulk().lastIndex(j.instanceId, j.id)).toBe(4);
    });

    it("counts and lists results by outcome in record order, with paging", async () => {
      const j = await openJob();
      expect(await bulk().lastIndex(j.instanceId, j.id)).toBe(-1);
      expect(await bulk().countResults(j.instanceId, j.id)).toEqual({ created: 0, updated: 0, skipped: 0, failed: 0 });
      const user = newHuman({ instanceId: j.instanceId, orgId: j.orgId });
      await bulk().commitUnits(j.instanceId, j.id, [created(2, user)]);
      await bulk().finishBatch(j.instanceId, j.id, [failed(3), failed(0), failed(1)], 4, T0);
      expect(await bulk().countResults(j.instanceId, j.id)).toEqual({ created: 1, updated: 0, skipped: 0, failed: 3 });
      const all = await bulk().listResults(j.instanceId, j.id, undefined, 0, 10);
      expect(all.total).toBe(4);
      expect(all.results.map((r) => r.index)).toEqual([0, 1, 2, 3]);
      const failures = await bulk().listResults(j.instanceId, j.id, "failed", 1, 1);
      expect(failures).toEqual({ total: 3, results: [failed(1)] });
      expect(await bulk().listResults(j.instanceId, j.id, "updated", 0, 10)).toEqual({ total: 0, results: [] });
    });

    it("finds results for many keys at once", async () => {
      const j = await openJob();
      const results = Array.from({ length: 1200 }, (_, i) => failed(i));
      await bulk().finishBatch(j.instanceId, j.id, results, 1200, T0);
      const found = await bulk().findResults(
        j.instanceId,
        j.id,
        results.map((r) => r.key),
      );
      expect(found.size).toBe(1200);
      expect(found.get("key-1199")).toEqual(failed(1199));
    });
  });

  describe("claimOwners and existingUserIds", () => {
    it("answers the owners of stored claims by 'kind value', and which user ids exist", async () => {
      const instanceId = ids("inst");
      const user = newHuman({ instanceId, orgId: ids("org") });
      await users().createUser(user);
      const claim = user.uniques[0]!;
      const owners = await bulk().claimOwners(instanceId, [claim, { kind: claim.kind, value: "free-name" }, { kind: "idp_link", value: claim.value }]);
      expect(Object.fromEntries(owners)).toEqual({ [`${claim.kind} ${claim.value}`]: user.user.id });
      expect(await bulk().claimOwners(ids("inst"), [claim])).toEqual(new Map());
      // Claims are read in lists of 500: the stored one in the second, after 600 free ones.
      const free = Array.from({ length: 600 }, (_, i) => ({ kind: claim.kind, value: `free-${i}` }));
      expect(Object.fromEntries(await bulk().claimOwners(instanceId, [...free, claim]))).toEqual({ [`${claim.kind} ${claim.value}`]: user.user.id });
      const many = [user.user.id, ...Array.from({ length: 700 }, () => ids("absent"))];
      expect([...(await bulk().existingUserIds(instanceId, many))]).toEqual([user.user.id]);
      expect((await bulk().existingUserIds(instanceId, [])).size).toBe(0);
    });
  });
});
