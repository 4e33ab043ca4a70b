import { once } from 'node:events';
import { existsSync } from 'node:fs';
import net from 'node:net';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { Parser } from 'pg-protocol/dist/parser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startScratchPostgres, type ScratchPostgres } from './scratch-postgres.js';

/** Connects, runs fn, always closes; a failed connect rejects with pg's error (SQLSTATE in `code`). */
async function withClient<T>(config: pg.ClientConfig, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(config);
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function currentUser(config: pg.ClientConfig): Promise<string> {
  return withClient(config, async (c) => (await c.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u);
}

/** The server's first reply to a startup message: which authentication request pg_hba.conf chose. */
async function firstAuthRequest(port: number, user: string, database: string): Promise<string> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  const parser = new Parser();
  try {
    return await new Promise<string>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => parser.parse(chunk, (m) => resolve(m.name)));
      socket.once('error', reject);
      socket.write(serialize.startup({ user, database }));
    });
  } finally {
    socket.destroy();
  }
}

describe('startScratchPostgres with ssl', () => {
  let db: ScratchPostgres;
  const cfg = (user: string, password?: string, extra: pg.ClientConfig = {}): pg.ClientConfig => ({
    host: db.host,
    port: db.port,
    database: db.database,
    user,
    password,
    ...extra,
  });

  beforeAll(async () => {
    db = await startScratchPostgres({ ssl: true });
  });

  afterAll(async () => {
    await db?.stop();
  });

  it('stores each password in the format its auth method needs', async () => {
    const rows = await withClient(
      cfg('postgres'),
      async (c) =>
        (
          await c.query<{ rolname: string; kind: string | null }>(
            `SELECT rolname, split_part(rolpassword, '$', 1) AS kind FROM pg_authid
             WHERE rolname IN ('scram_user', 'md5_user', 'trust_user', 'tls_user') ORDER BY rolname`,
          )
        ).rows,
    );
    expect(rows.map((r) => [r.rolname, r.kind?.startsWith('md5') ? 'md5' : r.kind])).toEqual([
      ['md5_user', 'md5'],
      ['scram_user', 'SCRAM-SHA-256'],
      ['tls_user', 'SCRAM-SHA-256'],
      ['trust_user', null],
    ]);
  });

  it('asks each user for the method its pg_hba line names', async () => {
    expect(await firstAuthRequest(db.port, db.users.scram.name, db.database)).toBe('authenticationSASL');
    expect(await firstAuthRequest(db.port, db.users.md5.name, db.database)).toBe('authenticationMD5Password');
    expect(await firstAuthRequest(db.port, db.users.trust.name, db.database)).toBe('authenticationOk');
  });

  it('accepts scram_user with the right password and refuses a wrong one with 28P01', async () => {
    const { name, password } = db.users.scram;
    expect(await currentUser(cfg(name, password))).toBe(name);
    await expect(currentUser(cfg(name, 'wrong'))).rejects.toMatchObject({ code: '28P01' });
  });

  it('accepts md5_user with the right password and refuses a wrong one with 28P01', async () => {
    const { name, password } = db.users.md5;
    expect(await currentUser(cfg(name, password))).toBe(name);
    await expect(currentUser(cfg(name, 'wrong'))).rejects.toMatchObject({ code: '28P01' });
  });

  it('accepts trust_user without a password', async () => {
    expect(await currentUser(cfg(db.users.trust.name))).toBe(db.users.trust.name);
  });

  it('accepts tls_user over verified TLS', async () => {
    const { name, password } = db.users.tls;
    const ssl = await withClient(cfg(name, password, { ssl: { ca: db.pki!.caCert } }), async (c) => {
      const r = await c.query<{ ssl: boolean; u: string }>(
        'SELECT ssl, current_user AS u FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      );
      return r.rows[0];
    });
    expect(ssl).toEqual({ ssl: true, u: name });
  });

  it('refuses tls_user without TLS', async () => {
    const { name, password } = db.users.tls;
    await expect(currentUser(cfg(name, password))).rejects.toMatchObject({
      code: '28000',
      message: expect.stringContaining('no encryption'),
    });
  });

  it('presents a server cert that does not verify against the other CA', async () => {
    const { name, password } = db.users.tls;
    const err = await currentUser(cfg(name, password, { ssl: { ca: db.pki!.otherCaCert } })).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err?.code).toMatch(/CERT|ISSUER|SIGNATURE/);
  });
});

describe('startScratchPostgres without ssl', () => {
  it('starts without a PKI, keeps tls_user out, and stop() removes everything', async () => {
    const db = await startScratchPostgres();
    try {
      expect(db.pki).toBeUndefined();
      expect(await currentUser({ host: db.host, port: db.port, database: db.database, user: 'trust_user' })).toBe(
        'trust_user',
      );
      await expect(
        currentUser({
          host: db.host,
          port: db.port,
          database: db.database,
          user: db.users.tls.name,
          password: db.users.tls.password,
        }),
      ).rejects.toMatchObject({ code: '28000' });
    } finally {
      await db.stop();
    }
    await db.stop();
    expect(existsSync(db.dataDir)).toBe(false);
    await expect(currentUser({ host: db.host, port: db.port, user: 'postgres' })).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
  });
});
