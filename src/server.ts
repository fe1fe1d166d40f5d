import cors from "@fastify/cors";
import { cors as connectCors } from "@connectrpc/connect";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import type { Kysely } from "kysely";
import Fastify, { type FastifyError, type FastifyInstance, LogController } from "fastify";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ManagementService } from "../gen/zitadel/management_pb.js";
import { SessionService } from "../gen/zitadel/session/v2/session_service_pb.js";
import { UserService } from "../gen/zitadel/user/v2/user_service_pb.js";
import { AdminService } from "../gen/zitadel/admin_pb.js";
import { createAdminService } from "./api/admin-service.js";
import { createAccess } from "./api/access.js";
import { createHealthService } from "./api/health-service.js";
import { createReflectionServices } from "./api/reflection-service.js";
import { openApiDocument } from "./api/openapi.js";
import packageJson from "../package.json" with { type: "json" };
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createManagementService } from "./api/management-service.js";
import { registerInitRoute } from "./api/login-init.js";
import { registerRestRoutes } from "./api/rest-transcoder.js";
import { createSessionService } from "./api/session-service.js";
import { createUserService } from "./api/user-service.js";
import type { Config } from "./config.js";
import { createHashRegistry } from "./domain/hashes/index.js";
import { createIdGenerator } from "./domain/ids.js";
import { createIdpCommands } from "./domain/idps.js";
import { createNotifier } from "./domain/notifications.js";
import { createBcryptHasher } from "./domain/password.js";
import { createSecretBox } from "./domain/secrets.js";
import { createUserChangeCommands } from "./domain/user-changes.js";
import { createPasswordCommands } from "./domain/passwords.js";
import { createSessionCommands } from "./domain/sessions.js";
import { createVerificationCommands } from "./domain/verification.js";
import { createUserStateCommands } from "./domain/user-states.js";
import { createUserCommands } from "./domain/users.js";
import { createUserQueries } from "./domain/user-queries.js";
import { registerGrpcMessageEncoding } from "./server/grpc-message.js";
import { type Dispatcher, smtpSender, startDispatcher } from "./notify/dispatcher.js";
import { onePortServerFactory } from "./server/one-port.js";
import { createDataDir, describeStoreError, preflight } from "./server/preflight.js";
import { adminTokenPath, checkMasterKey, ensureFirstInstance, prepareMasterKey } from "./setup.js";
import { type Db, openSqlite } from "./store/db.js";
import { openPostgres } from "./store/postgres.js";
import { createIdpStore } from "./store/idp-store.js";
import type { Database } from "./store/schema.js";
import { createSessionStore } from "./store/session-store.js";
import { createUserSearch } from "./store/user-search.js";
import { createOutboxStore } from "./store/outbox-store.js";
import { createUserStore } from "./store/user-store.js";
import { createOrgStore } from "./store/org-store.js";
import { createOrgCommands } from "./domain/orgs.js";
import { createLockoutCommands } from "./domain/lockout.js";
import { createLockoutStore } from "./store/lockout-store.js";
import type { UserStore } from "./domain/store-port.js";
import type { SessionStore } from "./domain/session-port.js";
import { observeService, registerAccessLog, requestId, requestLog } from "./server/access-log.js";
import { createMetrics } from "./server/metrics.js";
import { storeAnswers } from "./store/probe.js";

export interface RunningServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  adminTokenFile: string;
  /** The instance served, and whether this start created it (the first start) or found it. */
  instanceId: string;
  instanceCreated: boolean;
  /** The address and port bound, e.g. `0.0.0.0:8080`. */
  listenAddress: string;
  /** Every HTTP route served (method and fastify path), Connect's and REST's included. */
  routes: ReadonlyArray<{ method: string; url: string }>;
  /** The store's query builder, in the store's SQL dialect: for tests and operators' tools. */
  db: Kysely<Database>;
  /** Stops accepting, finishes in-flight requests, commits pending writes, closes the store. */
  close(): Promise<void>;
}

