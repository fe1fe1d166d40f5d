import { CLAIMS, claimError } from "./claims.js";
import { type CatalogueError, UserChangeErrors, UserCreationErrors } from "./error-catalogue.js";
import { normalizeEmail } from "./human.js";
import type { IdGenerator } from "./ids.js";
import type { Idp, IdpCommands } from "./idps.js";
import type { Notifier } from "./notifications.js";
import type { SecretBox } from "./secrets.js";
import type { IdpLink, MetadataEntry, NewEvent, StoredMetadata, User, UserStore, UserUpdate } from "./ports.js";
import { retryAfterConflict } from "./conflicts.js";
import type { ChangeTarget } from "./user-states.js";
import { claimUsername, linkAddedEvent, linkClaim, makeCode, metadataSetEvent } from "./users.js";

export interface UserChangeDeps {
  store: UserStore;
  newId: IdGenerator;
  secretBox: SecretBox;
  /** Renders the mails new codes are sent with, for the outbox. */
  notifier: Notifier;
  /** Finds the identity providers links name. */
  idps: Pick<IdpCommands, "usableIdp" | "findIdp">;
  now?: () => number;
}

/** What a change writes, decided from the user as it is now. */
type Plan = Omit<UserUpdate, "instanceId" | "userId" | "expectedSequence" | "at" | "creator" | "events"> & {
  events: NewEvent[];
};

/** A user's id, "not found" as the command reports it (ZITADEL's ids differ per command). */
interface Lookup {
  userId: string;
  /** The error for a user that does not exist (or not in the target organisation). */
  notFound: CatalogueError;
}

/**
 * Changes of existing users beyond their state: username, initialisation. Each reads the user,
 * checks ZITADEL's preconditions, and writes its events and read-model changes in one atomic
 * update that applies only if nobody changed the user meanwhile (retried if so).
 */
