/**
 * Inspect and decide for SSH: what a role may open on an SSH target — an
 * interactive shell, exec (optionally only commands matching the role's
 * patterns), the SFTP subsystem, local forwarding to listed destinations.
 * Anything not granted is refused; remote (reverse) forwarding, agent
 * forwarding and X11 are never offered.
 */
import type { PolicyBundle, SshPermissions } from '../../../../proto/src/index.js';

export type SshAction =
  | { kind: 'shell' }
  | { kind: 'exec'; command: string }
  | { kind: 'subsystem'; name: string }
  | { kind: 'forward'; host: string; port: number };

export type SshVerdict = { allowed: true } | { allowed: false; reason: string };

/** What the record and the approver read for an action. */
export function describeAction(a: SshAction): string {
  switch (a.kind) {
    case 'shell':
      return 'shell';
    case 'exec':
      return a.command;
    case 'subsystem':
      return `subsystem ${a.name}`;
    case 'forward':
      return `direct-tcpip ${a.host}:${a.port}`;
  }
}

function hostPortPattern(pattern: string): (hostPort: string) => boolean {
  const re = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^:]*')}$`);
  return (hostPort) => re.test(hostPort);
}

export class SshRolePolicy {
  private readonly commands: RegExp[];
  private readonly forwards: Array<(hostPort: string) => boolean>;

  constructor(readonly role: string, private readonly perms: SshPermissions | undefined) {
    this.commands = (perms?.execCommands ?? []).map((c) => new RegExp(c));
    this.forwards = (perms?.portForwards ?? []).map(hostPortPattern);
  }

  decide(a: SshAction): SshVerdict {
    const p = this.perms;
    const no = (reason: string): SshVerdict => ({ allowed: false, reason: `role "${this.role}" ${reason}` });
    switch (a.kind) {
      case 'shell':
        return p?.shell ? { allowed: true } : no('may not open an interactive shell');
      case 'exec':
        if (!p?.exec) return no('may not run commands');
        if (this.commands.length > 0 && !this.commands.some((re) => re.test(a.command))) return no(`may not run ${JSON.stringify(a.command)}: it matches none of the role's allowed commands`);
        return { allowed: true };
      case 'subsystem':
        return a.name === 'sftp' && p?.sftp ? { allowed: true } : no(`may not use the ${a.name} subsystem`);
      case 'forward':
        return this.forwards.some((f) => f(`${a.host}:${a.port}`)) ? { allowed: true } : no(`may not forward to ${a.host}:${a.port}`);
    }
  }
}

/** Every role's SSH permissions under one bundle. */
export class SshPolicy {
  private readonly roles: Map<string, SshRolePolicy>;

  constructor(bundle: PolicyBundle) {
    this.roles = new Map(bundle.roles.map((r) => [r.name, new SshRolePolicy(r.name, r.ssh)]));
  }

  forRole(name: string): SshRolePolicy {
    return this.roles.get(name) ?? new SshRolePolicy(name, undefined);
  }
}
