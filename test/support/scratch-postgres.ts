/**
 * A private PostgreSQL cluster per test file. The shared cluster on :5432
 * trusts everyone, so it cannot show whether the upstream connector really
 * speaks SCRAM, MD5 or TLS; this one has a role per authentication method.
 *
 * PostgreSQL refuses to run as root, so when the suite runs as root every
 * server-side command goes through `runuser -u postgres`; otherwise it runs as
 * the current user, who then owns the cluster.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { appendFile, chmod, chown, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { makeTestPki, postgresIds, type TestPki } from './certs.js';

const run = promisify(execFile);

export interface ScratchLogin {
  name: string;
  password: string;
}

export interface ScratchPostgres {
  host: '127.0.0.1';
  port: number;
  dataDir: string;
  /** The cluster's temp root: holds data/, pki/, server.log and the Unix socket. */
  socketDir: string;
  logFile: string;
  /** Present when started with `ssl: true`; the server presents `pki.serverCert`. */
  pki?: TestPki;
  database: 'warden_test';
  /** Superuser, trusted on the socket and on 127.0.0.1. */
  superuser: 'postgres';
  users: {
    /** Stored as SCRAM-SHA-256; pg_hba method scram-sha-256. */
    scram: ScratchLogin;
    /** Stored as an MD5 hash; pg_hba method md5, so the server sends an MD5 challenge. */
    md5: ScratchLogin;
    /** pg_hba method trust: no password is asked for. */
    trust: { name: string };
    /** SCRAM, but only over TLS (hostssl); exists without `ssl` too, yet then has no pg_hba line and cannot log in. */
    tls: ScratchLogin;
  };
  /** Immediate shutdown and removal of every file; safe to call more than once. */
  stop(): Promise<void>;
}

export interface StartScratchPostgresOptions {
  ssl?: boolean;
}

const USERS = {
  scram: { name: 'scram_user', password: 'scram-secret' },
  md5: { name: 'md5_user', password: 'md5-secret' },
  trust: { name: 'trust_user' },
  tls: { name: 'tls_user', password: 'tls-secret' },
} as const;

const DATABASE = 'warden_test';
const START_ATTEMPTS = 3;

const isRoot = process.getuid?.() === 0;

let binDirPromise: Promise<string> | undefined;

function versionOf(dir: string): number {
  return Number(/postgresql\/(\d+(?:\.\d+)?)\//.exec(`${dir}/`)?.[1] ?? 0);
}

/** WARDEN_PG_BINDIR, else pg_config's answer, else the newest /usr/lib/postgresql/<v>/bin. */
function pgBinDir(): Promise<string> {
  binDirPromise ??= (async () => {
    const hasServer = (dir: string) => ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(path.join(dir, b)));
    const candidates: string[] = [];
    if (process.env.WARDEN_PG_BINDIR) candidates.push(process.env.WARDEN_PG_BINDIR);
    try {
      // On Debian pg_config may come from libpq-dev and point at /usr/bin, which has no initdb.
      candidates.push((await run('pg_config', ['--bindir'])).stdout.trim());
    } catch {
      // Not installed: the glob below still finds the server packages.
    }
    try {
      const versions = await readdir('/usr/lib/postgresql');
      candidates.push(
        ...versions.map((v) => `/usr/lib/postgresql/${v}/bin`).sort((a, b) => versionOf(b) - versionOf(a)),
      );
    } catch {
      // Not a Debian-style layout.
    }
    const found = candidates.find((d) => d && hasServer(d));
    if (!found) {
      throw new Error(
        `no PostgreSQL server binaries (initdb, pg_ctl, postgres) found in: ${candidates.join(', ') || '(nothing)'}; set WARDEN_PG_BINDIR`,
      );
    }
    return found;
  })();
  return binDirPromise;
}

