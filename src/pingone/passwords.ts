import { PasswordErrors, PingOneErrors } from "../domain/error-catalogue.js";
import { isCredentialsCheckFailed, isDomainError } from "../domain/errors.js";
import { type ExternalPasswordLink, externalLinkValue, gatewayUserTypes } from "../domain/external-passwords.js";
import { metadataSetEvent } from "../domain/users.js";
import type { User } from "../domain/ports.js";
import type { ChangeTarget } from "../domain/user-states.js";
import type { Call } from "./context.js";
import { invalidData, MESSAGES, PingOneError, toPingOneError } from "./errors.js";
import type { Handle } from "./index.js";
import { metadataEntry, readExternalLink } from "./users.js";

/**
 * PingOne's password operations on `/users/{userID}/password` (Platform API "User Passwords"),
 * told apart by the media type, over ZITADEL's password commands: the same complexity policy,
 * hasher, failure count and lockout policy as ZITADEL's SetPassword and CreateSession. All need
 * `user.write` on the user's population.
 */
const MEDIA = {
  set: "application/vnd.pingidentity.password.set+json",
  setValue: "application/vnd.pingidentity.password.setvalue+json",
  setGateway: "application/vnd.pingidentity.password.setgateway+json",
  reset: "application/vnd.pingidentity.password.reset+json",
  check: "application/vnd.pingidentity.password.check+json",
  recover: "application/vnd.pingidentity.password.recover+json",
  sendRecoveryCode: "application/vnd.pingidentity.password.sendrecoverycode+json",
  forceChange: "application/vnd.pingidentity.password.forcechange",
  unlock: "application/vnd.pingidentity.password.unlock",
};
/** The no-body actions are documented both with and without `+json`: both are accepted. */
const bare = (type: string) => [type, type.endsWith("+json") ? type.slice(0, -5) : `${type}+json`];

/** PingOne's password status; EXTERNAL while the password lives only in a gateway's directory. */
export function passwordStatus(user: User, external: ExternalPasswordLink | undefined): string {
  if (user.state === "LOCKED") return "PASSWORD_LOCKED_OUT";
  if (!user.human?.passwordSet) return external ? "EXTERNAL" : "NO_PASSWORD";
  if (user.human.passwordChangeRequired) return "MUST_CHANGE_PASSWORD";
  return "OK";
}

/** `known`: the user's external link as just read (a password check never changes it). */
async function stateResource(call: Call, user: User, known?: { link: ExternalPasswordLink | undefined }) {
  const external = user.human?.passwordSet ? undefined : known ? known.link : await call.deps.externalPasswords.link(user);
  return {
    _links: { self: call.link("users", user.id, "password"), user: call.link("users", user.id) },
    environment: { id: call.envId },
    user: { id: user.id },
    passwordPolicy: { id: call.envId },
    status: passwordStatus(user, external),
    ...(external ? externalLinkValue(external) : {}),
    ...(user.human?.passwordChangedAt !== undefined && user.human.passwordSet ? { lastChangedAt: new Date(user.human.passwordChangedAt).toISOString() } : {}),
  };
}

/**
 * PingOne's "Update Password (Set Gateway)": links the user to a gateway's user type with its
 * correlation attributes (the body is `{id, userType: {id}, correlationAttributes}`; the nested
 * `password.external.gateway` form of the docs' request model is accepted too). With the user
 * type's passwordAuthority LDAP the password stored here is deleted (the directory holds it from
 * now on); with PING_ONE a stored password stays, and one is captured at the next sign-in only when
 * there is none. Recorded as the link's metadata event and `user.human.password.external.linked`.
 */
