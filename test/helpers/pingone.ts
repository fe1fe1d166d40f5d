/**
 * A small PingOne Platform API client over fetch, as PingOne's own clients call it: bearer token,
 * JSON bodies with PingOne's media types, absolute `_links` followed as hrefs (the Go SDK keeps
 * a link's path and query and swaps in the host it was configured with:
 * pingone-go-sdk-v2 management/api_utils_pagination_ext.go).
 */
import { createHash, randomBytes } from "node:crypto";

export interface PingOneResponse {
  status: number;
  contentType: string;
  body: Record<string, unknown> | undefined;
  raw: string;
}

export const EXTERNAL_URL = "https://pingone.userport.test";

export const MEDIA = {
  json: "application/json",
  import: "application/vnd.pingidentity.user.import+json",
  lock: "application/vnd.pingidentity.account.lock+json",
  unlock: "application/vnd.pingidentity.account.unlock+json",
} as const;

export class PingOneClient {
  constructor(
    readonly baseUrl: string,
    readonly token: string | null,
  ) {}

  async request(method: string, path: string, body?: unknown, contentType: string = MEDIA.json): Promise<PingOneResponse> {
    // An absolute link of the facade's own: keep path and query, use this client's server.
    const url = path.startsWith(EXTERNAL_URL) ? this.baseUrl + path.slice(EXTERNAL_URL.length) : this.baseUrl + path;
    const headers: Record<string, string> = {};
    if (this.token !== null) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = contentType;
    const response = await fetch(url, {
      method,
      headers,
      ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
    });
    const raw = await response.text();
    let parsed: Record<string, unknown> | undefined;
    try {
      parsed = raw === "" ? undefined : (JSON.parse(raw) as Record<string, unknown>);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, contentType: response.headers.get("content-type") ?? "", body: parsed, raw };
  }

  get = (path: string) => this.request("GET", path);
  post = (path: string, body: unknown, contentType?: string) => this.request("POST", path, body, contentType);
  put = (path: string, body: unknown, contentType?: string) => this.request("PUT", path, body, contentType);
  patch = (path: string, body: unknown) => this.request("PATCH", path, body);
  delete = (path: string) => this.request("DELETE", path);
}

/** An LDAP `{SSHA512}` value: base64(SHA-512(password ‖ salt) ‖ salt), as PingOne's import takes it. */
export function ssha512(password: string, salt: Buffer = randomBytes(8)): string {
  const digest = createHash("sha512").update(password).update(salt).digest();
  return `{SSHA512}${Buffer.concat([digest, salt]).toString("base64")}`;
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