/**
 * Test runners often export PGHOST/PGPORT/PGDATA for the shared cluster; the
 * postmaster reads PGPORT as its default port and pg_ctl reads PGDATA, so
 * none of them may leak into the scratch cluster's commands.
 */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env.LC_ALL = 'C';
  return env;
}

/** Runs a server binary as the postgres user (or as ourselves when not root). */
async function asPostgres(cwd: string, bin: string, args: string[]): Promise<string> {
  const [file, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  try {
    // cwd: a server binary started from a directory postgres cannot read fails on getcwd().
    const { stdout, stderr } = await run(file, argv, { cwd, env: serverEnv(), timeout: 60_000 });
    return `${stdout}${stderr}`;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    const output = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim();
    throw new Error(`${path.basename(bin)} ${args.join(' ')} failed: ${output || e.message}`);
  }
}

/** A port nothing listens on right now; the postmaster may still lose a race for it, hence the retries in start. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function logTail(logFile: string, lines = 40): Promise<string> {
  try {
    const text = await readFile(logFile, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no server log)';
  }
}

const q = (s: string) => `'${s.replace(/'/g, "''")}'`;

function serverConf(port: number, socketDir: string, pki: TestPki | undefined): string {
  const lines = [
    `listen_addresses = '127.0.0.1'`,
    `port = ${port}`,
    `unix_socket_directories = ${q(socketDir)}`,
    `max_connections = 50`,
    // Durability buys nothing for a cluster deleted at the end of the file; these make start and DDL fast.
    `fsync = off`,
    `synchronous_commit = off`,
    `full_page_writes = off`,
    // Several test files may each run a cluster at once.
    `shared_buffers = '32MB'`,
    // The server default, pinned so a changed default cannot turn scram_user/tls_user into MD5 users.
    `password_encryption = 'scram-sha-256'`,
  ];
  if (pki) {
    lines.push(`ssl = on`, `ssl_cert_file = ${q(pki.paths.serverCert)}`, `ssl_key_file = ${q(pki.paths.serverKey)}`);
  }
  return `${lines.join('\n')}\n`;
}

function hbaConf(ssl: boolean): string {
  // First match wins, and a user with no matching line is refused outright: that is what keeps tls_user off plain TCP.
  const lines = [
    'local all postgres trust',
    'host all postgres 127.0.0.1/32 trust',
    `host all ${USERS.scram.name} 127.0.0.1/32 scram-sha-256`,
    `host all ${USERS.md5.name} 127.0.0.1/32 md5`,
    `host all ${USERS.trust.name} 127.0.0.1/32 trust`,
  ];
  if (ssl) lines.push(`hostssl all ${USERS.tls.name} 127.0.0.1/32 scram-sha-256`);
  return `${lines.join('\n')}\n`;
}

async function createRolesAndDatabase(port: number): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await client.connect();
  try {
    // The stored hash format follows password_encryption at CREATE time, not the pg_hba method.
    await client.query(`SET password_encryption = 'scram-sha-256'`);
    await client.query(`CREATE ROLE ${USERS.scram.name} LOGIN PASSWORD ${q(USERS.scram.password)}`);
    await client.query(`CREATE ROLE ${USERS.tls.name} LOGIN PASSWORD ${q(USERS.tls.password)}`);
    await client.query(`SET password_encryption = 'md5'`);
    await client.query(`CREATE ROLE ${USERS.md5.name} LOGIN PASSWORD ${q(USERS.md5.password)}`);
    await client.query(`CREATE ROLE ${USERS.trust.name} LOGIN`);
    // CREATE DATABASE cannot share an implicit transaction with other statements, so it goes alone.
    await client.query(`CREATE DATABASE ${DATABASE} OWNER postgres`);
    await client.query(`GRANT CONNECT ON DATABASE ${DATABASE} TO PUBLIC`);
  } finally {
    await client.end();
  }
}

/** Last resort when pg_ctl cannot be used: SIGQUIT is PostgreSQL's immediate shutdown. */
function killPostmasterSync(dataDir: string): void {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (pid > 0) process.kill(pid, 'SIGQUIT');
  } catch {
    // No pid file or no such process: nothing is running.
  }
}

