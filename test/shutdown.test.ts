/**
 * A shutdown that cannot finish (here a client that sent half a request body and waits) is ended
 * after USERPORT_SHUTDOWN_GRACE_MS, with a line saying so and exit status 1.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { dropTestDatabase, testDatabaseUrl } from "./helpers/database.js";
import { freePort, serveProcess } from "./helpers/process.js";

describe("shutdown", () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it("is ended after the grace period when a request never completes", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "userport-shutdown-"));
    cleanup.push(async () => {
      await dropTestDatabase(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    });
    const databaseUrl = await testDatabaseUrl(dataDir);
    const port = await freePort();
    const served = await serveProcess(port, {
      USERPORT_DATA_DIR: dataDir,
      ...(databaseUrl ? { USERPORT_DATABASE_URL: databaseUrl } : {}),
      USERPORT_SHUTDOWN_GRACE_MS: "1000",
    });
    cleanup.push(() => served.child.kill("SIGKILL"));
    const socket = connect(port, "127.0.0.1");
    cleanup.push(() => socket.destroy());
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write('POST /management/v1/users/human/_import HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"us');
    // The request is in flight once the server has read its headers; a read of another request shows the server is past them.
    await fetch(`${served.url}/healthz`);
    served.child.kill("SIGTERM");
    expect(await served.exited).toBe(1);
    expect(served.output()).toContain("userport: SIGTERM: shutting down");
    expect(served.output()).toContain("userport: shutdown did not finish within 1000 ms (USERPORT_SHUTDOWN_GRACE_MS): exiting");
    expect(served.output()).not.toContain("userport: stopped");
  });
});
