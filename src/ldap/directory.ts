import { LdapErrors } from "../domain/error-catalogue.js";
import type { PasswordDirectory } from "../domain/ports.js";
import { Client, EqualityFilter, Filter, FilterParser, InvalidCredentialsError, NoSuchObjectError, PresenceFilter, ResultCodeError } from "ldapts";
import type { LdapConnection } from "../domain/external-passwords.js";
import { isDomainError } from "../domain/errors.js";

/**
 * The LDAP side of external passwords (src/domain/external-passwords.ts), over `ldapts`.
 *
 * Each server of a gateway (as it is configured now) has two small pools of kept connections:
 * search connections, bound once as the gateway's bindDN and then used for nothing but searches,
 * and bind connections, used for nothing but the users' binds. A check searches the user type's
 * searchBaseDn for the user's correlation attributes one at a time (each an equality filter
 * built as a structure, never by pasting text, so a value such as `*)(uid=*` matches only
 * itself) over a search connection, then binds as the one entry found with the offered password
 * over a bind connection: two round trips, and the gateway's credentials cross the wire once per
 * connection rather than once per check. A user's bind really goes to the directory every time
 * (nothing about passwords is cached).
 *
 * Servers are tried in the order of serversHostAndPort; TLS from the first byte for
 * connectionSecurity TLS, an upgrade by the StartTLS extended operation for StartTLS;
 * certificates validated unless validateTlsCertificates is false. ldapts reconnects a closed
 * connection by itself, unbound and in the clear, so a kept connection is used again only while
 * it is still the one that was prepared (bound as the gateway for a search connection, connected
 * for a bind connection); otherwise it is dropped for a new one. Everything is asynchronous and
 * bounded by one deadline for the whole check: a directory that is down or hangs fails closed
 * with an Unavailable error, and its connection is dropped.
 */
export interface LdapDirectoryOptions {
  /** The most one check may take, over every server tried. */
  timeoutMs: number;
  /** Search connections, and as many bind connections, kept per server of a gateway; checks beyond it wait for one. */
  poolSize?: number;
  /**
   * A kept connection unused this long is closed (checked every `idleMs`), so that the pools of
   * gateways no longer used (changed, deleted) and of quiet directories do not hold connections.
   */
  idleMs?: number;
}

type Failure = { kind: "unreachable" | "tls"; server: string; reason: string };

class DeadlineExceeded extends Error {}

interface Pooled {
  client: Client;
  /** Whether the connection has served a check before (an idle connection the server may have closed). */
  reused: boolean;
}

/** The connections to one server of one gateway (as it is configured now). */
class ServerPool {
  /** Idle connections, the longest idle first (acquire takes the last). */
  private readonly idle: Array<{ client: Client; since: number }> = [];
  private open = 0;
  private readonly waiters: Array<(client: Client | undefined) => void> = [];

  constructor(
    private readonly create: () => Client,
    private readonly size: number,
  ) {}

  /** Whether the pool holds no connection at all (none idle, none in use). */
  get empty(): boolean {
    return this.open === 0;
  }

  async acquire(deadline: number): Promise<Pooled> {
    const idle = this.idle.pop();
    if (idle) return { client: idle.client, reused: true };
    if (this.open < this.size) {
      this.open++;
      return { client: this.create(), reused: false };
    }
    return new Promise<Pooled>((resolve, reject) => {
      const waiter = (client: Client | undefined) => {
        clearTimeout(timer);
        if (client) resolve({ client, reused: true });
        else {
          this.open++;
          resolve({ client: this.create(), reused: false });
        }
      };
      const timer = setTimeout(
        () => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(new DeadlineExceeded("no connection became free in time"));
        },
        Math.max(0, deadline - Date.now()),
      );
      this.waiters.push(waiter);
    });
  }

  /** Returns a connection; a broken one (or one whose operation was abandoned) is closed. */
  release(client: Client, healthy: boolean) {
    if (!healthy) {
      this.open--;
      void client.unbind().catch(() => undefined);
      this.waiters.shift()?.(undefined);
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter(client);
    else this.idle.push({ client, since: Date.now() });
  }

  /** Closes the connections idle since before `cutoff`. */
  sweep(cutoff: number) {
    while (this.idle.length > 0 && this.idle[0]!.since < cutoff) {
      const { client } = this.idle.shift()!;
      this.open--;
      void client.unbind().catch(() => undefined);
    }
  }

  async close() {
    const clients = this.idle.splice(0).map(({ client }) => client);
    this.open -= clients.length;
    await Promise.all(clients.map((client) => client.unbind().catch(() => undefined)));
  }
}

