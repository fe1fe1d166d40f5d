import { LdapErrors } from "../domain/error-catalogue.js";
import type { PasswordDirectory } from "../domain/ports.js";
import { Client, EqualityFilter, InvalidCredentialsError, NoSuchObjectError, PresenceFilter, ResultCodeError } from "ldapts";
import type { LdapConnection } from "../domain/external-passwords.js";
import { isDomainError } from "../domain/errors.js";

/**
 * The LDAP side of external passwords (src/domain/external-passwords.ts), over `ldapts`.
 *
 * A check takes a pooled connection to the gateway's first server that answers (servers tried in
 * the order of serversHostAndPort; TLS from the first byte for connectionSecurity TLS, an
 * upgrade by the StartTLS extended operation for StartTLS; certificates validated unless
 * validateTlsCertificates is false), binds as the gateway's bindDN, searches the user type's
 * searchBaseDn for the user's correlation attributes one at a time (each an equality filter
 * built as a structure, never by pasting text, so a value such as `*)(uid=*` matches only
 * itself), and binds as the one entry found with the offered password. Everything is
 * asynchronous and bounded by one deadline for the whole check: a directory that is down or
 * hangs fails closed with an Unavailable error, and its connection is dropped.
 */
export interface LdapDirectoryOptions {
  /** The most one check may take, over every server tried. */
  timeoutMs: number;
  /** Connections kept per server of a gateway; checks beyond it wait for one. */
  poolSize?: number;
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
  private readonly idle: Client[] = [];
  private open = 0;
  private readonly waiters: Array<(client: Client | undefined) => void> = [];

  constructor(
    private readonly create: () => Client,
    private readonly size: number,
  ) {}

  async acquire(deadline: number): Promise<Pooled> {
    const idle = this.idle.pop();
    if (idle) return { client: idle, reused: true };
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
    else this.idle.push(client);
  }

  async close() {
    const clients = this.idle.splice(0);
    this.open -= clients.length;
    await Promise.all(clients.map((client) => client.unbind().catch(() => undefined)));
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

export function createLdapDirectory(options: LdapDirectoryOptions): PasswordDirectory & { close(): Promise<void> } {
  const poolSize = options.poolSize ?? 8;
  /** Pools by gateway version (LdapConnection.key) and server; a changed gateway gets new ones. */
  const pools = new Map<string, Map<string, ServerPool>>();

  function poolFor(connection: LdapConnection, server: string): ServerPool {
    let byServer = pools.get(connection.key);
    if (!byServer) {
      // Older versions of the same gateway are closed once it changes.
      const gateway = connection.key.slice(0, connection.key.lastIndexOf("/") + 1);
      for (const [key, stale] of pools) {
        if (key.startsWith(gateway)) {
          pools.delete(key);
          for (const pool of stale.values()) void pool.close();
        }
      }
      byServer = new Map();
      pools.set(connection.key, byServer);
    }
    let pool = byServer.get(server);
    if (!pool) {
      const tls = { rejectUnauthorized: connection.validateTlsCertificates };
      pool = new ServerPool(
        () =>
          new Client({
            url: `${connection.security === "TLS" ? "ldaps" : "ldap"}://${authority(server)}`,
            timeout: options.timeoutMs,
            connectTimeout: options.timeoutMs,
            ...(connection.security === "TLS" ? { tlsOptions: tls } : {}),
          }),
        poolSize,
      );
      byServer.set(server, pool);
    }
    return pool;
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

  /** One check on one connection; throws a DomainError for a decided failure, anything else for a broken connection. */
  async function checkOn(
    client: Client,
    fresh: boolean,
    connection: LdapConnection,
    lookup: { baseDn: string; correlation: Array<[string, string]> },
    password: string,
    deadline: number,
  ): Promise<"match" | "mismatch"> {
    if (fresh && connection.security === "StartTLS") {
      await before(deadline, client.startTLS({ rejectUnauthorized: connection.validateTlsCertificates }));
    }
    // ldapts reconnects a closed connection by itself, in the clear: a StartTLS connection that
    // dropped must not carry a bind again.
    const secured = () => {
      if (connection.security === "StartTLS" && !client.isConnected) throw new Error("the StartTLS connection was closed");
    };
    secured();
    try {
      await before(deadline, client.bind(connection.bindDn, connection.bindPassword));
    } catch (err) {
      if (err instanceof InvalidCredentialsError) {
        throw LdapErrors.gatewayBindRefused();
      }
      if (err instanceof ResultCodeError) throw LdapErrors.gatewayBindFailed(err.message);
      throw err;
    }
    let dn: string | undefined;
    for (const [attribute, value] of lookup.correlation) {
      const byDn = attribute.toLowerCase() === "dn";
      let entries: Array<{ dn: string }>;
      secured();
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
      if (entries.length === 1) {
        dn = entries[0]!.dn;
        break;
      }
    }
    if (dn === undefined) {
      throw LdapErrors.noEntry(lookup.baseDn);
    }
    secured();
    try {
      await before(deadline, client.bind(dn, password));
      return "match";
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return "mismatch";
      if (err instanceof ResultCodeError) throw LdapErrors.userBindRefused(err.message);
      throw err;
    }
  }

  return {
    async verify(connection, lookup, password) {
      const deadline = Date.now() + options.timeoutMs;
      const failures: Failure[] = [];
      if (connection.servers.length === 0) throw LdapErrors.noServers();
      for (const server of connection.servers) {
        if (Date.now() >= deadline) {
          failures.push({ kind: "unreachable", server, reason: "not tried: no time left" });
          continue;
        }
        const pool = poolFor(connection, server);
        // An idle connection the server has since closed is retried once on a fresh one.
        for (let attempt = 0; attempt < 2; attempt++) {
          let pooled: Pooled;
          try {
            pooled = await pool.acquire(deadline);
          } catch (err) {
            failures.push({ kind: "unreachable", server, reason: reasonOf(err) });
            break;
          }
          if (pooled.reused && connection.security === "StartTLS" && !pooled.client.isConnected) {
            pool.release(pooled.client, false);
            continue;
          }
          try {
            const outcome = await checkOn(pooled.client, !pooled.reused, connection, lookup, password, deadline);
            pool.release(pooled.client, true);
            return outcome;
          } catch (err) {
            const decided = isDomainError(err);
            pool.release(pooled.client, decided);
            if (decided) throw err;
            if (pooled.reused && !(err instanceof DeadlineExceeded)) continue;
            const reason = reasonOf(err);
            failures.push({ kind: TLS_ERROR.test(reason) ? "tls" : "unreachable", server, reason });
            break;
          }
        }
      }
      const summary = failures.map((failure) => `${failure.server}: ${failure.reason}`).join("; ");
      if (failures.every((failure) => failure.kind === "tls")) {
        throw LdapErrors.tlsRefused(summary);
      }
      throw LdapErrors.unreachable(options.timeoutMs, summary);
    },
    async close() {
      const all = [...pools.values()].flatMap((byServer) => [...byServer.values()]);
      pools.clear();
      await Promise.all(all.map((pool) => pool.close()));
    },
  };
}