export function createUserChangeCommands(deps: UserChangeDeps) {
  const now = deps.now ?? Date.now;

  async function load(target: ChangeTarget, lookup: Lookup): Promise<User> {
    const user = await deps.store.getUser(target.instanceId, lookup.userId);
    if (!user || (target.orgId !== undefined && user.orgId !== target.orgId)) {
      throw lookup.notFound();
    }
    return user;
  }

  /**
   * Runs `plan` on the current user and writes what it returns; returns the user after the
   * change. `plan` throws to refuse, and may return no events, in which case nothing is written.
   */
  async function update(
    target: ChangeTarget,
    lookup: Lookup,
    plan: (user: User, at: number) => Plan | Promise<Plan>,
    apply: (user: User) => User = (user) => user,
  ): Promise<User> {
    for (let attempt = 1; ; attempt++) {
      const user = await load(target, lookup);
      target.authorize?.(user);
      const at = now();
      const planned = await plan(user, at);
      if (planned.events.length === 0) return user;
      try {
        await deps.store.updateUser(
          {
            ...planned,
            instanceId: target.instanceId,
            userId: user.id,
            expectedSequence: user.sequence,
            at,
            creator: target.creator,
          },
          target.request,
        );
      } catch (err) {
        if (await retryAfterConflict(err, attempt)) continue;
        throw err;
      }
      return apply({ ...user, changedAt: at, sequence: user.sequence + planned.events.length });
    }
  }

  /**
   * UpdateUserName: the old username is released and the new one claimed in the same
   * transaction, so the old one is free at once and a taken one fails as on creation.
   */
  async function changeUsername(target: ChangeTarget, userId: string, requested: string): Promise<User> {
    const username = requested.trim();
    if (username === "") throw UserChangeErrors.usernameMissing();
    try {
      return await update(
        target,
        { userId, notFound: UserChangeErrors.usernameUserNotFound },
        async (user) => {
          if (user.username === username) throw UserChangeErrors.usernameNotChanged();
          return {
            events: [{ type: "user.username.changed", payload: { userName: username } }],
            set: { username },
            // Whichever scope the old name was claimed in (see usernameClaim), it is released.
            release: [{ kind: "username" }, { kind: "org_username" }],
            claim: [await claimUsername(deps.store, target.instanceId, user.orgId, username)],
          };
        },
        (user) => ({ ...user, username }),
      );
    } catch (err) {
      throw claimError(err, CLAIMS.username);
    }
  }

  /**
   * ResendHumanInitialization: only for a user still in state INITIAL. A new init code replaces
   * the old one (the notification side sends it); a new email, if given, is set first and is
   * unverified.
   */
  async function resendInitialization(target: ChangeTarget, userId: string, requestedEmail: string): Promise<User> {
    const email = requestedEmail.trim() === "" ? undefined : normalizeEmail(requestedEmail);
    return update(
      target,
      { userId, notFound: UserChangeErrors.initUserNotFound },
      (user, at) => {
        if (user.state !== "INITIAL" || !user.human) throw UserChangeErrors.alreadyInitialized();
        const events: NewEvent[] = [];
        const changesEmail = email !== undefined && email !== user.human.email.address;
        if (changesEmail) events.push({ type: "user.human.email.changed", payload: { email } });
        const init = makeCode(deps, "init", at, false);
        events.push({ type: "user.human.initialization.code.added", payload: { codeId: init.stored.id } });
        // The mail goes to the new address, if one was given.
        const recipient = changesEmail ? { ...user, human: { ...user.human, email: { address: email, verified: false } } } : user;
        return {
          events,
          ...(changesEmail ? { set: { email, emailVerified: false } } : {}),
          replaceCodes: ["init"],
          codes: [init.stored],
          outbox: [deps.notifier.compose({ kind: "init", user: recipient, code: init.code, at })],
        };
      },
      (user) => (email === undefined || !user.human ? user : { ...user, human: { ...user.human, email: { address: email, verified: false } } }),
    );
  }

  /**
   * v2 AddIDPLink: links an existing user to its account at a provider of the user's
   * organisation or of the instance; the account may be linked to one user only.
   */
  async function addIdpLink(target: ChangeTarget, userId: string, link: IdpLink): Promise<User> {
    try {
      return await update(target, { userId, notFound: UserChangeErrors.linkUserNotFound }, async (user) => {
        if (!(await deps.idps.usableIdp(target.instanceId, user.orgId, link.idpId))) {
          throw UserCreationErrors.linkIdpMissingV2();
        }
        return { events: [linkAddedEvent(link)], claim: [linkClaim(link.idpId, link.externalUserId)], addLinks: [link] };
      });
    } catch (err) {
      throw claimError(err, CLAIMS.idpLink);
    }
  }

  /**
   * RemoveHumanLinkedIDP / v2 RemoveIDPLink: the account is free to be linked again at once.
   * An unknown user, and a link the user does not have, are both "External IDP not found".
   */
  async function removeIdpLink(target: ChangeTarget, userId: string, idpId: string, externalUserId: string): Promise<User> {
    const missing = () => UserChangeErrors.linkNotFound();
    const user = await deps.store.getUser(target.instanceId, userId);
    if (!user || (target.orgId !== undefined && user.orgId !== target.orgId)) throw missing();
    // ZITADEL looks the link up before it checks the permission.
    const hasLink = async () =>
      (await deps.store.listIdpLinks(target.instanceId, userId)).some((link) => link.idpId === idpId && link.externalUserId === externalUserId);
    if (!(await hasLink())) throw missing();
    return update(target, { userId, notFound: UserChangeErrors.linkNotFound }, async () => {
      if (!(await hasLink())) throw missing();
      return {
        events: [{ type: "user.human.externalidp.removed", payload: { idpConfigId: idpId, userId: externalUserId } }],
        release: [linkClaim(idpId, externalUserId)],
        removeLinks: [{ idpId, externalUserId }],
      };
    });
  }

  /** A user's links with their providers (a provider may be gone: then it is undefined). */
  async function listIdpLinks(instanceId: string, userId: string): Promise<Array<IdpLink & { idp: Idp | undefined }>> {
    const links = await deps.store.listIdpLinks(instanceId, userId);
    const idps = new Map<string, Idp | undefined>();
    for (const link of links) {
      if (!idps.has(link.idpId)) idps.set(link.idpId, await deps.idps.findIdp(instanceId, link.idpId));
    }
    return links.map((link) => ({ ...link, idp: idps.get(link.idpId) }));
  }

  /** ZITADEL's checkUserExists: the metadata commands' "not found" is a failed precondition. */
  const metadataUser = (userId: string): Lookup => ({ userId, notFound: UserChangeErrors.metadataUserNotFound });

  /**
   * SetUserMetadata / BulkSetUserMetadata: each entry replaces the one with its key; an entry
   * whose value is unchanged writes nothing (ZITADEL pushes no event for it), so a call that
   * changes nothing answers with the user's details as they were.
   */
  async function setMetadata(target: ChangeTarget, userId: string, entries: MetadataEntry[], bulk: boolean): Promise<User> {
    if (bulk && entries.length === 0) throw UserChangeErrors.metadataListEmpty();
    for (const entry of entries) {
      if (entry.key === "" || entry.value.length === 0) throw UserChangeErrors.metadataInvalid();
    }
    return update(target, metadataUser(userId), async (user) => {
      const current = new Map((await deps.store.listMetadata(target.instanceId, user.id)).map((entry) => [entry.key, entry.value]));
      const changed = new Map<string, Uint8Array>();
      for (const entry of entries) {
        const before = changed.get(entry.key) ?? current.get(entry.key);
        if (before === undefined || !sameBytes(before, entry.value)) changed.set(entry.key, entry.value);
      }
      const set = [...changed].map(([key, value]) => ({ key, value }));
      return { events: set.map(metadataSetEvent), setMetadata: set };
    });
  }

  /** RemoveUserMetadata / BulkRemoveUserMetadata: every key must exist. */
  async function removeMetadata(target: ChangeTarget, userId: string, keys: string[], bulk: boolean): Promise<User> {
    if (bulk && keys.length === 0) throw UserChangeErrors.metadataListEmpty();
    if (!bulk && keys.some((key) => key === "")) throw UserChangeErrors.metadataKeyInvalid();
    return update(target, metadataUser(userId), async (user) => {
      const current = new Set((await deps.store.listMetadata(target.instanceId, user.id)).map((entry) => entry.key));
      for (const key of keys) {
        if (bulk && key === "") throw UserChangeErrors.metadataBulkKeyInvalid();
        if (!current.has(key)) {
          throw bulk ? UserChangeErrors.metadataKeysMissing() : UserChangeErrors.metadataMissing();
        }
      }
      const unique = [...new Set(keys)];
      return {
        events: unique.map((key) => ({ type: "user.metadata.removed", payload: { key } })),
        removeMetadata: unique,
      };
    });
  }

  /** The metadata of a user of the organisation (none for other users), by key. */
  async function listMetadata(target: { instanceId: string; orgId: string | undefined }, userId: string): Promise<StoredMetadata[]> {
    const user = await deps.store.getUser(target.instanceId, userId);
    if (!user || (target.orgId !== undefined && user.orgId !== target.orgId)) return [];
    return deps.store.listMetadata(target.instanceId, userId);
  }

  async function getMetadata(target: { instanceId: string; orgId: string | undefined }, userId: string, key: string): Promise<StoredMetadata> {
    const entry = (await listMetadata(target, userId)).find((candidate) => candidate.key === key);
    if (!entry) throw UserChangeErrors.metadataNotFound();
    return entry;
  }

  return {
    update,
    changeUsername,
    resendInitialization,
    addIdpLink,
    removeIdpLink,
    listIdpLinks,
    setMetadata,
    removeMetadata,
    listMetadata,
    getMetadata,
  };
}

export type UserChangeCommands = ReturnType<typeof createUserChangeCommands>;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
