import { mkdirSync, readFileSync } from "node:fs";
import cors from "@fastify/cors";
import { cors as connectCors, createContextValues } from "@connectrpc/connect";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import type { Kysely } from "kysely";
import Fastify, { type FastifyError, type FastifyInstance, LogController } from "fastify";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ManagementService } from "../gen/zitadel/management_pb.js";
import { SessionService } from "../gen/zitadel/session/v2/session_service_pb.js";
import { UserService } from "../gen/zitadel/user/v2/user_service_pb.js";
import { AdminService } from "../gen/zitadel/admin_pb.js";
import { MigrationService } from "../gen/userport/migration/v1/migration_pb.js";
import { createMigrationService } from "./api/migration-service.js";
import { registerUploadRoute } from "./api/migration-uploads.js";
import { createBulkImport } from "./domain/bulk-import.js";
import { createImportData } from "./domain/import-data.js";
import { createBulkStore } from "./store/bulk-store.js";
import { createAdminService } from "./api/admin-service.js";
import { createAccess } from "./api/access.js";
import { createCallerAccess } from "./domain/authentication.js";
import { createCredentialStore } from "./store/access-store.js";
import { createHealthService } from "./api/health-service.js";
import { createManagementService } from "./api/management-service.js";
import { registerInitRoute } from "./api/login-init.js";
import { registerLoginPages } from "./api/login-pages.js";
import { clientAddressKey, createAttemptLimiter, limitBySource, sourceLimit } from "./api/rate-limits.js";
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
import { loggerOptions } from "./server/log-redaction.js";
import { type Dispatcher, smtpSender, startDispatcher } from "./notify/dispatcher.js";
import { alignEnvelopeChunks } from "./server/envelope-chunks.js";
import { onePortServerFactory } from "./server/one-port.js";
import { adminTokenPath, checkMasterKey, ensureFirstInstance, loadMasterKey } from "./setup.js";
import { openSqlite } from "./store/db.js";
import { openPostgres } from "./store/postgres.js";
import { createIdpStore } from "./store/idp-store.js";
import type { Database } from "./store/schema.js";
import { createSessionStore } from "./store/session-store.js";
import { createUserSearch } from "./store/user-search.js";
import { createOutboxStore } from "./store/outbox-store.js";
import { createUserStore } from "./store/user-store.js";
import { createOrgStore } from "./store/org-store.js";
import { createOrgCommands } from "./domain/orgs.js";
import { createPersonalAccessTokenCommands } from "./domain/personal-access-tokens.js";
import type { ServiceDeps } from "./api/service-deps.js";
import { createLockoutCommands } from "./domain/lockout.js";
import { createLockoutStore } from "./store/lockout-store.js";
import type { UserStore } from "./domain/ports.js";
import { registerPingOneFacade } from "./pingone/wiring.js";

export interface RunningServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  adminTokenFile: string;
  /** The store's query builder, in the store's SQL dialect: for tests and operators' tools. */
  db: Kysely<Database>;
  /** How many passwords this server has hashed since it started: for tests and operators' tools. */
  passwordHashes(): number;
  /** Stops accepting, finishes in-flight requests, commits pending writes, closes the store. */
  close(): Promise<void>;
}

/** gRPC status for the HTTP statuses fastify itself answers with (bad JSON, too large, …). */
const CODE_OF_STATUS: Record<number, number> = { 400: 3, 404: 5, 405: 12, 413: 8, 415: 3 };

