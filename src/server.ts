import cors from "@fastify/cors";
import { type ConnectRouter, cors as connectCors, createContextValues, createRouterTransport, type HandlerContext, type Transport } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from "fastify";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ManagementService } from "../gen/zitadel/management_pb.js";
import { SessionService } from "../gen/zitadel/session/v2/session_service_pb.js";
import { UserService } from "../gen/zitadel/user/v2/user_service_pb.js";
import { AdminService } from "../gen/zitadel/admin_pb.js";
import { MigrationService } from "../gen/userport/migration/v1/migration_pb.js";
import { createMigrationService } from "./services/migration-service.js";
import { registerUploadRoute } from "./edge/migration-uploads.js";
import { createBulkImport } from "./domain/bulk-import.js";
import { createImportData } from "./domain/import-data.js";
import { createBulkStore } from "./store/bulk-store.js";
import { createAdminService } from "./services/admin-service.js";
import { edgeRestError, logUnexpected } from "./edge/errors.js";
import { createAccess } from "./edge/access.js";
import { createCallerAccess } from "./domain/authentication.js";
import { createCredentialStore } from "./store/access-store.js";
import { createHealthService } from "./services/health-service.js";
import { createReflectionServices } from "./services/reflection-service.js";
import { openApiDocument } from "./edge/openapi.js";
import packageJson from "../package.json" with { type: "json" };
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createManagementService } from "./services/management-service.js";
import { registerLoginPages } from "./edge/login-pages.js";
import { clientAddressKey, createAttemptLimiter, limitBySource, sourceLimit } from "./edge/rate-limits.js";
import { nulCharactersInterceptor } from "./edge/nul-characters.js";
import { registerRestRoutes } from "./edge/rest-transcoder.js";
import { createSessionService } from "./services/session-service.js";
import { createUserService } from "./services/user-service.js";
import type { Config } from "./config.js";
import { createHashRegistry } from "./domain/hashes/index.js";
import { createIdGenerator } from "./domain/ids.js";
import { createIdpCommands } from "./domain/idps.js";
import { createNotifier } from "./domain/notifications.js";
import { createBcryptHasher } from "./domain/password.js";
import { createSecretBox } from "./domain/secrets.js";
import { createUserChangeCommands } from "./domain/user-changes.js";
import { createPasskeyCommands } from "./domain/passkeys.js";
import { createPasswordCommands } from "./domain/passwords.js";
import { createSessionCommands } from "./domain/sessions.js";
import { createVerificationCommands } from "./domain/verification.js";
import { createUserStateCommands } from "./domain/user-states.js";
import { createUserCommands } from "./domain/users.js";
import { createUserQueries } from "./domain/user-queries.js";
import { createCalls } from "./edge/calls.js";
import { registerGrpcMessageEncoding } from "./edge/grpc-message.js";
import { loggerOptions } from "./edge/log-redaction.js";
import { registerRpcRoutes } from "./edge/rpc-routes.js";
import { type Dispatcher, smtpSender, startDispatcher } from "./notify/dispatcher.js";
import { alignEnvelopeChunks } from "./edge/envelope-chunks.js";
import { onePortServerFactory, type StreamSlot, type TlsFiles } from "./edge/one-port.js";
import { createGrpcStreams } from "./edge/grpc-stream.js";
import { createDataDir, describeStoreError, preflight } from "./edge/preflight.js";
import { adminTokenPath, checkMasterKey, ensureFirstInstance, prepareMasterKey } from "./setup.js";
import { type Db, openSqlite } from "./store/db.js";
import { refusingWritesOfEndedRequests } from "./store/request-scope.js";
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
import type { ServiceDeps } from "./services/service-deps.js";
import { createLockoutCommands } from "./domain/lockout.js";
import { createLockoutStore } from "./store/lockout-store.js";
import type { UserStore } from "./domain/ports.js";
import { createPingOneExternalPasswords, registerPingOneFacade } from "./pingone/wiring.js";
import { createMachineSecretCommands } from "./domain/machine-secrets.js";
import { createMachineSecretStore } from "./store/machine-secret-store.js";
import { observeService, type RequestRecord, registerAccessLog, requestId, requestLogOf, requestRecord, requestRecordKey } from "./edge/access-log.js";
import { createMetrics } from "./edge/metrics.js";
import { createStoreProbe } from "./store/probe.js";
import { importResultsEncoded } from "./edge/import-results.js";
// protobuf-es's field lookup made once per message type (reasons there).
import "./edge/protobuf-field-lookup.js";
import type { SessionStore } from "./domain/ports.js";

