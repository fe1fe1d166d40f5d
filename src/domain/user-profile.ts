import { CLAIMS, claimError } from "./claims.js";
import { PingOneErrors } from "./error-catalogue.js";
import { type HumanProfile, normalizeEmail, normalizeProfile, normalizeUsername } from "./human.js";
import type { MetadataEntry, NewEvent, User, UserStore } from "./ports.js";
import type { UserChangeCommands } from "./user-changes.js";
import type { ChangeTarget } from "./user-states.js";
import { claimUsername, metadataSetEvent } from "./users.js";

/** A human's attributes as a whole: what PingOne's PUT and PATCH user write. */
export interface HumanReplacement {
  username: string;
  profile: HumanProfile;
  /** "" for none. */
  email: string;
  /**
   * The metadata entries under `metadataPrefix` the user should have afterwards: entries with
   * other values are set, entries under the prefix not listed are removed, others are kept.
   */
  metadata: MetadataEntry[];
  metadataPrefix: string;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((byte, i) => byte === b[i]);

/**
 * Changes of a human's profile beyond ZITADEL's own commands, for PingOne's API: a replacement
 * of username, names, email and a family of metadata in one atomic update, and the move of a
 * user to another organisation (population). Both write their events and read-model changes
 * together, or nothing.
 */
export function createUserProfileCommands(deps: { store: UserStore; changes: Pick<UserChangeCommands, "update"> }) {
  async function replaceHuman(target: ChangeTarget, userId: string, replacement: HumanReplacement): Promise<User> {
    const username = normalizeUsername(replacement.username, "pingone");
    const email = replacement.email.trim() === "" ? "" : normalizeEmail(replacement.email);
    const profile = normalizeProfile(replacement.profile, "pingone", email || username);
    try {
      return await deps.changes.update(
        target,
        { userId, notFound: PingOneErrors.userNotFound },
        async (user) => {
          const events: NewEvent[] = [];
          const set: NonNullable<Parameters<UserStore["updateUser"]>[0]["set"]> = {};
          const claim = [];
          const release = [];
          if (user.username !== username) {
            events.push({ type: "user.username.changed", payload: { userName: username } });
            set.username = username;
            release.push({ kind: "username" }, { kind: "org_username" });
            claim.push(await claimUsername(deps.store, target.instanceId, user.orgId, username));
          }
          const before = user.human?.profile;
          if (
            !before ||
            before.givenName !== profile.givenName ||
            before.familyName !== profile.familyName ||
            before.nickName !== profile.nickName ||
            before.displayName !== profile.displayName ||
            before.preferredLanguage !== profile.preferredLanguage
          ) {
            events.push({
              type: "user.human.profile.changed",
              payload: {
                firstName: profile.givenName,
                lastName: profile.familyName,
                nickName: profile.nickName,
                displayName: profile.displayName,
                preferredLanguage: profile.preferredLanguage,
              },
            });
            set.profile = { ...profile, gender: before?.gender ?? profile.gender };
          }
          if ((user.human?.email.address ?? "") !== email) {
            events.push({ type: "user.human.email.changed", payload: { email } });
            set.email = email;
            set.emailVerified = false;
          }
          const current = new Map((await deps.store.listMetadata(target.instanceId, user.id)).map((entry) => [entry.key, entry.value]));
          const wanted = new Map(replacement.metadata.map((entry) => [entry.key, entry.value]));
          const setMetadata = [...wanted]
            .filter(([key, value]) => !current.has(key) || !sameBytes(current.get(key)!, value))
            .map(([key, value]) => ({ key, value }));
          const removeMetadata = [...current.keys()].filter((key) => key.startsWith(replacement.metadataPrefix) && !wanted.has(key));
          events.push(...setMetadata.map(metadataSetEvent), ...removeMetadata.map((key) => ({ type: "user.metadata.removed", payload: { key } })));
          return { events, set, claim, release, setMetadata, removeMetadata };
        },
        (user) =>
          user.human
            ? {
                ...user,
                username,
                human: {
                  ...user.human,
                  profile: { ...profile, gender: user.human.profile.gender },
                  email: user.human.email.address === email ? user.human.email : { address: email, verified: false },
                },
              }
            : user,
      );
    } catch (err) {
      throw claimError(err, CLAIMS.username);
    }
  }

  /** Moves a user to another organisation; its username is claimed anew under that organisation's rules. */
  async function moveToOrg(target: ChangeTarget, userId: string, orgId: string): Promise<User> {
    try {
      return await deps.changes.update(
        target,
        { userId, notFound: PingOneErrors.userNotFound },
        async (user) => {
          if (user.orgId === orgId) return { events: [] };
          return {
            events: [{ type: "user.population.changed", payload: { from: user.orgId, to: orgId } }],
            set: { orgId },
            release: [{ kind: "username" }, { kind: "org_username" }],
            claim: [await claimUsername(deps.store, target.instanceId, orgId, user.username)],
          };
        },
        (user) => ({ ...user, orgId }),
      );
    } catch (err) {
      throw claimError(err, CLAIMS.username);
    }
  }

  return { replaceHuman, moveToOrg };
}

export type UserProfileCommands = ReturnType<typeof createUserProfileCommands>;
