/**
 * A real OpenSSH server (Debian's openssh-server) on a loopback port, for
 * SSH engine tests: its own host key and an authorized_keys file holding
 * only the agent's key, in a temporary directory.
 *
 * As root, the agent logs in as an unprivileged user (created once,
 * `warden-ssh`): OpenSSH handles a root login's session in its privileged
 * monitor, which refuses "signal" requests, so only a normal user's session
 * behaves as production hosts do. Otherwise the login user is whoever runs
 * the tests.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, spawnLogged, waitForPort, type LoggedProcess } from './processes.js';

export const SSHD = process.env.WARDEN_TEST_SSHD ?? '/usr/sbin/sshd';

export interface TestSshd {
  port: number;
  user: string;
  dir: string;
  /** The host's public key line, "ssh-ed25519 AAAA...". */
  hostPublicKey: string;
  /** Private key (OpenSSH format) file the agent logs in with. */
  agentKeyFile: string;
  /** Another key pair's public line, for host-key-mismatch cases. */
  strangerPublicKey: string;
  /** The agent's own SSH host key (the listener's), private key file. */
  listenerHostKeyFile: string;
  process: LoggedProcess;
  stop(): Promise<void>;
}

function keygen(file: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', file]);
  return fs.readFileSync(`${file}.pub`, 'utf8').trim();
}

const LOGIN_USER = 'warden-ssh';

function loginUser(): string {
  if (process.getuid?.() !== 0) return os.userInfo().username;
  try {
    execFileSync('id', ['-u', LOGIN_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', LOGIN_USER]);
  }
  // A new account is locked ("!"), which sshd refuses even for key logins; "*" allows keys and no password.
  execFileSync('usermod', ['-p', '*', LOGIN_USER]);
  return LOGIN_USER;
}

export async function startSshd(): Promise<TestSshd> {
  if (!fs.existsSync(SSHD)) {
    throw new Error(`${SSHD} is missing: install Debian's openssh-server (apt-get install openssh-server) or set WARDEN_TEST_SSHD`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-sshd-'));
  const hostPublicKey = keygen(path.join(dir, 'host_key'));
  const agentPublic = keygen(path.join(dir, 'agent_key'));
  const strangerPublicKey = keygen(path.join(dir, 'stranger_key'));
  keygen(path.join(dir, 'listener_host_key'));
  const user = loginUser();
  // sshd reads authorized_keys as the login user: the directory and file must be readable to it (private keys stay 0600).
  fs.chmodSync(dir, 0o755);
  fs.writeFileSync(path.join(dir, 'authorized_keys'), agentPublic + '\n', { mode: 0o644 });
  const port = await freePort();
  fs.writeFileSync(
    path.join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no',
      'PidFile none',
      'AllowTcpForwarding yes',
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  // sshd insists on its privilege-separation directory even when it runs as one user.
  if (process.getuid?.() === 0) fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const proc = spawnLogged('sshd', [SSHD, '-D', '-e', '-f', path.join(dir, 'sshd_config')]);
  await waitForPort(port, proc.child, 'sshd');
  return {
    port,
    user,
    dir,
    hostPublicKey,
    agentKeyFile: path.join(dir, 'agent_key'),
    strangerPublicKey,
    listenerHostKeyFile: path.join(dir, 'listener_host_key'),
    process: proc,
    async stop() {
      await proc.kill('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
