import { BulkErrors } from "../domain/error-catalogue.js";
import type { Readable } from "node:stream";
import { toJson } from "@bufbuild/protobuf";
import { createContextValues, type HandlerContext } from "@connectrpc/connect";
import type { FastifyInstance } from "fastify";
import { ImportJobSchema, MigrationService } from "../../gen/userport/migration/v1/migration_pb.js";
import type { Principal } from "../domain/access.js";
import { BULK_LIMITS, type BulkImport, type BulkRecord } from "../domain/bulk-import.js";
import { type Access, principalKey } from "./access.js";
import { httpStatusOf, restErrorBody, toConnectError } from "./errors.js";
import { jobToPb, recordFromJsonLine } from "../services/migration-service.js";

export const NDJSON = "application/x-ndjson";

export interface UploadRouteDeps {
  bulk: BulkImport;
  access: Access;
  authenticate(headers: Headers): Promise<Principal>;
}

/**
 * `POST /migration/v1/jobs/{job_id}/records` with an NDJSON body (`application/x-ndjson`, one
 * `userport.migration.v1.ImportRecord` in protojson per line): the records are imported into the
 * caller's job as the body arrives, a batch at a time, and the body is read no faster than the
 * batches commit, so an upload of any size holds one batch in memory. Answers with the job once
 * the body ended; the per-record results are read with ListImportJobResults.
 */
export async function registerUploadRoute(app: FastifyInstance, deps: UploadRouteDeps): Promise<void> {
  await app.register(async (scope) => {
    // The body stays a stream: it is read by the handler, line by line, never buffered whole.
    scope.addContentTypeParser(NDJSON, (_request, payload, done) => done(null, payload));
    scope.post<{ Params: { jobId: string } }>("/migration/v1/jobs/:jobId/records", async (request, reply) => {
      try {
        const requestHeader = new Headers();
        for (const [name, value] of Object.entries(request.headers)) {
          if (value !== undefined) requestHeader.set(name, Array.isArray(value) ? value.join(", ") : value);
        }
        const principal = await deps.authenticate(requestHeader);
        const values = createContextValues();
        values.set(principalKey, principal);
        // The upload appends to a job, with ImportUsers' permission (user.write).
        const ctx = {
          service: MigrationService,
          method: MigrationService.method.importUsers,
          requestHeader,
          values,
        } as unknown as HandlerContext;
        const target = await deps.access.target(ctx);
        if (!request.headers["content-type"]?.startsWith(NDJSON)) {
          throw BulkErrors.notNdjson(NDJSON);
        }
        const job = await deps.bulk.attachable(target, request.params.jobId);
        const session = await deps.bulk.open(target, { dryRun: false, onConflict: job.onConflict, jobId: job.id });
        let completed = false;
        try {
          let batch: BulkRecord[] = [];
          // One batch commits while the next is read: the body is read no faster than that.
          let committing: Promise<unknown> = Promise.resolve();
          const submit = async (records: BulkRecord[]) => {
            await committing;
            committing = deps.bulk.importBatch(session, records);
            committing.catch(() => undefined);
          };
          try {
            for await (const line of lines(request.body as Readable)) {
              if (line.trim() === "") continue;
              batch.push(recordFromJsonLine(line, target));
              if (batch.length >= BULK_LIMITS.recordsPerMessage) {
                const full = batch;
                batch = [];
                await submit(full);
              }
            }
          } catch (err) {
            // A body that breaks off or breaks a limit: the records before it are still imported.
            if (batch.length > 0) await submit(batch);
            await committing;
            throw err;
          }
          if (batch.length > 0) await submit(batch);
          await committing;
          completed = true;
        } finally {
          await deps.bulk.close(session, completed);
        }
        const view = await deps.bulk.getJob(target, job.id);
        await reply
          .code(200)
          .type("application/json")
          .send(JSON.stringify({ job: toJson(ImportJobSchema, jobToPb(view)) }));
      } catch (err) {
        const error = toConnectError(err, request.log);
        // The rest of the body is not read: the connection closes after the answer.
        await reply.code(httpStatusOf(error.code)).type("application/json").header("connection", "close").send(restErrorBody(error));
      }
    });
  });
}

/** The lines of a byte stream, read as they arrive; a line over the record limit ends it. */
async function* lines(body: Readable): AsyncGenerator<string> {
  const tooLong = () => BulkErrors.recordTooLong(BULK_LIMITS.bytesPerRecord);
  let rest = "";
  const decoder = new TextDecoder("utf-8");
  for await (const chunk of body) {
    const text = rest + decoder.decode(chunk as Buffer, { stream: true });
    let start = 0;
    for (let at = text.indexOf("\n", start); at >= 0; at = text.indexOf("\n", start)) {
      // UTF-16 units: at least a third of the bytes, at most all of them.
      if (at - start > BULK_LIMITS.bytesPerRecord) throw tooLong();
      yield text.slice(start, at);
      start = at + 1;
    }
    rest = text.slice(start);
    if (rest.length > BULK_LIMITS.bytesPerRecord) throw tooLong();
  }
  rest += decoder.decode();
  if (rest !== "") yield rest;
}
