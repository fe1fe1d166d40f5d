/**
 * Import jobs over REST for clients that cannot stream: create a job, upload NDJSON from `fetch`
 * (processed as it arrives, never buffered whole), read the job's progress, list its results by
 * outcome with paging, cancel it; jobs belong to their organisation and creator. On SQLite, and
 * on PostgreSQL when USERPORT_TEST_DATABASE_URL is set.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { beforeAll, describe, expect, it } from "vitest";
import { bcryptHash, createApiCaller, GOOD_PASSWORD, uniqueEmail, uniqueName, useUserport } from "./helpers/fixtures.js";

const up = useUserport();
let HASH = "";
beforeAll(() => {
  HASH = bcryptHash(GOOD_PASSWORD, 4);
});

const line = (key: string, extra: JsonObject = {}) =>
  JSON.stringify({
    key,
    human: {
      username: uniqueName("nd"),
      profile: { givenName: "Nd", familyName: "Json" },
      email: { email: uniqueEmail("nd"), isVerified: true },
      hashedPassword: { hash: HASH },
      ...extra,
    },
  });

async function api(path: string, init: { method?: string; body?: JsonObject; token?: string; headers?: Record<string, string> } = {}) {
  const response = await fetch(`${up.server.url}/migration/v1${path}`, {
    method: init.method ?? (init.body ? "POST" : "GET"),
    headers: {
      authorization: `Bearer ${init.token ?? up.server.token}`,
      ...(init.body ? { "content-type": "application/json" } : {}),
      ...init.headers,
    },
    ...(init.body ? { body: JSON.stringify(init.body) } : {}),
  });
  return { status: response.status, json: (await response.json()) as JsonObject };
}

/** Uploads NDJSON as a streamed request body (chunked, HTTP/1.1), as a browser or curl would. */
async function upload(jobId: string, body: ReadableStream<Uint8Array> | string, token = up.server.token, headers: Record<string, string> = {}) {
  const response = await fetch(`${up.server.url}/migration/v1/jobs/${jobId}/records`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/x-ndjson", ...headers },
    body,
    duplex: "half",
  } as RequestInit);
  return { status: response.status, json: (await response.json()) as JsonObject };
}