/** gRPC status for the HTTP statuses fastify itself answers with (bad JSON, too large, …). */
const CODE_OF_STATUS: Record<number, number> = { 400: 3, 404: 5, 405: 12, 413: 8, 415: 3 };

/** Opens the store, creates the instance on first start, and serves every protocol on one port. */
export async function startServer(config: Config): Promise<RunningServer> {
  // Every setting is checked before the store is touched: a start that fails on one writes nothing.
  const { tls } = await preflight(config);
  // admin.pat and master.key live in the data directory whichever store is used.
  const pendingKey = prepareMasterKey(config.masterKey, config.dataDir);
  // On PostgreSQL the data directory is made once the database answered.
  if (!config.databaseUrl) createDataDir(config);
  let store: Db;
  try {
    store = config.databaseUrl
      ? await openPostgres(config.databaseUrl, config.databasePoolSize)
      : await openSqlite(config.dataDir);
  } catch (err) {
    throw describeStoreError(config, err) ?? err;
  }
  if (config.databaseUrl) createDataDir(config);
  const newId = createIdGenerator();
  const masterKey = pendingKey.persist();
  try {
    await checkMasterKey(store, masterKey);
  } catch (err) {
    await store.close();
    throw err;
  }
  const instance = await ensureFirstInstance(store, config.dataDir, newId);
  const now = config.now ?? Date.now;
  let dispatcher: Dispatcher | undefined;
  // A committed change with messages wakes the dispatcher, so mails leave without waiting a poll.
  const userStore = withWake(createUserStore(store), () => dispatcher?.wake());
  const hasher = createBcryptHasher(config.bcryptCost);
  const hashRegistry = createHashRegistry({ enabled: config.passwordVerifiers });
  const secretBox = createSecretBox(masterKey);
  const idps = createIdpCommands({ store: createIdpStore(store), newId, secretBox });
  const notifier = createNotifier({ secretBox, newId, externalUrl: config.externalUrl });
  const users = createUserCommands({
    store: userStore,
    hasher,
    hashRegistry,
    newId,
    secretBox,
    notifier,
    externalUrl: config.externalUrl,
    idps,
    now,
  });
  const outbox = createOutboxStore(store);
  let shuttingDown = false;
  let lastReady = true;
  const readiness = {
    async ready() {
      lastReady = !shuttingDown && (await storeAnswers(store, 2000));
      return lastReady;
    },
    closing: () => shuttingDown,
  };
  const metrics = createMetrics({
    outboxUnsent: () => outbox.countUnsent(),
    connections: () => store.connections(),
    commitsWaiting: () => store.writes.waiting(),
    ready: () => lastReady,
  });
  store.writes.onBatch = (size, seconds, failed) => metrics.batch(size, seconds, failed);
  const sessionStore = withEventCount(createSessionStore(store), metrics.events);
  // The instance's lockout policy until an administrator stores one (admin UpdateLockoutPolicy).
  const defaultLockout = { maxPasswordAttempts: config.maxPasswordAttempts, maxOtpAttempts: 0 };
  const lockout = createLockoutCommands({ store: createLockoutStore(store), defaultLockout });
  const passwords = createPasswordCommands({ store: sessionStore, hasher, hashRegistry, secretBox, newId, notifier });
  const sessionCommands = createSessionCommands({
    store: sessionStore,
    hasher,
    hashRegistry,
    secretBox,
    newId,
    lockoutPolicy: async (instanceId, orgId) => (await lockout.orgPolicy(instanceId, orgId)).policy,
  });

  const app = Fastify({
    logger: { level: config.logLevel },
    genReqId: requestId,
    // fastify's own request lines are replaced by the access log (src/server/access-log.ts).
    logController: new LogController({
      disableRequestLogging: config.logLevel !== "debug" && config.logLevel !== "trace",
    }),
    serverFactory: onePortServerFactory(tls),
    bodyLimit: config.bodyLimitBytes,
    // A path parameter holds an id of up to 200 runes; percent-encoded, a rune takes up to 12 bytes.
    routerOptions: { maxParamLength: 2400 },
  });
  // With the request's logger when there is one: the line carries the request id.
  const logUnexpected = (err: unknown) => (requestLog() ?? app.log).error({ err }, "request failed unexpectedly");
  const { access, secureService, forgetCallers } = createAccess(store, now);
  const states = createUserStateCommands({ store: userStore, onCallerChanged: forgetCallers });
  const queries = createUserQueries({ store: createUserSearch(store) });
  const changes = createUserChangeCommands({ store: userStore, newId, secretBox, notifier, idps, now });
  const orgs = createOrgCommands({
    store: createOrgStore(store),
    newId,
    // ZITADEL generates organisation domains under the instance's own domain.
    instanceDomain: new URL(config.externalUrl).hostname,
    onCallerChanged: forgetCallers,
  });
  const verification = createVerificationCommands({ store: userStore, changes, newId, secretBox, notifier, hasher });
  const management = observeService(ManagementService, secureService(
    ManagementService,
    createManagementService(users, states, access, queries, changes, orgs, idps, passwords, lockout),
    logUnexpected,
  ));
  const userV2 = observeService(
    UserService,
    secureService(UserService, createUserService(users, states, access, queries, changes, passwords, verification), logUnexpected),
  );
  const sessionV2 = observeService(SessionService, secureService(
    SessionService,
    createSessionService(sessionCommands, (instanceId, userId) => userStore.getUser(instanceId, userId)),
    logUnexpected,
  ));
  const admin = observeService(AdminService, secureService(AdminService, createAdminService(orgs, access, lockout), logUnexpected));
  // Every route served, for operators' tools and the test that compares them with the OpenAPI document.
  const routes: Array<{ method: string; url: string }> = [];
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
  });
  // Registered first, so that every request (CORS preflights and 404s too) gets an id and a line.
  const restRpcs = new Map<string, string>();
  registerAccessLog(app, { restRpcs, onResponse: metrics.request });

  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins.includes("*") ? true : config.corsOrigins,
      methods: [...connectCors.allowedMethods, "PUT", "PATCH", "DELETE"],
      allowedHeaders: [...connectCors.allowedHeaders, "authorization", "x-zitadel-orgid"],
      exposedHeaders: [...connectCors.exposedHeaders],
      maxAge: 7200,
    });
  }

  // In a scope of its own, so that the grpc-message hook runs for Connect's routes only.
  await app.register(async (rpc) => {
    registerGrpcMessageEncoding(rpc);
    await rpc.register(fastifyConnectPlugin, {
      routes(router) {
        router.service(ManagementService, management);
        router.service(UserService, userV2);
        router.service(SessionService, sessionV2);
        router.service(AdminService, admin);
        const reflection = createReflectionServices([ManagementService, UserService, SessionService, AdminService, Health]);
        router.service(ServerReflectionV1, reflection.v1);
        router.service(ServerReflectionV1alpha, reflection.v1alpha);
        router.service(
          Health,
          createHealthService(
            [ManagementService.typeName, UserService.typeName, SessionService.typeName, AdminService.typeName],
            readiness,
          ),
        );
      },
      jsonOptions: { ignoreUnknownFields: true },
      readMaxBytes: config.bodyLimitBytes,
    });
  });

  const restRoutes = registerRestRoutes(
    app,
    [
      { service: ManagementService, impl: management, prefix: "/management/v1" },
      { service: UserService, impl: userV2, prefix: "" },
      { service: SessionService, impl: sessionV2, prefix: "" },
      { service: AdminService, impl: admin, prefix: "/admin/v1" },
    ],
    logUnexpected,
  );

  for (const route of restRoutes) restRpcs.set(`${route.httpMethod} ${route.url}`, `${route.service.typeName}/${route.method.name}`);

  // Liveness: the process is up and answers. Readiness: the store answers too, and it is not stopping.
  app.get("/healthz", async () => ({ status: "SERVING" }));
  app.get("/readyz", async (_request, reply) => {
    if (await readiness.ready()) return { status: "SERVING" };
    return reply.code(503).send({ status: "NOT_SERVING", reason: shuttingDown ? "shutting down" : "the store does not answer" });
  });
  // The OpenAPI description of exactly these REST routes, generated from the same descriptors.
  const openApi = JSON.stringify(openApiDocument(restRoutes, { title: "userport", version: packageJson.version }));
  app.get("/openapi.json", async (_request, reply) => reply.type("application/json").send(openApi));
  app.get("/metrics", async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.contentType).send(text);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0]!;
    const otherMethod = restRoutes.some((route) => route.matches.test(path));
    const status = otherMethod ? 405 : 404;
    void reply.code(status).send({ code: CODE_OF_STATUS[status], message: otherMethod ? "Method Not Allowed" : "Not Found", details: [] });
  });

  // Fastify's own failures (malformed JSON, body too large, unknown content type) in the REST
  // error shape; anything unexpected is logged and answered without detail.
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const status = error.statusCode ?? 500;
    if (status >= 500) {
      logUnexpected(error);
      return reply.code(500).send({ code: 13, message: "Internal error", details: [] });
    }
    return reply.code(status).send({ code: CODE_OF_STATUS[status] ?? 3, message: error.message, details: [] });
  });

  // Last: awaiting a scope before the root error handler is set would leave the REST routes
  // registered so far with fastify's default error handler.
  await registerInitRoute(app, verification, instance.id, logUnexpected);

  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const scheme = tls ? "https" : "http";
  const listenAddress = `${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  app.log.info({ instance: instance.id, instanceCreated: instance.created, listen: listenAddress }, "userport is serving");

  let smtp: ReturnType<typeof smtpSender> | undefined;
  if (config.smtpUrl) {
    smtp = smtpSender(config.smtpUrl, config.smtpFrom);
    const send = smtp.send;
    dispatcher = startDispatcher({
      store: outbox,
      secretBox,
      async send(message) {
        try {
          await send(message);
        } catch (err) {
          metrics.delivery("failed");
          throw err;
        }
        metrics.delivery("sent");
      },
      log: app.log,
      now,
      pollMs: config.outboxPollMs,
      retryBaseMs: config.smtpRetryBaseMs,
      retryMaxMs: config.smtpRetryMaxMs,
      leaseMs: 120_000,
      batchSize: 10,
    });
  } else {
    // Said once, with a count and never a message: the outbox keeps everything until SMTP is set.
    app.log.warn({ unsent: await outbox.countUnsent() }, "USERPORT_SMTP_URL is not set: mails stay in the outbox until it is");
  }

  let closing: Promise<void> | undefined;
  return {
    app,
    url: `${scheme}://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${port}`,
    port,
    adminTokenFile: adminTokenPath(config.dataDir),
    instanceId: instance.id,
    instanceCreated: instance.created,
    listenAddress,
    routes,
    db: store.db,
    close() {
      closing ??= (async () => {
        shuttingDown = true;
        lastReady = false;
        await app.close();
        await dispatcher?.stop();
        smtp?.close();
        await store.close();
      })();
      return closing;
    },
  };
}

/** The session store, telling `count` the event types of each committed credential write. */
function withEventCount(store: SessionStore, count: (types: string[]) => void): SessionStore {
  return {
    ...store,
    async write(change) {
      await store.write(change);
      if (change.credentials) count(change.credentials.events.map((event) => event.type));
    },
  };
}

/** The store, calling `wake` after each committed write that enqueued messages. */
function withWake(store: UserStore, wake: () => void): UserStore {
  return {
    ...store,
    async createUser(change) {
      await store.createUser(change);
      if (change.outbox?.length) wake();
    },
    async changeUser(change) {
      await store.changeUser(change);
      if (change.outbox?.length) wake();
    },
    async updateUser(update) {
      await store.updateUser(update);
      if (update.outbox?.length) wake();
    },
  };
}
