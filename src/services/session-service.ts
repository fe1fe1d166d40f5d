import { QueryErrors, SessionErrors } from "../domain/error-catalogue.js";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { type Duration, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { ServiceDeps } from "./service-deps.js";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { TimestampQueryMethod } from "../../gen/zitadel/object_pb.js";
import { DetailsSchema } from "../../gen/zitadel/object/v2/object_pb.js";
import type { RequestChallenges } from "../../gen/zitadel/session/v2/challenge_pb.js";
import { type Session, SessionFieldName, SessionSchema, type UserAgent } from "../../gen/zitadel/session/v2/session_pb.js";
import {
  type Checks,
  CreateSessionResponseSchema,
  DeleteSessionResponseSchema,
  GetSessionResponseSchema,
  ListSessionsResponseSchema,
  type SessionService,
  SetSessionResponseSchema,
} from "../../gen/zitadel/session/v2/session_service_pb.js";
import type { SessionFilter, SessionRecord, SessionUserAgent, TimeComparison } from "../domain/ports.js";
import type { SessionChallenges, SessionChecks } from "../domain/sessions.js";
import type { User } from "../domain/ports.js";
import { DEFAULT_QUERY_LIMIT, queryLimit } from "../domain/user-queries.js";
import { principalKey } from "../edge/access.js";
import { requestOf } from "../edge/calls.js";
import { listDetailsV2, listOffset } from "./user-reads.js";

/** Reads the user a session names, to report its login and display names. */
export type SessionUserLookup = (instanceId: string, userId: string) => Promise<User | undefined>;

/**
 * The request's checks (PGV's rules, e.g. CheckUser's required search, were checked before the
 * handler ran); unsupported checks are refused, not ignored.
 */
function readChecks(checks: Checks | undefined): SessionChecks {
  if (!checks) return {};
  const result: SessionChecks = {};
  const search = checks.user?.search;
  if (search?.case === "userId") result.user = { userId: search.value };
  else if (search?.case === "loginName") result.user = { loginName: search.value };
  if (checks.password) result.password = checks.password.password;
  if (checks.totp) result.totp = checks.totp.code;
  if (checks.webAuthN) result.webAuthN = checks.webAuthN.credentialAssertionData ?? {};
  const unsupported = (
    [
      ["idp_intent", checks.idpIntent],
      ["otp_sms", checks.otpSms],
      ["otp_email", checks.otpEmail],
      ["recovery_code", checks.recoveryCode],
    ] as const
  ).filter(([, value]) => value !== undefined);
  if (unsupported.length > 0) {
    throw SessionErrors.checksUnsupported(unsupported.map(([name]) => name).join(", "));
  }
  return result;
}

/** The challenges a request asks for; OTP by SMS or email is refused, not ignored. */
function readChallenges(challenges: RequestChallenges | undefined): SessionChallenges {
  if (challenges && (challenges.otpSms || challenges.otpEmail)) {
    throw SessionErrors.challengesUnsupported();
  }
  const webAuthN = challenges?.webAuthN;
  if (!webAuthN) return {};
  // PGV's rules (defined_only, not_in: [0]) were checked before the handler ran.
  const userVerification = ({ 1: "required", 2: "preferred", 3: "discouraged" } as const)[webAuthN.userVerificationRequirement as 1 | 2 | 3];
  return { webAuthN: { domain: webAuthN.domain, userVerification } };
}

/** The response's challenges: the request options of a WebAuthN challenge, as ZITADEL answers them. */
function challengesOf(challenges: { webAuthN?: JsonObject }) {
  return challenges.webAuthN ? { challenges: { webAuthN: { publicKeyCredentialRequestOptions: challenges.webAuthN } } } : {};
}

/** The lifetime in milliseconds; PGV's rule (greater than 0s) was checked before. */
function readLifetime(lifetime: Duration | undefined): number | undefined {
  if (lifetime === undefined) return undefined;
  return Number(lifetime.seconds) * 1000 + Math.floor(lifetime.nanos / 1_000_000);
}

function readMetadata(metadata: { [key: string]: Uint8Array }): Record<string, string> {
  return Object.fromEntries(Object.entries(metadata).map(([key, value]) => [key, Buffer.from(value).toString("base64")]));
}

function readUserAgent(agent: UserAgent | undefined): SessionUserAgent {
  if (!agent) return {};
  const header = Object.fromEntries(Object.entries(agent.header).map(([name, values]) => [name, values.values]));
  return {
    ...(agent.fingerprintId !== undefined ? { fingerprintId: agent.fingerprintId } : {}),
    ...(agent.ip !== undefined ? { ip: agent.ip } : {}),
    ...(agent.description !== undefined ? { description: agent.description } : {}),
    ...(Object.keys(header).length > 0 ? { header } : {}),
  };
}

const COMPARISON: Record<TimestampQueryMethod, TimeComparison> = {
  [TimestampQueryMethod.EQUALS]: "=",
  [TimestampQueryMethod.GREATER]: ">",
  [TimestampQueryMethod.GREATER_OR_EQUALS]: ">=",
  [TimestampQueryMethod.LESS]: "<",
  [TimestampQueryMethod.LESS_OR_EQUALS]: "<=",
};

function sessionDetails(session: SessionRecord) {
  return create(DetailsSchema, {
    sequence: BigInt(session.sequence),
    changeDate: timestampFromMs(session.changedAt),
    resourceOwner: session.instanceId,
    creationDate: timestampFromMs(session.createdAt),
  });
}

function sessionToPb(session: SessionRecord, user: User | undefined): Session {
  const at = (ms: number | undefined) => (ms === undefined ? undefined : { verifiedAt: timestampFromMs(ms) });
  const { userAgent } = session;
  return create(SessionSchema, {
    id: session.id,
    creationDate: timestampFromMs(session.createdAt),
    changeDate: timestampFromMs(session.changedAt),
    sequence: BigInt(session.sequence),
    factors: {
      ...(session.userCheckedAt !== undefined
        ? {
            user: {
              verifiedAt: timestampFromMs(session.userCheckedAt),
              id: session.userId,
              loginName: user?.preferredLoginName ?? user?.username ?? "",
              displayName: user?.human?.profile.displayName ?? user?.machine?.name ?? "",
              organizationId: session.userOrgId,
            },
          }
        : {}),
      ...(session.passwordCheckedAt !== undefined ? { password: at(session.passwordCheckedAt) } : {}),
      ...(session.totpCheckedAt !== undefined ? { totp: at(session.totpCheckedAt) } : {}),
      ...(session.webAuthNCheckedAt !== undefined
        ? { webAuthN: { verifiedAt: timestampFromMs(session.webAuthNCheckedAt), userVerified: session.webAuthNUserVerified ?? false } }
        : {}),
    },
    metadata: Object.fromEntries(Object.entries(session.metadata).map(([key, value]) => [key, Buffer.from(value, "base64")])),
    // No user agent given, none returned: ZITADEL's userAgentToPb (internal/api/grpc/session/v2)
    // answers nil for an empty one.
    ...(Object.keys(userAgent).length > 0
      ? {
          userAgent: {
            ...userAgent,
            header: Object.fromEntries(Object.entries(userAgent.header ?? {}).map(([name, values]) => [name, { values }])),
          },
        }
      : {}),
    ...(session.expiresAt !== undefined ? { expirationDate: timestampFromMs(session.expiresAt) } : {}),
  });
}

/** `zitadel.session.v2.SessionService`: sessions with user, password and TOTP checks. */
export function createSessionService({ sessions }: ServiceDeps, userOf: SessionUserLookup): ServiceImpl<typeof SessionService> {
  const principalOf = (ctx: HandlerContext) => ctx.values.get(principalKey)!;
  const withUser = async (session: SessionRecord) => sessionToPb(session, session.userId === "" ? undefined : await userOf(session.instanceId, session.userId));

  return {
    async createSession(req, ctx) {
      const checks = readChecks(req.checks);
      const lifetimeMs = readLifetime(req.lifetime);
      const challenges = readChallenges(req.challenges);
      const created = await sessions.createSession({
        principal: principalOf(ctx),
        request: requestOf(ctx),
        checks,
        metadata: readMetadata(req.metadata),
        userAgent: readUserAgent(req.userAgent),
        lifetimeMs,
        challenges,
      });
      return create(CreateSessionResponseSchema, {
        details: sessionDetails(created.session),
        sessionId: created.session.id,
        sessionToken: created.token,
        ...challengesOf(created.challenges),
      });
    },

    async setSession(req, ctx) {
      const checks = readChecks(req.checks);
      const lifetimeMs = readLifetime(req.lifetime);
      const challenges = readChallenges(req.challenges);
      const changed = await sessions.setSession({
        principal: principalOf(ctx),
        request: requestOf(ctx),
        sessionId: req.sessionId,
        checks,
        metadata: readMetadata(req.metadata),
        lifetimeMs,
        challenges,
      });
      return create(SetSessionResponseSchema, {
        details: sessionDetails(changed.session),
        sessionToken: changed.token,
        ...challengesOf(changed.challenges),
      });
    },

    async getSession(req, ctx) {
      const session = await sessions.getSession(principalOf(ctx), req.sessionId, req.sessionToken);
      return create(GetSessionResponseSchema, { session: await withUser(session) });
    },

    async deleteSession(req, ctx) {
      const session = await sessions.deleteSession(principalOf(ctx), req.sessionId, req.sessionToken || undefined, requestOf(ctx));
      return create(DeleteSessionResponseSchema, {
        details: create(DetailsSchema, {
          sequence: BigInt(session.sequence),
          changeDate: timestampFromMs(session.changedAt),
          resourceOwner: session.instanceId,
        }),
      });
    },

    async listSessions(req, ctx) {
      const principal = principalOf(ctx);
      const filter: SessionFilter = {};
      for (const query of req.queries) {
        const q = query.query;
        switch (q.case) {
          case "idsQuery":
            filter.ids = [...(filter.ids ?? []), ...q.value.ids];
            break;
          case "userIdQuery":
            filter.userId = q.value.id;
            break;
          case "creatorQuery":
            // ZITADEL's sessionQueryToQuery (internal/api/grpc/session/v2/query.go): an unset id
            // means the caller, an empty one is refused.
            if (q.value.id === "") throw QueryErrors.sessionIdQueryEmpty();
            filter.creator = q.value.id ?? principal.userId;
            break;
          case "creationDateQuery":
            filter.createdAt = { method: COMPARISON[q.value.method] ?? "=", at: q.value.creationDate ? timestampMs(q.value.creationDate) : 0 };
            break;
          case "expirationDateQuery":
            filter.expiresAt = { method: COMPARISON[q.value.method] ?? "=", at: q.value.expirationDate ? timestampMs(q.value.expirationDate) : 0 };
            break;
          case "userAgentQuery":
            if (!q.value.fingerprintId) {
              // ZITADEL takes the caller's own user agent when unset; a token here carries none
              // (as a personal access or session token carries none in ZITADEL), and an empty id is refused.
              throw QueryErrors.sessionQueryInvalid();
            }
            filter.fingerprintId = q.value.fingerprintId;
            break;
          default:
            // Unreachable: PGV's required oneof refused a query without a criterion.
            break;
        }
      }
      const page = await sessions.listSessions(principal, filter, {
        offset: listOffset(req.query?.offset ?? 0n),
        limit: queryLimit(req.query?.limit ?? 0, DEFAULT_QUERY_LIMIT),
        // Sessions sort by creation date, the only sort field there is.
        asc: req.sortingColumn === SessionFieldName.CREATION_DATE || req.sortingColumn === SessionFieldName.UNSPECIFIED ? (req.query?.asc ?? false) : false,
      });
      return create(ListSessionsResponseSchema, {
        details: listDetailsV2(page.total, Date.now()),
        sessions: await Promise.all(page.sessions.map(withUser)),
      });
    },
  };
}
