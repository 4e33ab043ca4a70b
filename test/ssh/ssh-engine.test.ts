/**
 * The SSH engine for real: Debian's sshd on a loopback port as the target,
 * a real OIDC issuer, an agent from a single-file config, and the ssh2
 * client. Asserted: what the client sees (output, exit status, signals,
 * refusals) and what the audit trail keeps (statements, and the terminal
 * stream as asciicast v2, replayed and compared with what the client got).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import ssh2 from 'ssh2';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/src/agent.js';
import { parseAgentConfig } from '../../agent/src/config/load.js';
import { readJsonl } from '../../agent/src/audit/jsonl-recorder.js';
import type { SessionEvent } from '../../agent/src/audit/events.js';
import { castOf, replayCast } from '../../agent/src/engines/ssh/record.js';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { startSshd, type TestSshd } from '../support/sshd.js';

let issuer: TestIssuer;
let sshd: TestSshd;
let agent: RunningAgent;
let port: number;
let recording: string;
let echo: net.Server;
let echoPort: number;

function agentConfig(hostKeys: string[], recordingPath: string): ReturnType<typeof parseAgentConfig> {
  return parseAgentConfig(
    JSON.stringify({
      agent: { id: 'agent-ssh-test' },
      listeners: [{ name: 'lab-ssh', protocol: 'ssh', address: '127.0.0.1', port: 0, target: 'lab', hostKeyFile: sshd.listenerHostKeyFile }],
      targets: [{ name: 'lab', kind: 'ssh', host: '127.0.0.1', port: sshd.port, user: sshd.user, privateKey: `file:${sshd.agentKeyFile}`, hostKeys }],
      identity: {
        issuers: [{ issuer: issuer.issuer, audience: 'warden' }],
        groupMappings: [
          { group: 'lab-ops', role: 'lab-ops' },
          { group: 'lab-viewers', role: 'lab-viewer' },
          { group: 'lab-files', role: 'lab-files' },
        ],
      },
      roles: [
        { name: 'lab-ops', targets: ['lab'], ssh: { shell: true, exec: true, portForwards: [`127.0.0.1:${echoPort}`] } },
        { name: 'lab-viewer', targets: ['lab'], ssh: { exec: true, execCommands: ['^(echo|ls|cat|id)( |$)'] } },
        { name: 'lab-files', targets: ['lab'], ssh: { sftp: true } },
      ],
      recording: { kind: 'jsonl', path: recordingPath },
    }),
    'ssh-test',
  );
}

beforeAll(async () => {
  issuer = await startOidcIssuer();
  sshd = await startSshd();
  echo = net.createServer((s) => s.pipe(s));
  echoPort = await new Promise<number>((r) => echo.listen(0, '127.0.0.1', () => r((echo.address() as net.AddressInfo).port)));
  recording = path.join(sshd.dir, 'sessions.jsonl');
  agent = await startAgent(agentConfig([sshd.hostPublicKey], recording), { baseDir: sshd.dir, logger: pino({ level: process.env.WARDEN_TEST_LOG ?? 'silent' }) });
  port = agent.addresses.get('lab-ssh')!.port;
}, 30_000);

afterAll(async () => {
  await agent?.stop();
  await sshd?.stop();
  await issuer?.close();
  echo?.close();
});

async function token(groups = ['lab-ops'], sub = 'tech-1'): Promise<string> {
  return issuer.sign({ sub, groups });
}

function connect(password: string, opts: { keyboard?: boolean; agentPort?: number } = {}): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('the server closed the connection before login')));
    if (opts.keyboard) c.on('keyboard-interactive', (_n, _i, _l, _prompts, finish) => finish([password]));
    c.connect({
      host: '127.0.0.1',
      port: opts.agentPort ?? port,
      username: 'anyone',
      ...(opts.keyboard ? { tryKeyboard: true } : { password }),
      readyTimeout: 10_000,
    });
  });
}

interface Ran {
  stdout: string;
  stderr: string;
  code: number | null;
  signal?: string;
}

function exec(c: ssh2.Client, command: string, onChannel?: (ch: ssh2.ClientChannel) => void): Promise<Ran> {
  return new Promise((resolve, reject) => {
    c.exec(command, (err, ch) => {
      if (err) return reject(err);
      const out: Ran = { stdout: '', stderr: '', code: null };
      ch.on('data', (d: Buffer) => (out.stdout += d.toString()));
      ch.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
      ch.on('exit', (code: number | null, signal?: string) => {
        out.code = code;
        if (signal) out.signal = signal;
      });
      ch.on('close', () => resolve(out));
      onChannel?.(ch);
    });
  });
}

async function events(): Promise<SessionEvent[]> {
  await agent.recorder.flush();
  return readJsonl(recording);
}

async function waitFor(read: () => string, re: RegExp, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!re.test(read())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; got ${JSON.stringify(read())}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('SSH targets', () => {
  it('runs exec commands on the real host with their output, stderr and exit status, recorded as statements and asciicast', async () => {
    const c = await connect(await token());
    const ran = await exec(c, 'echo hello from $(hostname >/dev/null && echo the host); echo oops >&2; exit 3');
    c.end();
    expect(ran).toEqual({ stdout: 'hello from the host\n', stderr: 'oops\n', code: 3 });

    await new Promise((r) => setTimeout(r, 100));
    const all = await events();
    const st = all.filter((e) => e.type === 'statement' && e.protocol === 'ssh' && e.text.startsWith('echo hello')).pop();
    expect(st).toMatchObject({ type: 'statement', decision: 'allow', tag: 'exit 3' });
    const session = all.filter((e) => e.sessionId === st!.sessionId);
    expect(session[0]).toMatchObject({ type: 'session.start', role: 'lab-ops', identity: { subject: 'tech-1' } });
    expect(session.at(-1)).toMatchObject({ type: 'session.end', statements: 1 });
    const cast = replayCast(castOf(all, st!.sessionId, 1));
    expect(cast.header).toMatchObject({ version: 2, width: 80, height: 24, command: 'echo hello from $(hostname >/dev/null && echo the host); echo oops >&2; exit 3' });
    expect(cast.output).toBe('hello from the host\noops\n');
  });

  it('gives an interactive shell a PTY, passes window changes, and records a replayable asciicast of it', async () => {
    const c = await connect(await token());
    let seen = '';
    const result = await new Promise<{ code: number | null }>((resolve, reject) => {
      c.shell({ rows: 24, cols: 80, term: 'xterm-256color' }, (err, ch) => {
        if (err) return reject(err);
        ch.on('data', (d: Buffer) => (seen += d.toString()));
        let code: number | null = null;
        ch.on('exit', (x: number | null) => (code = x));
        ch.on('close', () => resolve({ code }));
        void (async () => {
          ch.write('stty size; echo "TERM=$TERM"\n');
          await waitFor(() => seen, /TERM=xterm-256color/);
          expect(seen).toMatch(/24 80/);
          ch.setWindow(40, 120, 0, 0);
          await new Promise((r) => setTimeout(r, 100));
          ch.write('stty size\n');
          await waitFor(() => seen, /40 120/);
          ch.write('exit 5\n');
        })().catch(reject);
      });
    });
    c.end();
    expect(result.code).toBe(5);

    await new Promise((r) => setTimeout(r, 300));
    const all = await events();
    const st = all.filter((e) => e.type === 'statement' && e.text === 'shell').pop()!;
    expect(st).toMatchObject({ decision: 'allow', tag: 'exit 5' });
    const castText = castOf(all, st.sessionId, 1);
    // Every line is asciicast v2: a header object, then [seconds, kind, text] events in time order.
    const lines = castText.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(lines[0]).toMatchObject({ version: 2, width: 80, height: 24, env: { TERM: 'xterm-256color' } });
    const times = lines.slice(1).map((l) => (l as [number])[0]);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const replay = replayCast(castText);
    // Replaying the recording gives exactly the bytes the client's terminal received.
    expect(replay.output).toBe(seen);
    expect(replay.resizes).toEqual(['120x40']);
    // Keystrokes are not kept (a password typed with echo off would be); what the shell echoed is in the output.
    expect(replay.input).toBe('');
    expect(replay.output).toContain('stty size; echo "TERM=$TERM"');
  });

  it('passes signals to the remote command and reports how it ended', async () => {
    const c = await connect(await token());
    const ran = await exec(c, 'exec sleep 30', (ch) => {
      setTimeout(() => ch.signal('TERM'), 300);
    });
    c.end();
    expect(ran.stderr).toBe('');
    expect(ran.code).toBeNull();
    expect(ran.signal).toBe('SIGTERM');
  });

  it('accepts the token through keyboard-interactive too, and refuses bad tokens', async () => {
    const c = await connect(await token(['lab-viewers'], 'viewer-1'), { keyboard: true });
    const ran = await exec(c, 'id -un');
    c.end();
    expect(ran.code).toBe(0);
    expect(ran.stdout.trim()).toBe(sshd.user);

    await expect(connect(issuer.tamper(await token()))).rejects.toThrow(/authentication methods failed/);
    await expect(connect(await token(['nobody']))).rejects.toThrow(/authentication methods failed/);
    const refusals = (await events()).filter((e) => e.type === 'auth.refused');
    expect(refusals.some((e) => e.type === 'auth.refused' && /no Warden role/.test(e.reason))).toBe(true);
  });

  it('refuses what the role does not grant: shell, commands outside its patterns, sftp, forwarding', async () => {
    const viewer = await connect(await token(['lab-viewers'], 'viewer-2'));
    const rm = await exec(viewer, 'rm -rf /tmp/nothing-here');
    expect(rm.code).toBe(126);
    expect(rm.stderr).toMatch(/role "lab-viewer" may not run "rm -rf \/tmp\/nothing-here"/);
    const shell = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      viewer.shell(false, (err, ch) => {
        if (err) return reject(err);
        let stderr = '';
        let code: number | null = null;
        ch.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        ch.on('exit', (x: number | null) => (code = x));
        ch.on('close', () => resolve({ code, stderr }));
        ch.resume();
      });
    });
    expect(shell.code).toBe(126);
    expect(shell.stderr).toMatch(/may not open an interactive shell/);
    await expect(new Promise((resolve, reject) => viewer.sftp((err, s) => (err ? reject(err) : resolve(s))))).rejects.toThrow();
    await expect(new Promise((resolve, reject) => viewer.forwardOut('127.0.0.1', 5000, '127.0.0.1', echoPort, (err, s) => (err ? reject(err) : resolve(s))))).rejects.toThrow(/Channel open failure/);
    viewer.end();

    // lab-ops may forward to the one destination it is granted, and nowhere else.
    const ops = await connect(await token());
    const ch = await new Promise<ssh2.ClientChannel>((resolve, reject) => ops.forwardOut('127.0.0.1', 5000, '127.0.0.1', echoPort, (err, s) => (err ? reject(err) : resolve(s))));
    let back = '';
    ch.on('data', (d: Buffer) => (back += d.toString()));
    ch.write('ping through the tunnel');
    await waitFor(() => back, /ping through the tunnel/);
    ch.end();
    await expect(new Promise((resolve, reject) => ops.forwardOut('127.0.0.1', 5000, '127.0.0.1', sshd.port, (err, s) => (err ? reject(err) : resolve(s))))).rejects.toThrow();
    await expect(new Promise((resolve, reject) => ops.forwardIn('127.0.0.1', 0, (err, p) => (err ? reject(err) : resolve(p))))).rejects.toThrow();
    ops.end();

    await new Promise((r) => setTimeout(r, 100));
    const denied = (await events()).filter((e) => e.type === 'statement' && e.decision === 'deny').map((e) => (e as { text: string }).text);
    expect(denied).toEqual(expect.arrayContaining(['rm -rf /tmp/nothing-here', 'shell', 'subsystem sftp', `direct-tcpip 127.0.0.1:${echoPort}`, `direct-tcpip 127.0.0.1:${sshd.port}`]));
  });

  it('gives SFTP to a role that grants it, on the real host', async () => {
    const c = await connect(await token(['lab-files'], 'files-1'));
    const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) => c.sftp((err, s) => (err ? reject(err) : resolve(s))));
    const file = `/tmp/warden-sftp-${process.pid}.txt`;
    await new Promise<void>((resolve, reject) => sftp.writeFile(file, 'written over sftp through warden\n', (err) => (err ? reject(err) : resolve())));
    c.end();
    expect(fs.readFileSync(file, 'utf8')).toBe('written over sftp through warden\n');
    fs.rmSync(file);
    await new Promise((r) => setTimeout(r, 100));
    const st = (await events()).filter((e) => e.type === 'statement' && e.text === 'subsystem sftp').pop();
    expect(st).toMatchObject({ decision: 'allow', tag: 'closed' });
  });

  it('refuses to connect to a host whose key is not in the configuration', async () => {
    const file = path.join(sshd.dir, 'mismatch.jsonl');
    const other = await startAgent(agentConfig([sshd.strangerPublicKey], file), { baseDir: sshd.dir, logger: pino({ level: 'silent' }) });
    try {
      const c = await connect(await token(), { agentPort: other.addresses.get('lab-ssh')!.port });
      const ran = await exec(c, 'echo should not run');
      c.end();
      expect(ran.code).toBe(126);
      expect(ran.stdout).toBe('');
      expect(ran.stderr).toMatch(/presented a host key that is not in the configuration/);
    } finally {
      await other.stop();
    }
    expect(fs.readFileSync(file, 'utf8')).toMatch(/upstream_error/);
  });

  it('runs nothing unrecorded: once the recorder fails, channels are refused and new logins too', async () => {
    const { JsonlRecorder } = await import('../../agent/src/audit/jsonl-recorder.js');
    const full = await startAgent(agentConfig([sshd.hostPublicKey], recording), { baseDir: sshd.dir, logger: pino({ level: 'silent' }), recorder: new JsonlRecorder('/dev/full') });
    try {
      const agentPort = full.addresses.get('lab-ssh')!.port;
      const c = await connect(await token(), { agentPort });
      await new Promise((r) => setTimeout(r, 150)); // session.start is written and fails with ENOSPC
      const ran = await exec(c, 'echo must not run');
      c.end();
      expect(ran).toMatchObject({ code: 126, stdout: '' });
      expect(ran.stderr).toMatch(/cannot record/);
      await expect(connect(await token(), { agentPort })).rejects.toThrow(/authentication methods failed|closed the connection/);
    } finally {
      await full.stop().catch(() => undefined);
    }
  });
});