/** Opens the store, creates the instance on first start, and serves every protocol on one port. */
export async function startServer(config: Config): Promise<RunningServer> {
  // admin.pat and master.key live in the data directory whichever store is used.
  mkdirSync(config.dataDir, { recursive: true });
  const store = config.databaseUrl
    ? await openPostgres(config.databaseUrl, config.databasePoolSize)
    : await openSqlite(config.dataDir);
  const newId = createIdGenerator();
  const instance = await ensureFirstInstance(store, config.dataDir, newId);
  const now = config.now ?? Date.now;
  let dispatcher: Dispatcher | undefined;
  // A committed change with messages wakes the dispatcher, so mails leave without waiting a poll.
  const userStore = withWake(createUserStore(store), () => dispatcher?.wake());
  let passwordHashes = 0;
  const bcryptHasher = createBcryptHasher(config.bcryptCost);
  const hasher: typeof bcryptHasher = {
    cost: bcryptHasher.cost,
    hash(password) {
      passwordHashes++;
      return bcryptHasher.hash(password);
    },
  };
  // Credential and code checks per user (in the domain) and per client address (at the edge).
  const userAttempts = createAttemptLimiter(config.rateLimitPerUser, config.rateLimitWindowSeconds);
  const limitSource = sourceLimit(createAttemptLimiter(config.rateLimitPerSource, config.rateLimitWindowSeconds));
  const hashRegistry = createHashRegistry({ enabled: config.passwordVerifiers });
  const masterKey = loadMasterKey(config.masterKey, config.dataDir);
  await checkMasterKey(store, masterKey);
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
  const sessionStore = createSessionStore(store);
  // The instance's lockout policy until an administrator stores one (admin UpdateLockoutPolicy).
  const defaultLockout = { maxPasswordAttempts: config.maxPasswordAttempts, maxOtpAttempts: 0 };
  const lockout = createLockoutCommands({ store: createLockoutStore(store), defaultLockout });
  const passwords = createPasswordCommands({ store: sessionStore, hasher, hashRegistry, secretBox, newId, notifier, attempts: userAttempts });
  const sessionCommands = createSessionCommands({
    store: sessionStore,
    hasher,
    hashRegistry,
    secretBox,
    newId,
    attempts: userAttempts,
    lockoutPolicy: async (instanceId, orgId) => (await lockout.orgPolicy(instanceId, orgId)).policy,
    now,
  });
  const tls = config.tlsCertFile && config.tlsKeyFile
    ? { cert: readFileSync(config.tlsCertFile), key: readFileSync(config.tlsKeyFile) }
    : undefined;

  const app = Fastify({
    logger: loggerOptions(config.logLevel),
    // One log line per request costs more than an import itself; debug level turns it back on.
    logController: new LogController({
      disableRequestLogging: config.logLevel !== "debug" && config.logLevel !== "trace",
    }),
    serverFactory: onePortServerFactory(tls),
    bodyLimit: config.bodyLimitBytes,
    // A path parameter holds an id of up to 200 runes; percent-encoded, a rune takes up to 12 bytes.
    routerOptions: { maxParamLength: 2400 },
  });
  const logUnexpected = (err: unknown) => app.log.error({ err }, "request failed unexpectedly");
  const callerAccess = createCallerAccess({
    credentials: createCredentialStore(store),
    now,
    // Replicas on PostgreSQL cannot clear each other's memory: there every request reads the caller.
    callerCacheMs: store.dialect === "sqlite" ? 1000 : 0,
  });
  const forgetCallers = callerAccess.forgetCallers;
  const { access, secureService } = createAccess(callerAccess);
  const states = createUserStateCommands({ store: userStore, onCallerChanged: forgetCallers });
  const queries = createUserQueries({ store: createUserSearch(store) });
  const changes = createUserChangeCommands({ store: userStore, newId, secretBox, notifier, idps, now });
  const orgStore = createOrgStore(store);
  const orgs = createOrgCommands({
    store: orgStore,
    newId,
    // ZITADEL generates organisation domains under the instance's own domain.
    instanceDomain: new URL(config.externalUrl).hostname,
    onCallerChanged: forgetCallers,
  });
  const verification = createVerificationCommands({ store: userStore, changes, newId, secretBox, notifier, hasher, attempts: userAttempts });
  const personalAccessTokens = createPersonalAccessTokenCommands({ store: orgStore, newId, now, onCallerChanged: forgetCallers });
  const services: ServiceDeps = {
    access,
    userCreation: users,
    userChanges: changes,
    userStates: states,
    userQueries: queries,
    orgs,
    personalAccessTokens,
    idps,
    passwords,
    lockout,
    verification,
    sessions: sessionCommands,
  };
  const management = secureService(ManagementService, createManagementService(services), logUnexpected);
  const userV2 = secureService(
    UserService,
    limitBySource(createUserService(services), limitSource, {
      verifyEmail: () => true,
      verifyPhone: () => true,
      setPassword: (req) => req.verification.case !== undefined,
    }),
    logUnexpected,
  );
  const checksCredentials = (req: { checks?: { password?: unknown; totp?: unknown } }) =>
    req.checks?.password !== undefined || req.checks?.totp !== undefined;
  const sessionV2 = secureService(
    SessionService,
    limitBySource(createSessionService(services, (instanceId, userId) => userStore.getUser(instanceId, userId)), limitSource, {
      createSession: checksCredentials,
      setSession: checksCredentials,
    }),
    logUnexpected,
  );
  const bulk = createBulkImport({ users, userStore, idps, store: createBulkStore(store), newId, now });
  const importData = createImportData({ bulk, orgs, userChanges: changes });
  const admin = secureService(AdminService, createAdminService(services, importData), logUnexpected);
  const migration = secureService(MigrationService, createMigrationService({ bulk, access }), logUnexpected);

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
    alignEnvelopeChunks(rpc);
    await rpc.register(fastifyConnectPlugin, {
      routes(router) {
        router.service(ManagementService, management);
        router.service(UserService, userV2);
        router.service(SessionService, sessionV2);
        router.service(AdminService, admin);
        router.service(MigrationService, migration);
        router.service(
          Health,
          createHealthService([
            ManagementService.typeName,
            UserService.typeName,
            SessionService.typeName,
            AdminService.typeName,
            MigrationService.typeName,
          ]),
        );
      },
      jsonOptions: { ignoreUnknownFields: true },
      contextValues: (request) => createContextValues().set(clientAddressKey, request.ip),
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
      { service: MigrationService, impl: migration, prefix: "/migration/v1" },
    ],
    logUnexpected,
  );

  app.get("/healthz", async () => ({ status: "SERVING" }));

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

  // PingOne's Platform API under /v1/environments (src/pingone), over the same domain and store.
  await registerPingOneFacade(app, {
    store, config, callerAccess, userStore, users, states, changes, queries, orgs, passwords, sessionCommands, lockout, logUnexpected, newId,
  });

  // Last: awaiting a scope before the root error handler is set would leave the REST routes
  // registered so far with fastify's default error handler.
  await registerInitRoute(app, verification, instance.id, logUnexpected, limitSource);
  await registerLoginPages(app, verification, instance.id, logUnexpected, limitSource);
  await registerUploadRoute(app, {
    bulk,
    access,
    authenticate: (headers) => callerAccess.authenticate(headers.get("authorization")),
    logUnexpected,
  });

  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const scheme = tls ? "https" : "http";
  app.log.info({ instance: instance.id, adminTokenFile: adminTokenPath(config.dataDir) }, "userport is serving");

  const outbox = createOutboxStore(store);
  let smtp: ReturnType<typeof smtpSender> | undefined;
  if (config.smtpUrl) {
    smtp = smtpSender(config.smtpUrl, config.smtpFrom);
    dispatcher = startDispatcher({
      store: outbox,
      secretBox,
      send: smtp.send,
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
    db: store.db,
    passwordHashes: () => passwordHashes,
    close() {
      closing ??= (async () => {
        await app.close();
        await dispatcher?.stop();
        smtp?.close();
        await store.close();
      })();
      return closing;
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
