/**
 * A real OpenLDAP server (Debian's `slapd`) for the LDAP gateway tests: started as a child
 * process on free ports with a throw-away slapd.conf and an mdb directory loaded by `slapadd`,
 * stopped, paused and restarted by the tests. `.ci/run` installs slapd and ldap-utils when the
 * machine lacks them; in CI (`CI` set) a missing slapd fails the tests instead of skipping them.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "ldapts";
import { freePort } from "./process.js";

export const SLAPD = "/usr/sbin/slapd";
export const SLAPADD = "/usr/sbin/slapadd";
export const SLAPPASSWD = "/usr/sbin/slappasswd";

/** Whether the machine has slapd; throws in CI when it does not, so that the tests fail there. */
export function slapdAvailable(): boolean {
  const found = existsSync(SLAPD) && existsSync(SLAPADD) && existsSync(SLAPPASSWD);
  if (!found && process.env.CI) throw new Error(`${SLAPD} is missing: .ci/run installs slapd and ldap-utils (apt-get install -y slapd ldap-utils)`);
  return found;
}

export const SUFFIX = "dc=example,dc=com";
export const PEOPLE = `ou=people,${SUFFIX}`;
export const SERVICE_DN = `cn=gateway,ou=services,${SUFFIX}`;
export const SERVICE_PASSWORD = "Gateway-Service-1!";

export interface LdapPerson {
  uid: string;
  cn?: string;
  mail?: string;
  givenName?: string;
  sn?: string;
  employeeNumber?: string;
  /** Stored as `{SSHA}` unless `scheme` says `{CRYPT}`. */
  password: string;
  scheme?: "SSHA" | "CRYPT";
  /** Where the entry goes; PEOPLE unless set. */
  ou?: string;
}

/** An LDAP `{SSHA}` value: base64(SHA-1(password ‖ salt) ‖ salt). */
export function sshaValue(password: string): string {
  const salt = randomBytes(8);
  return `{SSHA}${Buffer.concat([createHash("sha1").update(password).update(salt).digest(), salt]).toString("base64")}`;
}

/** A `{CRYPT}` value (SHA-512 crypt) made by slappasswd, which slapd verifies with crypt(3). */
export function cryptValue(password: string): string {
  return execFileSync(SLAPPASSWD, ["-h", "{CRYPT}", "-c", "$6$%.16s", "-s", password], { encoding: "utf8" }).trim();
}

