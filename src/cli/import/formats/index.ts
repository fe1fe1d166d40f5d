/**
 * The export formats of `userport import --format <name>`: each converter streams its file and
 * yields one AddHumanUserRequest (protobuf JSON) per user, or an error for that user alone.
 */
import { convertAuth0 } from "./auth0.js";
import { convertCsv } from "./csv.js";
import { convertFirebase } from "./firebase.js";
import { convertKeycloak } from "./keycloak.js";
import { convertLdif } from "./ldif.js";
import { convertNative } from "./native.js";
import { convertPingOneCsv } from "./pingone-csv.js";
import type { Converter } from "./types.js";
import { convertZitadel } from "./zitadel.js";

export const FORMATS: Record<string, Converter> = {
  native: convertNative,
  zitadel: convertZitadel,
  csv: convertCsv,
  auth0: convertAuth0,
  keycloak: convertKeycloak,
  firebase: convertFirebase,
  "pingone-csv": convertPingOneCsv,
  ldif: convertLdif,
};

export type FormatName = keyof typeof FORMATS;
export * from "./types.js";