export interface RunningServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  adminTokenFile: string;
  /**
   * A Connect transport to this server's services without a socket: the same handlers,
   * authorisation, validation and error rendering, for tests about the domain rather than the wire.
   */
  inProcessTransport(): Transport;
  /** What is served: every RPC path, and every REST route as fastify knows it ("/v2/users/:p0"). */
  routes: { rpc: string[]; rest: Array<{ method: string; url: string }> };
  /** The instance served, and whether this start created it (the first start) or found it. */
  instanceId: string;
  instanceCreated: boolean;
  /** The address and port bound, e.g. `0.0.0.0:8080`. */
  listenAddress: string;
  /** Every HTTP route served (method and fastify path), Connect's and REST's included. */
  httpRoutes: ReadonlyArray<{ method: string; url: string }>;
  /** The store's query builder, in the store's SQL dialect: for tests and operators' tools. */
  db: Kysely<Database>;
  /** How many passwords this server has hashed since it started: for tests and operators' tools. */
  passwordHashes(): number;
  /** Resolves once no RPC's work is running, including work whose caller's deadline passed or who went away. */
  settled(): Promise<void>;
  /** Stops accepting, finishes in-flight requests, commits pending writes, closes the store. */
  close(): Promise<void>;
}

/**
 * Everything the app is wired from: the store, the instance, and the domain's commands and
 * queries, built from the settings by {@link buildDeps}. No framework, no port, no worker.
 */
export interface Deps {
  config: Config;
  tls: TlsFiles | undefined;
  store: Db;
  instance: { id: string; created: boolean };
  newId: ReturnType<typeof createIdGenerator>;
  now: () => number;
  secretBox: ReturnType<typeof createSecretBox>;
  /** Wakes the outbox dispatcher once started ({@link startServer}); nothing before. */
  outboxWake: { wake?: () => void };
  /** Whether the server is stopping, and what the last readiness probe found. */
  lifecycle: { shuttingDown: boolean; lastReady: boolean };
  readiness: { ready(): Promise<boolean>; closing(): boolean };
  metrics: ReturnType<typeof createMetrics>;
  outbox: ReturnType<typeof createOutboxStore>;
  passwordHashes(): number;
  limitSource: ReturnType<typeof sourceLimit>;
  callerAccess: ReturnType<typeof createCallerAccess>;
  userStore: UserStore;
  users: ReturnType<typeof createUserCommands>;
  idps: ReturnType<typeof createIdpCommands>;
  lockout: ReturnType<typeof createLockoutCommands>;
  passwords: ReturnType<typeof createPasswordCommands>;
  pingOneExternal: ReturnType<typeof createPingOneExternalPasswords>;
  sessionCommands: ReturnType<typeof createSessionCommands>;
  passkeys: ReturnType<typeof createPasskeyCommands>;
  states: ReturnType<typeof createUserStateCommands>;
  queries: ReturnType<typeof createUserQueries>;
  changes: ReturnType<typeof createUserChangeCommands>;
  orgs: ReturnType<typeof createOrgCommands>;
  machineSecrets: ReturnType<typeof createMachineSecretCommands>;
  verification: ReturnType<typeof createVerificationCommands>;
  personalAccessTokens: ReturnType<typeof createPersonalAccessTokenCommands>;
  bulk: ReturnType<typeof createBulkImport>;
  importData: ReturnType<typeof createImportData>;
}