async function setGateway(call: Call, user: User, body: Record<string, unknown>) {
  const nested = (body.password as { external?: { gateway?: unknown } } | undefined)?.external?.gateway;
  const gateway = body.id === undefined && nested !== undefined ? nested : body;
  const link = await readExternalLink(call, { gateway }, { password: {} });
  const found = await call.deps.gateways.find(call.instanceId, link.gatewayId);
  const ldapAuthority = found !== undefined && gatewayUserTypes(found).find((type) => type.id === link.userTypeId)?.passwordAuthority === "LDAP";
  const entry = metadataEntry("password.external", externalLinkValue(link));
  const target: ChangeTarget = { instanceId: call.instanceId, orgId: undefined, creator: call.principal.userId, api: "v1" };
  await call.deps.changes.update(target, { userId: user.id, notFound: PingOneErrors.userNotFound }, (current) => {
    const removePassword = ldapAuthority && current.human?.passwordSet === true;
    return {
      events: [
        metadataSetEvent(entry),
        { type: "user.human.password.external.linked", payload: { gatewayId: link.gatewayId, userTypeId: link.userTypeId, passwordRemoved: removePassword } },
      ],
      setMetadata: [entry],
      ...(removePassword ? { set: { passwordHash: null } } : {}),
    };
  });
  const updated = (await call.deps.userStore.getUser(call.instanceId, user.id))!;
  return { status: 200, body: await stateResource(call, updated, { link }) };
}