export class Slapd {
  private child: ChildProcess | undefined;
  private output = "";
  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly tlsPort: number,
    readonly certFile: string,
    private readonly configFile: string,
  ) {}

  /** `127.0.0.1:<port>` as a gateway's serversHostAndPort lists it (plain LDAP / StartTLS). */
  get hostAndPort() {
    return `127.0.0.1:${this.port}`;
  }
  /** The LDAPS (TLS from the first byte) address. */
  get tlsHostAndPort() {
    return `127.0.0.1:${this.tlsPort}`;
  }

  /** Writes the configuration and the directory (people under PEOPLE, the gateway's service account) and starts slapd. */
  static async start(people: LdapPerson[]): Promise<Slapd> {
    const dir = mkdtempSync(join(tmpdir(), "userport-slapd-"));
    const dbDir = join(dir, "db");
    mkdirSync(dbDir);
    const certFile = join(dir, "cert.pem");
    const keyFile = join(dir, "key.pem");
    // A self-signed certificate for 127.0.0.1: a gateway that validates certificates refuses it.
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        keyFile,
        "-out",
        certFile,
      ],
      { stdio: "ignore" },
    );
    const configFile = join(dir, "slapd.conf");
    writeFileSync(
      configFile,
      [
        "include /etc/ldap/schema/core.schema",
        "include /etc/ldap/schema/cosine.schema",
        "include /etc/ldap/schema/inetorgperson.schema",
        `pidfile ${join(dir, "slapd.pid")}`,
        `argsfile ${join(dir, "slapd.args")}`,
        "modulepath /usr/lib/ldap",
        "moduleload back_mdb",
        `TLSCertificateFile ${certFile}`,
        `TLSCertificateKeyFile ${keyFile}`,
        "database mdb",
        `suffix "${SUFFIX}"`,
        `rootdn "cn=admin,${SUFFIX}"`,
        `directory ${dbDir}`,
        "maxsize 67108864",
        // Passwords only for binding; entries readable by bound users (the gateway's account).
        "access to attrs=userPassword by anonymous auth by * none",
        "access to * by users read by * none",
        // Operation and connection counts (cn=Monitor), readable by anyone: see operations().
        "database monitor",
        "access to * by * read",
        "",
      ].join("\n"),
    );
    const ldif = [
      `dn: ${SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n`,
      `dn: ${PEOPLE}\nobjectClass: organizationalUnit\nou: people\n`,
      `dn: ou=services,${SUFFIX}\nobjectClass: organizationalUnit\nou: services\n`,
      `dn: ou=others,${SUFFIX}\nobjectClass: organizationalUnit\nou: others\n`,
      `dn: ${SERVICE_DN}\nobjectClass: person\ncn: gateway\nsn: gateway\nuserPassword: ${sshaValue(SERVICE_PASSWORD)}\n`,
      ...people.map((person) => {
        const lines = [
          `dn: uid=${person.uid},${person.ou ?? PEOPLE}`,
          "objectClass: inetOrgPerson",
          `uid: ${person.uid}`,
          `cn: ${person.cn ?? person.uid}`,
          `sn: ${person.sn ?? person.uid}`,
          ...(person.givenName ? [`givenName: ${person.givenName}`] : []),
          ...(person.mail ? [`mail: ${person.mail}`] : []),
          ...(person.employeeNumber ? [`employeeNumber: ${person.employeeNumber}`] : []),
          `userPassword: ${person.scheme === "CRYPT" ? cryptValue(person.password) : sshaValue(person.password)}`,
        ];
        return `${lines.join("\n")}\n`;
      }),
    ].join("\n");
    const ldifFile = join(dir, "data.ldif");
    writeFileSync(ldifFile, ldif);
    execFileSync(SLAPADD, ["-f", configFile, "-l", ldifFile], { stdio: "pipe" });
    const slapd = new Slapd(dir, await freePort(), await freePort(), certFile, configFile);
    await slapd.run();
    return slapd;
  }

  /** Starts slapd (again) on the same ports and directory; resolves when it accepts connections. */
  async run(): Promise<void> {
    const child = spawn(SLAPD, ["-f", this.configFile, "-h", `ldap://127.0.0.1:${this.port}/ ldaps://127.0.0.1:${this.tlsPort}/`, "-d", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.monitorReads = 0; // cn=Monitor counts from each start
    child.stdout!.on("data", (chunk) => (this.output += chunk));
    child.stderr!.on("data", (chunk) => (this.output += chunk));
    this.child = child;
    for (let attempt = 0; attempt < 200; attempt++) {
      if (child.exitCode !== null) break;
      if (await accepts(this.port)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    child.kill("SIGKILL");
    throw new Error(`slapd did not start:\n${this.output}`);
  }

  /** Stops slapd: connections are refused until `run()`. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    if (child.signalCode === null && child.exitCode === null) child.kill("SIGCONT");
    child.kill("SIGTERM");
    await exited;
    this.child = undefined;
  }

  /**
   * slapd's counts since it started (cn=Monitor): binds and searches completed, connections
   * accepted, and connections open now (the reading one included). Each read is a connection and
   * four searches of its own; binds, searches and connections leave out every read's. slapd counts
   * an operation only after it sent the result, so a read right after a client got its answer can
   * miss that operation: this reads again until two reads agree.
   */
  async operations(): Promise<{ binds: number; searches: number; connections: number; open: number }> {
    let last = await this.readMonitor();
    for (let attempt = 0; attempt < 50; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      const next = await this.readMonitor();
      if (next.binds === last.binds && next.searches === last.searches && next.connections === last.connections && next.open === last.open) return next;
      last = next;
    }
    throw new Error("slapd's counters (cn=Monitor) did not settle");
  }

  /** Reads of cn=Monitor since slapd started. */
  private monitorReads = 0;

  private async readMonitor(): Promise<{ binds: number; searches: number; connections: number; open: number }> {
    const earlierReads = this.monitorReads++;
    const client = new Client({ url: `ldap://${this.hostAndPort}`, timeout: 5000 });
    try {
      const count = async (dn: string, attribute: string) => {
        const { searchEntries } = await client.search(dn, { scope: "base", attributes: [attribute] });
        return Number(searchEntries[0]?.[attribute]);
      };
      const binds = await count("cn=Bind,cn=Operations,cn=Monitor", "monitorOpCompleted");
      // The earlier reads' four searches each, and this read's first.
      const searches = (await count("cn=Search,cn=Operations,cn=Monitor", "monitorOpCompleted")) - (4 * earlierReads + 1);
      // The earlier reads' connections, and this one.
      const connections = (await count("cn=Total,cn=Connections,cn=Monitor", "monitorCounter")) - (earlierReads + 1);
      const open = await count("cn=Current,cn=Connections,cn=Monitor", "monitorCounter");
      return { binds, searches, connections, open };
    } finally {
      await client.unbind();
    }
  }

  /** Freezes slapd (SIGSTOP): connections are accepted by the kernel but nothing answers, as a hung directory. */
  pause(): void {
    this.child?.kill("SIGSTOP");
  }
  resume(): void {
    this.child?.kill("SIGCONT");
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