/** The app {@link buildApp} wired, not yet listening, and what the start needs of it. */
export interface BuiltApp {
  app: FastifyInstance;
  rpcPaths: string[];
  restRoutes: Array<{ method: string; url: string }>;
  httpRoutes: Array<{ method: string; url: string }>;
  /** Resolves once no RPC's work is running. */
  settled(): Promise<void>;
  /** A transport calling the services in process, through the same interceptors (for tests). */
  inProcessTransport(): Transport;
}

/**
 * Checks the settings, opens the store, creates the instance on first start, and builds the
 * domain's commands and queries over the store. Starts nothing.
 */
export async function buildDeps(config: Config): Promise<Deps> {
  // Every setting is checked before the store is touched: a start that fails on one writes nothing.
  const { tls } = await preflight(config);
  // admin.pat and master.key live in the data directory whichever store is used.
  const pendingKey = prepareMasterKey(config.masterKey, config.dataDir);
  // On PostgreSQL the data directory is made once the database answered.
  if (!config.databaseUrl) createDataDir(config);
  let store: Db;
  try {
    store = refusingWritesOfEndedRequests(
      config.databaseUrl ? await openPostgres(config.databaseUrl, config.databasePoolSize, { listen: true }) : await openSqlite(config.dataDir),
    );
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
  const outboxWake: Deps["outboxWake"] = {};
  // A committed change with messages wakes the dispatcher, so mails leave without waiting a poll.
  const userStore = withWake(createUserStore(store), () => outboxWake.wake?.());
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
  const lifecycle = { shuttingDown: false, lastReady: true };
  // Probes asked for while one is under way, or in the same turn of the event loop after it
  // answered, share its answer: a Health/Check per call (load balancers, gRPC clients' health
  // checking) costs one store read per moment, not one per call. (SQLite answers at once, so
  // without the turn the calls of one burst each read again.)
  let probing: Promise<boolean> | undefined;
  const storeAnswers = createStoreProbe(store);
  const readiness = {
    async ready() {
      if (lifecycle.shuttingDown) {
        lifecycle.lastReady = false;
        return false;
      }
      probing ??= storeAnswers(2000).finally(() => {
        setImmediate(() => {
          probing = undefined;
        });
      });
      const answers = await probing;
      lifecycle.lastReady = !lifecycle.shuttingDown && answers;
      return lifecycle.lastReady;
    },
    closing: () => lifecycle.shuttingDown,
  };
  const metrics = createMetrics({
    outboxUnsent: () => outbox.countUnsent(),
    connections: () => store.connections(),
    commitsWaiting: () => store.writes.waiting(),
    ready: () => lifecycle.lastReady,
  });
  store.writes.onBatch = (size, seconds, failed) => metrics.batch(size, seconds, failed);
  const sessionStore = withEventCount(createSessionStore(store), metrics.events);
  // The instance's lockout policy until an administrator stores one (admin UpdateLockoutPolicy).
  const defaultLockout = { maxPasswordAttempts: config.maxPasswordAttempts, maxOtpAttempts: 0 };
  const lockout = createLockoutCommands({ store: createLockoutStore(store), defaultLockout });
  const passwords = createPasswordCommands({ store: sessionStore, hasher, hashRegistry, secretBox, newId, notifier, attempts: userAttempts });
  const pingOneExternal = createPingOneExternalPasswords({ store, userStore, secretBox, config });
  // The relying party of passkeys: USERPORT_EXTERNAL_URL's host is its id, its origin the page's.
  const external = new URL(config.externalUrl);
  const passkeys = createPasskeyCommands({
    store: sessionStore,
    secretBox,
    newId,
    notifier,
    rp: { id: external.hostname, origin: external.origin, name: "userport" },
    externalUrl: config.externalUrl,
    attempts: userAttempts,
    now,
  });
  const sessionCommands = createSessionCommands({
    store: sessionStore,
    passkeys,
    externalPasswords: pingOneExternal.passwords,
    hasher,
    hashRegistry,
    secretBox,
    newId,
    attempts: userAttempts,
    lockoutPolicy: async (instanceId, orgId) => (await lockout.orgPolicy(instanceId, orgId)).policy,
    now,
  });
  const callerAccess = createCallerAccess({
    credentials: createCredentialStore(store),
    now,
    callerCacheMs: config.callerCacheMs,
    // Replicas on PostgreSQL tell each other what to forget.
    replicas: store.notices,
  });
  const forgetCallers = callerAccess.forgetCallers;
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
  const machineSecrets = createMachineSecretCommands({ users: userStore, secrets: createMachineSecretStore(store), now });
  const verification = createVerificationCommands({ store: userStore, changes, newId, secretBox, notifier, hasher, attempts: userAttempts });
  const personalAccessTokens = createPersonalAccessTokenCommands({ store: orgStore, newId, now, onCallerChanged: forgetCallers });
  const bulk = createBulkImport({ users, userStore, idps, store: createBulkStore(store), newId, now });
  const importData = createImportData({ bulk, orgs, userChanges: changes });
  return {
    config,
    tls,
    store,
    instance,
    newId,
    now,
    secretBox,
    outboxWake,
    lifecycle,
    readiness,
    metrics,
    outbox,
    passwordHashes: () => passwordHashes,
    limitSource,
    callerAccess,
    userStore,
    users,
    idps,
    lockout,
    passwords,
    pingOneExternal,
    sessionCommands,
    passkeys,
    states,
    queries,
    changes,
    orgs,
    machineSecrets,
    verification,
    personalAccessTokens,
    bulk,
    importData,
  };
}

/**
 * Wires the protocol edge and the service implementations over `deps` and returns the fastify
 * app: every route registered, nothing listening, no background worker started.
 */
export async function buildApp(deps: Deps): Promise<BuiltApp> {
  const { config, tls, store, instance, readiness, lifecycle, metrics, callerAccess, userStore, limitSource } = deps;
  const { users, idps, lockout, passwords, sessionCommands, passkeys, states, queries, changes, orgs, machineSecrets } = deps;
  const { verification, personalAccessTokens, bulk, importData } = deps;
  // Unary gRPC calls are served off the HTTP/2 stream once the routes are known (src/edge/grpc-stream.ts).
  const streams: StreamSlot = {};
  const app = Fastify({
    logger: loggerOptions(config.logLevel),
    genReqId: requestId,
    // fastify's own request lines are replaced by the access log (src/edge/access-log.ts).
    logController: new LogController({
      disableRequestLogging: config.logLevel !== "debug" && config.logLevel !== "trace",
    }),
    serverFactory: onePortServerFactory(tls, streams),
    bodyLimit: config.bodyLimitBytes,
    // A path parameter holds an id of up to 200 runes; percent-encoded, a rune takes up to 12 bytes.
    routerOptions: { maxParamLength: 2400 },
    // The router's own refusals (broken percent-encoding, an over-long path parameter) in the
    // gateway's error shape, without echoing the URL.
    frameworkErrors: (error, _request, reply) => {
      const status = error.statusCode ?? 400;
      const message = error.code === "FST_ERR_MAX_PARAM_LENGTH" ? "a path parameter is too long" : "the request URL is malformed";
      void (reply as FastifyReply).code(status < 500 ? status : 400).send(edgeRestError(400, message));
    },
  });
  // Errors are logged with the request's logger when there is one: the line carries the request id.
  const logOf = (ctx: HandlerContext) => requestLogOf(ctx) ?? app.log;
  // What the context of every call holds: the client's address (for the rate limits) and the
  // request's record (for the access log and the error lines).
  const callValues = (address: string, record: RequestRecord) => createContextValues().set(clientAddressKey, address).set(requestRecordKey, record);
  const fastifyCallValues = (request: FastifyRequest) => callValues(request.ip, requestRecord(request));
  // Deadlines and cancellation, for the Connect protocols and REST alike.
  const calls = createCalls();
  const { access, secureService } = createAccess(callerAccess);
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
    passkeys,
    machineSecrets,
  };
  const management = observeService(ManagementService, secureService(ManagementService, createManagementService(services), logOf));
  const userV2 = observeService(
    UserService,
    secureService(
      UserService,
      limitBySource(createUserService(services), limitSource, {
        verifyEmail: () => true,
        verifyPhone: () => true,
        setPassword: (req) => req.verification.case !== undefined,
      }),
      logOf,
    ),
  );
  const checksCredentials = (req: { checks?: { password?: unknown; totp?: unknown } }) => req.checks?.password !== undefined || req.checks?.totp !== undefined;
  const sessionV2 = observeService(
    SessionService,
    secureService(
      SessionService,
      limitBySource(
        createSessionService(services, (instanceId, userId) => userStore.getUser(instanceId, userId)),
        limitSource,
        {
          createSession: checksCredentials,
          setSession: checksCredentials,
        },
      ),
      logOf,
    ),
  );
  const admin = observeService(AdminService, secureService(AdminService, createAdminService(services, importData), logOf));
  const migration = observeService(MigrationService, secureService(MigrationService, createMigrationService({ bulk, access }), logOf));
  // Every route served, for operators' tools and the test that compares them with the OpenAPI document.
  const routes: Array<{ method: string; url: string }> = [];
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
  });
  // Registered first, so that every request (CORS preflights and 404s too) gets an id and a line.
  const restRpcs = new Map<string, string>();
  const streamCallLog = registerAccessLog(app, { restRpcs, onResponse: metrics.request });

  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins.includes("*") ? true : config.corsOrigins,
      methods: [...connectCors.allowedMethods, "PUT", "PATCH", "DELETE"],
      allowedHeaders: [...connectCors.allowedHeaders, "authorization", "x-zitadel-orgid"],
      exposedHeaders: [...connectCors.exposedHeaders],
      maxAge: 7200,
    });
  }

  // The Connect services and their router options, served below and to in-process transports.
  const rpcInterceptors = [calls.interceptor, nulCharactersInterceptor];
  const rpcJsonOptions = { ignoreUnknownFields: true };
  const connectRoutes = (router: ConnectRouter) => {
    router.service(ManagementService, management);
    router.service(UserService, userV2);
    router.service(SessionService, sessionV2);
    router.service(AdminService, admin);
    // Its stream's results are encoded by hand for binary clients (src/edge/import-results.ts).
    router.service(MigrationService, migration, { interceptors: [importResultsEncoded, ...rpcInterceptors] });
    const reflection = createReflectionServices([ManagementService, UserService, SessionService, AdminService, MigrationService, Health]);
    router.service(ServerReflectionV1, reflection.v1);
    router.service(ServerReflectionV1alpha, reflection.v1alpha);
    router.service(
      Health,
      createHealthService(
        [ManagementService.typeName, UserService.typeName, SessionService.typeName, AdminService.typeName, MigrationService.typeName],
        readiness,
      ),
    );
  };
  // In a scope of its own, so that the grpc-message hook runs for Connect's routes only.
  let rpcPaths: string[] = [];
  await app.register(async (rpc) => {
    registerGrpcMessageEncoding(rpc);
    alignEnvelopeChunks(rpc);
    const served = registerRpcRoutes(rpc, {
      interceptors: rpcInterceptors,
      routes: connectRoutes,
      jsonOptions: rpcJsonOptions,
      contextValues: fastifyCallValues,
      readMaxBytes: config.bodyLimitBytes,
    });
    rpcPaths = served.paths;
    // CORS (when configured) only looks at requests with an Origin, which the stream path leaves to fastify.
    streams.take = createGrpcStreams({
      fastPaths: served.fastPaths,
      log: streamCallLog,
      contextValues: (address, record) => callValues(address ?? "", record),
      // At debug, fastify writes request lines of its own: every request goes through it.
      enabled: () => app.log.level !== "debug" && app.log.level !== "trace",
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
    fastifyCallValues,
    calls,
  );

  for (const route of restRoutes) restRpcs.set(`${route.httpMethod} ${route.url}`, `${route.service.typeName}/${route.method.name}`);

  // Liveness: the process is up and answers. Readiness: the store answers too, and it is not stopping.
  app.get("/healthz", async () => ({ status: "SERVING" }));
  app.get("/readyz", async (_request, reply) => {
    if (await readiness.ready()) return { status: "SERVING" };
    return reply.code(503).send({ status: "NOT_SERVING", reason: lifecycle.shuttingDown ? "shutting down" : "the store does not answer" });
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
    void reply.code(status).send(edgeRestError(status, otherMethod ? "Method Not Allowed" : "Not Found"));
  });

  // Fastify's own failures (malformed JSON, body too large, unknown content type) in the REST
  // error shape; anything unexpected is logged and answered without detail.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status >= 500) {
      logUnexpected(request.log, error);
      return reply.code(500).send(edgeRestError(500, ""));
    }
    return reply.code(status).send(edgeRestError(status, error.message));
  });

  // PingOne's Platform API under /v1/environments (src/pingone), over the same domain and store.
  await registerPingOneFacade(app, {
    store,
    config,
    callerAccess,
    userStore,
    users,
    states,
    changes,
    queries,
    orgs,
    passwords,
    sessionCommands,
    lockout,
    newId: deps.newId,
    secretBox: deps.secretBox,
    external: deps.pingOneExternal,
    machineSecrets,
    personalAccessTokens,
    instanceId: instance.id,
  });

  // Last: awaiting a scope before the root error handler is set would leave the REST routes
  // registered so far with fastify's default error handler.
  await registerLoginPages(app, { verification, passkeys, instanceId: instance.id, limitSource });
  await registerUploadRoute(app, {
    bulk,
    access,
    authenticate: (headers) => callerAccess.authenticate(headers.get("authorization")),
  });

  return {
    app,
    rpcPaths,
    restRoutes: restRoutes.map((route) => ({ method: route.httpMethod, url: route.url })),
    httpRoutes: routes,
    settled: () => calls.settled(),
    inProcessTransport: () => createRouterTransport(connectRoutes, { router: { interceptors: rpcInterceptors, jsonOptions: rpcJsonOptions } }),
  };
}