describe("import jobs over REST", () => {
  it("creates a job, imports an NDJSON upload, reports counts, rate and times, and lists failed records with paging", async () => {
    const created = await api("/jobs", { body: { expectedRecords: "5" } });
    expect(created.status).toBe(200);
    const job = created.json.job as JsonObject;
    expect(job).toMatchObject({ state: "IMPORT_JOB_STATE_OPEN", expectedRecords: "5", onConflict: "CONFLICT_POLICY_FAIL" });
    const ndjson = `${[line("a"), line("b", { email: { email: "broken", isVerified: true } }), "{not json", line("c"), line("d")].join("\n")}\n`;
    const uploaded = await upload(String(job.id), ndjson);
    expect(uploaded.status).toBe(200);
    expect(uploaded.json.job).toMatchObject({ state: "IMPORT_JOB_STATE_COMPLETED", recordsDone: "5", created: "3", failed: "2", nextIndex: "5" });

    const read = await api(`/jobs/${job.id}`);
    const view = read.json.job as JsonObject;
    expect(view).toMatchObject({ created: "3", failed: "2" });
    for (const field of ["createdAt", "startedAt", "finishedAt"]) expect(view[field]).toMatch(/^\d{4}-/);
    expect(Number(view.rate)).toBeGreaterThan(0);

    const page1 = await api(`/jobs/${job.id}/results/_search`, { body: { outcome: "IMPORT_OUTCOME_FAILED", limit: 1 } });
    expect(page1.json.totalResult).toBe("2");
    // AddHumanUser's PGV email rule (ZITADEL's user/v2 email.proto), named down to the field.
    expect(page1.json.result).toEqual([
      {
        index: "1",
        key: "b",
        outcome: "IMPORT_OUTCOME_FAILED",
        error: {
          code: 3,
          message:
            "invalid ImportRecord.Human: embedded message failed validation | caused by: invalid AddHumanUserRequest.Email: embedded message failed validation | caused by: invalid SetHumanEmail.Email: value must be a valid email address | caused by: mail: missing '@' or angle-addr",
        },
      },
    ]);
    const page2 = await api(`/jobs/${job.id}/results/_search`, { body: { outcome: "IMPORT_OUTCOME_FAILED", limit: 1, offset: "1" } });
    expect(page2.json.result).toEqual([
      { index: "2", key: "@2", outcome: "IMPORT_OUTCOME_FAILED", error: { code: 3, id: "UP-BULK13", message: "The line is not JSON" } },
    ]);
    const createdOnly = await api(`/jobs/${job.id}/results/_search`, { body: { outcome: "IMPORT_OUTCOME_CREATED" } });
    expect((createdOnly.json.result as JsonObject[]).map((r) => r.key)).toEqual(["a", "c", "d"]);
    expect(JSON.stringify([uploaded.json, read.json, page1.json, createdOnly.json])).not.toContain(HASH);

    const listed = await api("/jobs/_search", { body: {} });
    expect((listed.json.result as JsonObject[]).map((j) => j.id)).toContain(job.id);
  });

  it("imports an upload as it arrives: the first records are committed while the body is still open", async () => {
    const job = (await api("/jobs", { body: {} })).json.job as JsonObject;
    const first = `${Array.from({ length: 1000 }, (_, i) => line(`early-${i}`)).join("\n")}\n`;
    let push!: (text: string | null) => void;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        push = (text) => (text === null ? controller.close() : controller.enqueue(new TextEncoder().encode(text)));
      },
    });
    const done = upload(String(job.id), body);
    push(first);
    // The body is still open: the job shows the first batch committed before the rest is sent.
    let created = 0;
    for (let attempt = 0; attempt < 600 && created < 1000; attempt++) {
      created = Number(((await api(`/jobs/${job.id}`)).json.job as JsonObject).created ?? 0);
      if (created < 1000) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(created).toBe(1000);
    const running = (await api(`/jobs/${job.id}`)).json.job as JsonObject;
    expect(running.state).toBe("IMPORT_JOB_STATE_RUNNING");
    push(`${line("late")}\n`);
    push(null);
    const uploaded = await done;
    expect(uploaded.json.job).toMatchObject({ created: "1001", state: "IMPORT_JOB_STATE_COMPLETED" });
  });

  it("a cancelled job takes no more records; what was imported stays", async () => {
    const job = (await api("/jobs", { body: {} })).json.job as JsonObject;
    expect((await upload(String(job.id), `${line("one")}\n`)).status).toBe(200);
    const cancelled = await api(`/jobs/${job.id}/_cancel`, { method: "POST" });
    expect(cancelled.json.job).toMatchObject({ state: "IMPORT_JOB_STATE_CANCELLED", created: "1" });
    const refused = await upload(String(job.id), `${line("two")}\n`);
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ code: 9, message: "Import job is cancelled (UP-BULK2)" });
    expect((await api(`/jobs/${job.id}`)).json.job).toMatchObject({ created: "1", nextIndex: "1" });
  });

  it("refuses a record larger than the limit with INVALID_ARGUMENT, keeping the records before it", async () => {
    const job = (await api("/jobs", { body: {} })).json.job as JsonObject;
    const huge = JSON.stringify({ key: "huge", human: { username: "x".repeat(1_100_000) } });
    const refused = await upload(String(job.id), `${line("before")}\n${huge}\n`);
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ code: 3, message: "A record is at most 1048576 bytes (UP-BULK6)" });
    expect((await api(`/jobs/${job.id}`)).json.job).toMatchObject({ created: "1", state: "IMPORT_JOB_STATE_OPEN" });
  });

  it("limits an organisation to 10 jobs that are neither completed nor cancelled", async () => {
    const owner = await createApiCaller(up, "ORG_OWNER");
    for (let i = 0; i < 10; i++) expect((await api("/jobs", { body: {}, token: owner.token })).status).toBe(200);
    const refused = await api("/jobs", { body: {}, token: owner.token });
    expect(refused.status).toBe(429);
    expect(refused.json).toMatchObject({ code: 8 });
    expect(String(refused.json.message)).toContain("UP-BULK4");
  });

  it("jobs belong to their organisation and creator: another organisation's owner cannot read, list, upload to or cancel them", async () => {
    const a = await createApiCaller(up, "ORG_OWNER");
    const b = await createApiCaller(up, "ORG_OWNER");
    const job = (await api("/jobs", { body: {}, token: b.token })).json.job as JsonObject;
    expect((await upload(String(job.id), `${line("b1")}\n`, b.token)).status).toBe(200);
    for (const headers of [{}, { "x-zitadel-orgid": b.orgId }] as Array<Record<string, string>>) {
      const expected = "x-zitadel-orgid" in headers ? 403 : 404;
      expect((await api(`/jobs/${job.id}`, { token: a.token, headers })).status).toBe(expected);
      expect((await api(`/jobs/${job.id}/results/_search`, { body: {}, token: a.token, headers })).status).toBe(expected);
      expect((await api(`/jobs/${job.id}/_cancel`, { method: "POST", token: a.token, headers })).status).toBe(expected);
      expect((await upload(String(job.id), `${line("intruder")}\n`, a.token, headers)).status).toBe(expected);
      const listed = await api("/jobs/_search", { body: {}, token: a.token, headers });
      if (listed.status === 200) expect(JSON.stringify(listed.json)).not.toContain(String(job.id));
      else expect(listed.status).toBe(403);
    }
    expect((await api(`/jobs/${job.id}`, { token: b.token })).json.job).toMatchObject({ created: "1", state: "IMPORT_JOB_STATE_COMPLETED" });
  });
});