export async function startScratchPostgres(opts: StartScratchPostgresOptions = {}): Promise<ScratchPostgres> {
  const binDir = await pgBinDir();
  const bin = (name: string) => path.join(binDir, name);
  const root = await mkdtemp(path.join(os.tmpdir(), 'warden-pg-'));
  const dataDir = path.join(root, 'data');
  const logFile = path.join(root, 'server.log');
  const pgCtlStop = () => asPostgres(root, bin('pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);

  // A crashed or killed-by-timeout test file never reaches afterAll; don't leave a postmaster behind.
  const onExit = () => {
    killPostmasterSync(dataDir);
    try {
      rmSync(root, { recursive: true, force: true });
    } catch {
      // The postmaster may still be exiting; a leftover temp dir is the lesser harm.
    }
  };
  process.once('exit', onExit);

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      process.removeListener('exit', onExit);
      if (existsSync(path.join(dataDir, 'postmaster.pid'))) {
        try {
          await pgCtlStop();
        } catch {
          killPostmasterSync(dataDir);
        }
      }
      await rm(root, { recursive: true, force: true });
    })());

  let step = 'prepare temp dir';
  try {
    const owner = isRoot ? await postgresIds() : undefined;
    if (owner) await chown(root, owner.uid, owner.gid);
    // mkdtemp gives 0700; a process under test running as another user still needs the socket and the CA cert.
    await chmod(root, 0o755);

    step = 'create PKI';
    const pki = opts.ssl ? await makeTestPki(path.join(root, 'pki'), { ownerPostgres: isRoot }) : undefined;

    step = 'initdb';
    await asPostgres(root, bin('initdb'), [
      '-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C',
    ]);

    step = 'configure';
    // An include keeps our settings in one file that can be rewritten per start attempt with a new port.
    await appendFile(path.join(dataDir, 'postgresql.conf'), `\ninclude 'warden_scratch.conf'\n`);
    await writeFile(path.join(dataDir, 'pg_hba.conf'), hbaConf(Boolean(opts.ssl)));
    const confFile = path.join(dataDir, 'warden_scratch.conf');

    let port = 0;
    for (let attempt = 1; ; attempt++) {
      step = `start (attempt ${attempt})`;
      port = await freePort();
      await writeFile(confFile, serverConf(port, root, pki));
      if (owner) await chown(confFile, owner.uid, owner.gid);
      try {
        await asPostgres(root, bin('pg_ctl'), ['-D', dataDir, '-l', logFile, '-w', '-t', '30', 'start']);
        break;
      } catch (err) {
        // pg_ctl can give up while a postmaster is still coming up; never leave it for the next attempt.
        await pgCtlStop().catch(() => killPostmasterSync(dataDir));
        const lostPortRace = /could not bind|address already in use/i.test(await logTail(logFile, 20));
        if (!lostPortRace || attempt >= START_ATTEMPTS) throw err;
      }
    }

    step = 'create roles and database';
    await createRolesAndDatabase(port);

    return {
      host: '127.0.0.1',
      port,
      dataDir,
      socketDir: root,
      logFile,
      ...(pki ? { pki } : {}),
      database: DATABASE,
      superuser: 'postgres',
      users: {
        scram: { ...USERS.scram },
        md5: { ...USERS.md5 },
        trust: { ...USERS.trust },
        tls: { ...USERS.tls },
      },
      stop,
    };
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    const tail = await logTail(logFile);
    await stop().catch(() => undefined);
    const hint =
      /permission denied/i.test(detail) && isRoot
        ? `\nhint: the postgres user must be able to traverse every parent of ${root} (check TMPDIR)`
        : '';
    throw new Error(`scratch PostgreSQL failed at "${step}": ${detail}${hint}\n--- server log tail ---\n${tail}`, {
      cause: err,
    });
  }
}