/** Where a newUserLookup.ldapFilterPattern takes the identifier typed at sign-in (PingOne's own placeholder). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: PingOne's placeholder, not a template
const IDENTIFIER = "${identifier}";

/** Whether a newUserLookup.ldapFilterPattern is an LDAP filter (RFC 4515) once `${identifier}` is filled in. */
export function isFilterPattern(pattern: string): boolean {
  try {
    FilterParser.parseString(pattern.split(IDENTIFIER).join("x"));
    return true;
  } catch {
    return false;
  }
}

const TLS_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS|ERR_SSL|HOSTNAME|ALTNAME/i;

/** `host:port` (an IPv6 literal is written `2001:db8::1:389`) as an LDAP URL's authority. */
function authority(hostAndPort: string): string {
  const at = hostAndPort.lastIndexOf(":");
  if (at <= 0) return hostAndPort;
  const host = hostAndPort.slice(0, at);
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${hostAndPort.slice(at + 1)}` : hostAndPort;
}

function reasonOf(err: unknown): string {
  if (err instanceof DeadlineExceeded) return "no answer in time";
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === "string" && !message.includes(code) ? `${code}: ${message}` : message;
}

interface ServerPools {
  /** Connections bound as the gateway's bindDN, for searches only. */
  searches: ServerPool;
  /** Connections for the users' binds only. */
  binds: ServerPool;
}

export function createLdapDirectory(options: LdapDirectoryOptions): PasswordDirectory & { close(): Promise<void> } {
  const poolSize = options.poolSize ?? 16;
  /** Pools by gateway version (LdapConnection.key) and server; a changed gateway gets new ones. */
  const pools = new Map<string, Map<string, ServerPools>>();
  const idleMs = options.idleMs ?? 60_000;
  const sweeper = setInterval(() => {
    const cutoff = Date.now() - idleMs;
    for (const [key, byServer] of pools) {
      for (const [server, { searches, binds }] of byServer) {
        searches.sweep(cutoff);
        binds.sweep(cutoff);
        if (searches.empty && binds.empty) byServer.delete(server);
      }
      if (byServer.size === 0) pools.delete(key);
    }
  }, idleMs);
  sweeper.unref();

  function poolsFor(connection: LdapConnection, server: string): ServerPools {
    let byServer = pools.get(connection.key);
    if (!byServer) {
      // Older versions of the same gateway are closed once it changes.
      const gateway = connection.key.slice(0, connection.key.lastIndexOf("/") + 1);
      for (const [key, stale] of pools) {
        if (key.startsWith(gateway)) {
          pools.delete(key);
          for (const { searches, binds } of stale.values()) {
            void searches.close();
            void binds.close();
          }
        }
      }
      byServer = new Map();
      pools.set(connection.key, byServer);
    }
    let found = byServer.get(server);
    if (!found) {
      const tls = { rejectUnauthorized: connection.validateTlsCertificates };
      const create = () =>
        new Client({
          url: `${connection.security === "TLS" ? "ldaps" : "ldap"}://${authority(server)}`,
          timeout: options.timeoutMs,
          connectTimeout: options.timeoutMs,
          ...(connection.security === "TLS" ? { tlsOptions: tls } : {}),
        });
      found = { searches: new ServerPool(create, poolSize), binds: new ServerPool(create, poolSize) };
      byServer.set(server, found);
    }
    return found;
  }

  /** Races `work` against the deadline. */
  async function before<T>(deadline: number, work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineExceeded("deadline")), Math.max(0, deadline - Date.now()));
    });
    try {
      return await Promise.race([work, expired]);
    } finally {
      clearTimeout(timer);
      // The losing operation's rejection is dropped (its connection is closed by the caller).
      work.catch(() => undefined);
    }
  }

  /**
   * Runs `work` on a kept connection of `pool` (or a new one, prepared first). A kept connection
   * that no longer is as prepared is dropped unused; one that breaks under `work` is dropped and
   * the work tried once more on a new connection. Throws a DomainError for a decided failure,
   * anything else when the server could not be used.
   */
  async function withConnection<T>(
    pool: ServerPool,
    usable: (client: Client) => boolean,
    prepare: (client: Client) => Promise<void>,
    work: (client: Client) => Promise<T>,
    deadline: number,
  ): Promise<T> {
    for (let attempt = 0; ; ) {
      const pooled = await pool.acquire(deadline);
      if (pooled.reused && !usable(pooled.client)) {
        // Closed (or reconnected behind our back) while idle: not an attempt.
        pool.release(pooled.client, false);
        continue;
      }
      attempt++;
      try {
        if (!pooled.reused) await prepare(pooled.client);
      } catch (err) {
        pool.release(pooled.client, false);
        throw err;
      }
      try {
        const result = await work(pooled.client);
        pool.release(pooled.client, true);
        return result;
      } catch (err) {
        const decided = isDomainError(err);
        pool.release(pooled.client, decided);
        if (decided || !pooled.reused || err instanceof DeadlineExceeded || attempt >= 2) throw err;
      }
    }
  }

  /** A new search connection: upgraded by StartTLS when configured, then bound as the gateway. */
  async function prepareSearch(client: Client, connection: LdapConnection, deadline: number) {
    if (connection.security === "StartTLS") {
      await before(deadline, client.startTLS({ rejectUnauthorized: connection.validateTlsCertificates }));
    }
    try {
      await before(deadline, client.bind(connection.bindDn, connection.bindPassword));
    } catch (err) {
      if (err instanceof InvalidCredentialsError) {
        throw LdapErrors.gatewayBindRefused();
      }
      if (err instanceof ResultCodeError) throw LdapErrors.gatewayBindFailed(err.message);
      throw err;
    }
  }

  /** The DN of the one entry under the base with the user's correlation attributes, over a search connection. */
  async function findEntry(client: Client, lookup: { baseDn: string; correlation: Array<[string, string]> }, deadline: number): Promise<string> {
    for (const [attribute, value] of lookup.correlation) {
      const byDn = attribute.toLowerCase() === "dn";
      let entries: Array<{ dn: string }>;
      // Still bound as the gateway (checked right before the request is written: a connection
      // closes only between event-loop turns, and ldapts would reopen it unbound).
      if (!client.isBound) throw new Error("the search connection was closed");
      try {
        ({ searchEntries: entries } = await before(
          deadline,
          client.search(byDn ? value : lookup.baseDn, {
            scope: byDn ? "base" : "sub",
            filter: byDn ? new PresenceFilter({ attribute: "objectClass" }) : new EqualityFilter({ attribute, value }),
            attributes: ["1.1"],
            sizeLimit: 2,
          }),
        ));
      } catch (err) {
        if (err instanceof NoSuchObjectError) {
          if (byDn) continue;
          throw LdapErrors.baseMissing(lookup.baseDn);
        }
        if (err instanceof ResultCodeError) throw LdapErrors.searchRefused(attribute, err.message);
        if (byDn && err instanceof Error && !(err instanceof DeadlineExceeded) && !("code" in err)) continue; // not a DN at all
        throw err;
      }
      if (entries.length > 1) {
        throw LdapErrors.ambiguous(attribute);
      }
      if (entries.length === 1) return entries[0]!.dn;
    }
    throw LdapErrors.noEntry(lookup.baseDn);
  }

  /** Binds as `dn` with the password over a bind connection. */
  async function bindAs(client: Client, connection: LdapConnection, dn: string, password: string, deadline: number): Promise<"match" | "mismatch"> {
    // A StartTLS connection that dropped must not carry a password: ldapts would reopen it in the clear.
    if (!client.isConnected && connection.security === "StartTLS") throw new Error("the StartTLS connection was closed");
    try {
      await before(deadline, client.bind(dn, password));
      return "match";
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return "mismatch";
      if (err instanceof ResultCodeError) throw LdapErrors.userBindRefused(err.message);
      throw err;
    }
  }

  /**
   * Runs `work` against the gateway's servers in order until one answers: a DomainError (a
   * decided failure) ends it at once, a server that cannot be used passes to the next. Fails
   * closed when none answers in time.
   */
  async function onServers<T>(connection: LdapConnection, work: (pools: ServerPools, deadline: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + options.timeoutMs;
    const failures: Failure[] = [];
    if (connection.servers.length === 0) throw LdapErrors.noServers();
    for (const server of connection.servers) {
      if (Date.now() >= deadline) {
        failures.push({ kind: "unreachable", server, reason: "not tried: no time left" });
        continue;
      }
      try {
        return await work(poolsFor(connection, server), deadline);
      } catch (err) {
        if (isDomainError(err)) throw err;
        const reason = reasonOf(err);
        failures.push({ kind: TLS_ERROR.test(reason) ? "tls" : "unreachable", server, reason });
      }
    }
    const summary = failures.map((failure) => `${failure.server}: ${failure.reason}`).join("; ");
    if (failures.every((failure) => failure.kind === "tls")) {
      throw LdapErrors.tlsRefused(summary);
    }
    throw LdapErrors.unreachable(options.timeoutMs, summary);
  }

  const searching =
    (connection: LdapConnection, searches: ServerPool, deadline: number) =>
    <T>(work: (client: Client) => Promise<T>) =>
      withConnection(
        searches,
        (client) => client.isBound,
        (client) => prepareSearch(client, connection, deadline),
        work,
        deadline,
      );
  const binding = (connection: LdapConnection, binds: ServerPool, password: string, deadline: number) => (dn: string) =>
    withConnection(
      binds,
      (client) => client.isConnected,
      async (client) => {
        if (connection.security === "StartTLS") {
          await before(deadline, client.startTLS({ rejectUnauthorized: connection.validateTlsCertificates }));
        }
      },
      (client) => bindAs(client, connection, dn, password, deadline),
      deadline,
    );

  return {
    verify(connection, lookup, password) {
      return onServers(connection, async ({ searches, binds }, deadline) => {
        const dn = await searching(connection, searches, deadline)((client) => findEntry(client, lookup, deadline));
        return binding(connection, binds, password, deadline)(dn);
      });
    },
    lookup(connection, search, password) {
      let filter: Filter;
      try {
        // The pattern is the administrator's; the identifier is what someone typed, escaped.
        filter = FilterParser.parseString(search.pattern.split(IDENTIFIER).join(Filter.escape(search.identifier)));
      } catch {
        throw LdapErrors.lookupFilterInvalid();
      }
      return onServers(connection, async ({ searches, binds }, deadline) => {
        const entries = await searching(
          connection,
          searches,
          deadline,
        )(async (client) => {
          if (!client.isBound) throw new Error("the search connection was closed");
          try {
            const { searchEntries } = await before(
              deadline,
              client.search(search.baseDn, { scope: "sub", filter, attributes: search.attributes.length > 0 ? search.attributes : ["1.1"], sizeLimit: 1 }),
            );
            return searchEntries;
          } catch (err) {
            if (err instanceof NoSuchObjectError) {
              throw LdapErrors.baseMissing(search.baseDn);
            }
            if (err instanceof ResultCodeError) throw LdapErrors.lookupRefused(err.message);
            throw err;
          }
        });
        // Several matches: the first is the one (PingOne provisions only the first).
        const entry = entries[0];
        if (!entry) return { outcome: "none" as const };
        if ((await binding(connection, binds, password, deadline)(entry.dn)) === "mismatch") return { outcome: "mismatch" as const };
        const attributes: Record<string, string> = {};
        for (const wanted of search.attributes) {
          const name = Object.keys(entry).find((key) => key !== "dn" && key.toLowerCase() === wanted.toLowerCase());
          const value = name === undefined ? undefined : entry[name];
          const first = Array.isArray(value) ? value[0] : value;
          if (typeof first === "string" && first !== "") attributes[wanted] = first;
        }
        return { outcome: "match" as const, dn: entry.dn, attributes };
      });
    },
    async close() {
      clearInterval(sweeper);
      const all = [...pools.values()].flatMap((byServer) => [...byServer.values()]);
      pools.clear();
      await Promise.all(all.flatMap(({ searches, binds }) => [searches.close(), binds.close()]));
    },
  };
}