/**
 * Builds the dependencies and the app, listens on the configured port and starts the background
 * workers (the outbox dispatcher); the returned `close` stops them all in order.
 */
export async function startServer(config: Config): Promise<RunningServer> {
  const deps = await buildDeps(config);
  const { store, instance, metrics, outbox, lifecycle, secretBox, now } = deps;
  const built = await buildApp(deps);
  const { app } = built;

  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const scheme = deps.tls ? "https" : "http";
  const listenAddress = `${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  app.log.info({ instance: instance.id, instanceCreated: instance.created, listen: listenAddress }, "userport is serving");

  let smtp: ReturnType<typeof smtpSender> | undefined;
  let dispatcher: Dispatcher | undefined;
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
    const started = dispatcher;
    deps.outboxWake.wake = () => started.wake();
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
    routes: { rpc: built.rpcPaths, rest: built.restRoutes },
    inProcessTransport: built.inProcessTransport,
    instanceId: instance.id,
    instanceCreated: instance.created,
    listenAddress,
    httpRoutes: built.httpRoutes,
    db: store.db,
    passwordHashes: deps.passwordHashes,
    settled: built.settled,
    close() {
      closing ??= (async () => {
        lifecycle.shuttingDown = true;
        lifecycle.lastReady = false;
        await app.close();
        // Work whose caller has gone may still be running: it finishes before the store closes.
        await built.settled();
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
    async write(change, request) {
      await store.write(change, request);
      if (change.credentials) count(change.credentials.events.map((event) => event.type));
    },
  };
}

/** The store, calling `wake` after each committed write that enqueued messages. */
function withWake(store: UserStore, wake: () => void): UserStore {
  return {
    ...store,
    async createUser(change, request) {
      await store.createUser(change, request);
      if (change.outbox?.length) wake();
    },
    async changeUser(change, request) {
      await store.changeUser(change, request);
      if (change.outbox?.length) wake();
    },
    async updateUser(update, request) {
      await store.updateUser(update, request);
      if (update.outbox?.length) wake();
    },
  };
}