export function registerPasswordRoutes(handle: Handle) {
  const path = "/environments/:envId/users/:userId/password";

  async function loadUser(call: Call, userId: string): Promise<User> {
    const user = await call.deps.userStore.getUser(call.instanceId, userId);
    if (user?.type !== "human" || !(call.may("user.read", user.orgId) || call.may("user.write", user.orgId))) {
      throw call.notFound(`user with ID ${userId}`);
    }
    call.require("user.write", user.orgId);
    return user;
  }
  const reread = async (call: Call, userId: string) => (await call.deps.userStore.getUser(call.instanceId, userId))!;
  const target = (call: Call): ChangeTarget => ({ instanceId: call.instanceId, orgId: undefined, creator: call.principal.userId, api: "v1" });

  const stringField = (body: Record<string, unknown>, key: string): string => {
    const value = body[key];
    if (value === undefined || value === null || value === "") {
      throw new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [{ code: "EMPTY_VALUE", target: key, message: "must not be empty" }]);
    }
    if (typeof value !== "string") throw invalidData(key, `${key} must be a string`);
    return value;
  };

  handle("GET", path, async (call, params) => {
    const user = await loadUser(call, params.userId!);
    return { status: 200, body: await stateResource(call, user) };
  });

  handle("PUT", path, async (call, params) => {
    const media = call.accept(MEDIA.set, MEDIA.setValue, MEDIA.reset, MEDIA.setGateway);
    const body = call.json();
    const user = await loadUser(call, params.userId!);
    if (media === MEDIA.setGateway) return setGateway(call, user, body);
    if (media === MEDIA.reset) {
      const currentPassword = stringField(body, "currentPassword");
      const newPassword = stringField(body, "newPassword");
      try {
        await call.deps.passwords.setPassword({
          instanceId: call.instanceId,
          orgId: undefined,
          userId: user.id,
          creator: call.principal.userId,
          password: newPassword,
          changeRequired: false,
          verification: { currentPassword },
          authorize: () => undefined,
        });
      } catch (err) {
        if (isDomainError(err) && err.id === PasswordErrors.invalid.id) {
          throw invalidData("currentPassword", "The provided current password did not match provisioned password");
        }
        const failure = toPingOneError(err, call.request.log);
        const detail = failure.details[0];
        if (detail?.target === "password" && detail.innerError?.unsatisfiedRequirements) {
          throw invalidData("newPassword", "New password did not satisfy password policy requirements", "INVALID_VALUE", detail.innerError);
        }
        throw failure;
      }
    } else {
      const value = stringField(body, "value");
      if (body.forceChange !== undefined && typeof body.forceChange !== "boolean") throw invalidData("forceChange", "forceChange must be a boolean");
      await call.deps.passwords.setPassword({
        instanceId: call.instanceId,
        orgId: undefined,
        userId: user.id,
        creator: call.principal.userId,
        password: value,
        changeRequired: body.forceChange === true,
        verification: undefined,
        authorize: () => undefined,
      });
    }
    return { status: 200, body: await stateResource(call, await reread(call, user.id)) };
  });

  handle("POST", path, async (call, params) => {
    const media = call.accept(MEDIA.check, MEDIA.recover, ...bare(MEDIA.sendRecoveryCode), ...bare(MEDIA.forceChange), ...bare(MEDIA.unlock));
    const user = await loadUser(call, params.userId!);
    if (media === MEDIA.check) {
      const password = stringField(call.json(), "password");
      if (user.state === "LOCKED") {
        throw invalidData("password", "The user's password is locked", "ACCOUNT_NOT_USABLE", { status: "PASSWORD_LOCKED_OUT" });
      }
      const external = { link: user.human?.passwordSet ? undefined : await call.deps.externalPasswords.link(user) };
      if (!user.human?.passwordSet && !external.link) {
        throw invalidData("password", "The user has no password", "NO_PASSWORD");
      }
      try {
        await call.deps.sessions.checkUserPassword(call.instanceId, user.id, password, call.principal.userId);
      } catch (err) {
        if (isCredentialsCheckFailed(err)) {
          const { maxPasswordAttempts } = await call.deps.lockoutPolicy(call.instanceId, user.orgId);
          const innerError = maxPasswordAttempts > 0 ? { failuresRemaining: Math.max(0, maxPasswordAttempts - err.failedAttempts) } : undefined;
          throw invalidData("password", "The provided password did not match provisioned password", "INVALID_VALUE", innerError);
        }
        // The gateway or its directory could not decide (misconfigured, unreachable): not a wrong password.
        if (isDomainError(err) && err.id.startsWith("PINGONE-")) throw err;
        if (isDomainError(err) && err.kind === "FailedPrecondition") {
          throw invalidData("password", err.message, "ACCOUNT_NOT_USABLE");
        }
        throw err;
      }
      return { status: 200, body: await stateResource(call, await reread(call, user.id), external) };
    }
    if (media === MEDIA.recover) {
      const body = call.json();
      const code = stringField(body, "recoveryCode");
      const newPassword = stringField(body, "newPassword");
      await call.deps.passwords.setPassword({
        instanceId: call.instanceId,
        orgId: undefined,
        userId: user.id,
        creator: call.principal.userId,
        password: newPassword,
        changeRequired: false,
        verification: { code },
        authorize: () => undefined,
      });
      return { status: 200, body: await stateResource(call, await reread(call, user.id)) };
    }
    if (bare(MEDIA.sendRecoveryCode).includes(media)) {
      await call.deps.passwords.requestReset({
        instanceId: call.instanceId,
        userId: user.id,
        creator: call.principal.userId,
        medium: { kind: "send" },
        authorize: () => undefined,
      });
      return { status: 200, body: await stateResource(call, await reread(call, user.id)) };
    }
    if (bare(MEDIA.forceChange).includes(media)) {
      if (!user.human?.passwordSet) throw invalidData("password", "The user has no password", "NO_PASSWORD");
      // The stored password stays; the user must change it at the next sign-in.
      const changed = await call.deps.changes.update(target(call), { userId: user.id, notFound: PingOneErrors.userNotFound }, (current) =>
        current.human?.passwordChangeRequired
          ? { events: [] }
          : { events: [{ type: "user.human.password.change.required", payload: {} }], set: { passwordChangeRequired: true } },
      );
      void changed;
      return { status: 200, body: await stateResource(call, await reread(call, user.id)) };
    }
    // Unlock: the password lockout is the user's lock in ZITADEL's model.
    if (user.state === "LOCKED") await call.deps.states.unlock(target(call), user.id);
    return { status: 200, body: await stateResource(call, await reread(call, user.id)) };
  });
}
