import crypto from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, postgresIds, type TestPki } from './certs.js';

/** Handshakes with a real TLS server presenting the PKI's server cert; resolves to the client-side verification error, if any. */
async function handshake(pki: TestPki, ca: string, servername = 'localhost'): Promise<string | undefined> {
  const server = tls.createServer({ cert: pki.serverCert, key: pki.serverKey }, (s) => s.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  try {
    return await new Promise<string | undefined>((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca, servername }, () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
  } finally {
    server.close();
  }
}

describe('makeTestPki', () => {
  let pki: TestPki;

  beforeAll(async () => {
    pki = await makeTestPki();
  });

  afterAll(async () => {
    await pki?.remove();
  });

  it('writes every file and returns its PEM', async () => {
    for (const [name, file] of Object.entries(pki.paths)) {
      expect(path.dirname(file), name).toBe(pki.dir);
      expect(existsSync(file), name).toBe(true);
    }
    expect(pki.caCert).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(pki.serverKey).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect((await stat(pki.paths.serverKey)).mode & 0o777).toBe(0o600);
  });

  it('issues a server cert for localhost and 127.0.0.1, signed by the CA and not by the other CA', () => {
    const ca = new crypto.X509Certificate(pki.caCert);
    const other = new crypto.X509Certificate(pki.otherCaCert);
    const server = new crypto.X509Certificate(pki.serverCert);
    expect(ca.ca).toBe(true);
    expect(other.ca).toBe(true);
    expect(server.ca).toBe(false);
    expect(server.subjectAltName).toContain('DNS:localhost');
    expect(server.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(server.verify(other.publicKey)).toBe(false);
    // Same subject on purpose; only the key tells them apart.
    expect(other.subject).toBe(ca.subject);
    expect(other.fingerprint256).not.toBe(ca.fingerprint256);
    expect(server.checkPrivateKey(crypto.createPrivateKey(pki.serverKey))).toBe(true);
  });

  it('passes a real TLS handshake with the CA and fails with the other CA', async () => {
    expect(await handshake(pki, pki.caCert)).toBeUndefined();
    expect(await handshake(pki, pki.otherCaCert)).toMatch(/CERT|ISSUER|SIGNATURE/);
    expect(await handshake(pki, pki.caCert, 'not-localhost')).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('removes only a directory it created', async () => {
    const own = await makeTestPki();
    await own.remove();
    expect(existsSync(own.dir)).toBe(false);

    const parent = await mkdtemp(path.join(os.tmpdir(), 'warden-pki-test-'));
    try {
      const given = await makeTestPki(path.join(parent, 'pki'));
      await given.remove();
      expect(existsSync(given.paths.caCert)).toBe(true);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('hands keys to the postgres user with ownerPostgres', async () => {
    const owned = await makeTestPki(undefined, { ownerPostgres: true });
    try {
      const { uid } = await postgresIds();
      const key = await stat(owned.paths.serverKey);
      expect(key.uid).toBe(uid);
      expect(key.mode & 0o777).toBe(0o600);
      const dir = await stat(owned.dir);
      expect(dir.uid).toBe(uid);
      expect(dir.mode & 0o005).toBe(0o005);
    } finally {
      await owned.remove();
    }
  });
});
