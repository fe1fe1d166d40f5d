import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { ManagementService } from "../gen/zitadel/management_pb.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

/** A self-signed certificate for 127.0.0.1, made with the machine's openssl. */
function selfSignedCertificate(dir: string) {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { stdio: "ignore" },
  );
  return { cert, key };
}

describe("TLS with ALPN", () => {
  let dir: string;
  let server: TestServer;
  let ca: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "userport-tls-"));
    const { cert, key } = selfSignedCertificate(dir);
    ca = readFileSync(cert);
    server = await startTestServer({ tlsCertFile: cert, tlsKeyFile: key });
  });
  afterAll(async () => {
    await server.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves gRPC over HTTP/2 negotiated by ALPN", async () => {
    expect(server.url.startsWith("https://")).toBe(true);
    const transport = createGrpcTransport({ baseUrl: server.url, nodeOptions: { ca } });
    const health = await createClient(Health, transport).check({});
    expect(health.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const created = await createClient(ManagementService, transport).importHumanUser(
      {
        userName: "tls-user",
        profile: { firstName: "Transport", lastName: "Layer" },
        email: { email: "tls@example.com", isEmailVerified: true },
        password: "Secur3!pass",
      },
      { headers: { authorization: `Bearer ${server.token}` } },
    );
    expect(created.userId).toMatch(/^\d+$/);
  });

  it("serves REST over HTTPS/1.1 on the same port", async () => {
    const { status, body, alpn } = await new Promise<{ status: number; body: string; alpn: string | false | null }>((resolve, reject) => {
      const request = https.get(`${server.url}/healthz`, { ca, agent: false, ...{ ALPNProtocols: ["http/1.1"] } }, (response) => {
        const alpn = (response.socket as TLSSocket).alpnProtocol;
        let body = "";
        response.on("data", (chunk) => (body += chunk));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body, alpn }));
      });
      request.on("error", reject);
    });
    expect(alpn).toBe("http/1.1");
    expect(status).toBe(200);
    expect(JSON.parse(body)).toEqual({ status: "SERVING" });
  });
});
