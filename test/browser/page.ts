/**
 * The script of the page test/browser.test.ts opens in Chromium: bundled with esbuild at test
 * time and served from another origin than userport's. It exposes `globalThis.userport`, whose
 * calls go to userport over gRPC-Web exactly as a browser app would make them, and reports
 * plain, serialisable outcomes back to the test.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ManagementService } from "../../gen/zitadel/management_pb.js";
import { ErrorDetailSchema } from "../../gen/zitadel/message_pb.js";

export type ImportOutcome =
  | { ok: true; userId: string; sequence: string }
  | {
      ok: false;
      /** Name of the Connect code, e.g. "AlreadyExists". */
      code: string;
      message: string;
      /** Ids of the zitadel.v1.ErrorDetail details, decoded in the browser. */
      detailIds: string[];
      /** The raw grpc-status-details-bin as the browser's client saw it (header or trailer). */
      statusDetailsBin: string | null;
      /** Whether the browser's fetch itself failed (network or CORS refusal). */
      fetchFailed: boolean;
    };

export interface PageApi {
  importHuman(baseUrl: string, token: string, userName: string): Promise<ImportOutcome>;
}

async function importHuman(baseUrl: string, token: string, userName: string): Promise<ImportOutcome> {
  let fetchFailed = false;
  const transport = createGrpcWebTransport({
    baseUrl,
    // Remember whether the browser refused or failed the request itself.
    fetch: (input, init) =>
      globalThis.fetch(input, init).catch((err: unknown) => {
        fetchFailed = true;
        throw err;
      }),
  });
  const client = createClient(ManagementService, transport);
  try {
    const res = await client.importHumanUser(
      {
        userName,
        profile: { firstName: "Browser", lastName: "User" },
        email: { email: `${userName}@example.com`, isEmailVerified: true },
      },
      { headers: { authorization: `Bearer ${token}` } },
    );
    return { ok: true, userId: res.userId, sequence: String(res.details?.sequence ?? "") };
  } catch (e) {
    const err = ConnectError.from(e);
    return {
      ok: false,
      code: Code[err.code],
      message: err.rawMessage,
      detailIds: err.findDetails(ErrorDetailSchema).map((detail) => detail.id),
      statusDetailsBin: err.metadata.get("grpc-status-details-bin"),
      fetchFailed,
    };
  }
}

const api: PageApi = { importHuman };
(globalThis as { userport?: PageApi }).userport = api;
