import { CLAIMS, takenClaimError } from "./claims.js";
/**
 * ZITADEL's admin ImportData (internal/api/grpc/admin/import.go): organisations with their
 * domain policy, domains, users, metadata, IdP links and members, each part imported on its own.
 * A part that fails is reported (type, id, message) and the import goes on, as in ZITADEL; an
 * organisation that can be neither created nor found is skipped.
 *
 * Users go through the bulk engine (bulk-import.ts), a job per organisation, so they pass exactly
 * the rules of a single v1 ImportHumanUser / AddMachineUser and are committed many per
 * transaction. Organisations, domains and members go through the organisation commands,
 * metadata and links through the user change commands.
 */
import type { BulkImport, BulkRecord } from "./bulk-import.js";
import { BULK_LIMITS } from "./bulk-import.js";
import { type DomainError, isDomainError } from "./errors.js";
import type { DomainPolicy, OrgCommands } from "./orgs.js";
import type { UserChangeCommands } from "./user-changes.js";
import type { InstanceTarget, Target } from "./authentication.js";

/** A part whose request-shape rules failed: it is reported with this error and not imported. */
type Checked<T> = T | { invalid: DomainError };

export interface ImportDataUser {
  /** The id the user gets ("" lets the store choose; the engine then keys it by username). */
  userId: string;
  record: BulkRecord;
}

export interface ImportDataOrgInput {
  orgId: string;
  /** The name of `org` (AddOrgRequest); "" when absent. */
  name: string;
  domainPolicy?: DomainPolicy;
  domains: Array<{ name: string; verified: boolean; primary: boolean }>;
  humans: ImportDataUser[];
  machines: ImportDataUser[];
  metadata: Array<Checked<{ userId: string; key: string; value: Uint8Array }> & { userId: string; key: string }>;
  links: Array<Checked<{ userId: string; idpId: string; externalUserId: string; displayName: string }> & { userId: string; idpId: string }>;
  members: Array<Checked<{ userId: string; roles: string[] }> & { userId: string }>;
  /** Parts of ZITADEL's format userport does not import: reported, not read. */
  notImported: Array<{ type: string; count: number }>;
}

export interface ImportDataError {
  type: string;
  id: string;
  message: string;
}

export interface ImportDataOrgResult {
  orgId: string;
  humanUserIds: string[];
  machineUserIds: string[];
  userMetadata: Array<{ userId: string; key: string }>;
  userLinks: Array<{ userId: string; idpId: string; externalUserId: string; displayName: string }>;
  orgMembers: string[];
  domains: string[];
}

export interface ImportDataResult {
  errors: ImportDataError[];
  orgs: ImportDataOrgResult[];
}

export interface ImportDataDeps {
  bulk: Pick<BulkImport, "open" | "close" | "importBatch">;
  orgs: Pick<OrgCommands, "addOrg" | "getOrg" | "setCustomDomainPolicy" | "addDomain" | "listDomains" | "setPrimaryDomain" | "addMember">;
  userChanges: Pick<UserChangeCommands, "setMetadata" | "addIdpLink">;
}

/** ZITADEL's error text as its clients see it in ImportDataError.message: "<message> (<id>)". */
export function importErrorMessage(err: DomainError): string {
  return err.id === "" ? err.message : `${err.message} (${err.id})`;
}

export function createImportData(deps: ImportDataDeps) {
  const { bulk, orgs, userChanges } = deps;

  async function orgExists(instanceId: string, orgId: string): Promise<boolean> {
    try {
      await orgs.getOrg(instanceId, orgId);
      return true;
    } catch (err) {
      if (isDomainError(err)) return false;
      throw err;
    }
  }

  /** Runs a command; a domain error becomes an ImportDataError, anything else ends the import. */
  async function attempt(errors: ImportDataError[], type: string, id: string, run: () => Promise<unknown>): Promise<boolean> {
    try {
      await run();
      return true;
    } catch (err) {
      if (!isDomainError(err)) throw err;
      errors.push({ type, id, message: importErrorMessage(err) });
      return false;
    }
  }

  /** Users of one organisation through the bulk engine: one job, batches of its size. */
  async function importUsers(
    target: Target,
    errors: ImportDataError[],
    kinds: Array<{ type: "human_user" | "machine_user"; users: ImportDataUser[]; ids: string[] }>,
  ): Promise<void> {
    if (kinds.every(({ users }) => users.length === 0)) return;
    let session: Awaited<ReturnType<typeof bulk.open>>;
    try {
      session = await bulk.open(target, { dryRun: false, onConflict: "fail" });
    } catch (err) {
      if (!isDomainError(err)) throw err;
      for (const { type, users } of kinds) for (const user of users) errors.push({ type, id: user.userId, message: importErrorMessage(err) });
      return;
    }
    let completed = false;
    try {
      for (const { type, users, ids } of kinds) {
        for (let start = 0; start < users.length; start += BULK_LIMITS.recordsPerMessage) {
          const batch = users.slice(start, start + BULK_LIMITS.recordsPerMessage);
          const results = await bulk.importBatch(
            session,
            batch.map((user) => user.record),
          );
          results.forEach((result, i) => {
            const user = batch[i]!;
            if (result.replayed) {
              // The same id twice in the data: the second is refused as a taken id, as in ZITADEL.
              const err = takenClaimError("user_id", CLAIMS.newUser(type === "machine_user" ? "machine" : "human"));
              errors.push({ type, id: user.userId, message: importErrorMessage(err) });
            } else if (result.outcome === "created") {
              ids.push(result.userId);
            } else {
              const error = result.error;
              errors.push({ type, id: user.userId, message: error ? (error.id === "" ? error.message : `${error.message} (${error.id})`) : "not imported" });
            }
          });
        }
      }
      completed = true;
    } finally {
      await bulk.close(session, completed);
    }
  }

  /** The first round of ZITADEL's importOrg1/importResources: the organisation and what it owns. */
  async function importOrg(caller: InstanceTarget, org: ImportDataOrgInput, errors: ImportDataError[]): Promise<ImportDataOrgResult | undefined> {
    const { instanceId } = caller;
    const { orgId } = org;
    if (orgId === "") {
      errors.push({ type: "org", id: "", message: "invalid DataOrg.OrgId: value length must be between 1 and 200 runes, inclusive" });
      return undefined;
    }
    if (await orgExists(instanceId, orgId)) {
      // internal/command/org.go AddOrgWithID: an existing id is refused; the import goes on into it.
      errors.push({ type: "org", id: orgId, message: "Errors.Org.AlreadyExisting (ORG-lapo2m)" });
    } else {
      const added = await attempt(errors, "org", orgId, () => orgs.addOrg(caller, org.name, orgId));
      if (!added && !(await orgExists(instanceId, orgId))) return undefined;
    }
    const result: ImportDataOrgResult = { orgId, humanUserIds: [], machineUserIds: [], userMetadata: [], userLinks: [], orgMembers: [], domains: [] };
    const target = { ...caller, orgId };

    if (org.domainPolicy) {
      const policy = org.domainPolicy;
      await attempt(errors, "domain_policy", orgId, () => orgs.setCustomDomainPolicy(target, "add", policy));
    }
    for (const domain of org.domains) {
      const id = `${orgId}_${domain.name}`;
      if (!(await attempt(errors, "domain", id, () => orgs.addDomain(target, domain.name)))) continue;
      result.domains.push(domain.name);
      if (domain.verified) {
        // ZITADEL verifies an imported domain without validation; userport verifies a domain
        // when it is added, unless the domain policy asks for validation, which it does not serve.
        const stored = (await orgs.listDomains(instanceId, orgId)).find((d) => d.domain === domain.name.trim().toLowerCase());
        if (!stored?.verified) {
          errors.push({ type: "domain_isverified", id, message: "Domains that need validation cannot be verified by an import (UP-IMPORT6)" });
        }
      }
      if (domain.primary) await attempt(errors, "domain_isprimary", id, () => orgs.setPrimaryDomain(target, domain.name));
    }
    for (const part of org.notImported) {
      errors.push({ type: part.type, id: orgId, message: `userport does not import ${part.type} (${part.count} not imported) (UP-IMPORT2)` });
    }

    await importUsers(target, errors, [
      { type: "human_user", users: org.humans, ids: result.humanUserIds },
      { type: "machine_user", users: org.machines, ids: result.machineUserIds },
    ]);

    const changeTarget = { ...caller, orgId, api: "v1" as const };
    for (const entry of org.metadata) {
      const id = `${entry.userId}_${entry.key}`;
      if ("invalid" in entry) {
        errors.push({ type: "user_metadata", id, message: importErrorMessage(entry.invalid) });
        continue;
      }
      if (
        await attempt(errors, "user_metadata", id, () => userChanges.setMetadata(changeTarget, entry.userId, [{ key: entry.key, value: entry.value }], false))
      ) {
        result.userMetadata.push({ userId: entry.userId, key: entry.key });
      }
    }
    for (const link of org.links) {
      const id = `${link.userId}_${link.idpId}`;
      if ("invalid" in link) {
        errors.push({ type: "user_link", id, message: importErrorMessage(link.invalid) });
        continue;
      }
      const added = await attempt(errors, "user_link", id, () =>
        userChanges.addIdpLink(changeTarget, link.userId, { idpId: link.idpId, externalUserId: link.externalUserId, displayName: link.displayName }),
      );
      if (added) result.userLinks.push({ userId: link.userId, idpId: link.idpId, externalUserId: link.externalUserId, displayName: link.displayName });
    }
    return result;
  }

  /** The third round (importOrg3): members, once every organisation's users exist. */
  async function importMembers(caller: InstanceTarget, org: ImportDataOrgInput, result: ImportDataOrgResult, errors: ImportDataError[]) {
    // The caller holds an instance role (iam.write), so members may be users of other organisations, as in ZITADEL.
    const target = { ...caller, orgId: org.orgId, mayUseForeignUsers: true };
    for (const member of org.members) {
      const id = `${org.orgId}_${member.userId}`;
      if ("invalid" in member) {
        errors.push({ type: "org_member", id, message: importErrorMessage(member.invalid) });
        continue;
      }
      if (await attempt(errors, "org_member", id, () => orgs.addMember(target, member.userId, member.roles))) result.orgMembers.push(member.userId);
    }
  }

  /**
   * Imports the organisations in ZITADEL's order: every organisation with its resources first,
   * then the members of each (so that a member may be a user of an organisation imported later).
   */
  async function importData(caller: InstanceTarget, input: ImportDataOrgInput[]): Promise<ImportDataResult> {
    const errors: ImportDataError[] = [];
    const done: Array<[ImportDataOrgInput, ImportDataOrgResult]> = [];
    for (const org of input) {
      const result = await importOrg(caller, org, errors);
      if (result) done.push([org, result]);
    }
    for (const [org, result] of done) await importMembers(caller, org, result, errors);
    return { errors, orgs: done.map(([, result]) => result) };
  }

  return { importData };
}

export type ImportData = ReturnType<typeof createImportData>;
