/**
 * Compiles the repository's topology — Targets (PostgreSQL, HTTP, SSH) and
 * the Listeners in front of them — into their bundle messages, with every
 * default written out (see compile.ts for the rest of the bundle).
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ListenerSchema, PostgresTlsMode, TargetSchema, type Listener, type Target } from '../../../proto/src/index.js';
import type { Located } from './model.js';
import { isLoopback } from './patterns.js';
import type { ListenerSpec, TargetSpec } from './types.js';

const TLS = { disable: PostgresTlsMode.DISABLE, require: PostgresTlsMode.REQUIRE, 'verify-full': PostgresTlsMode.VERIFY_FULL } as const;

export function compileTarget({ spec: s }: Located<TargetSpec>): Target {
  const base = { name: s.name, description: s.description ?? '' };
  if (s.http) {
    const h = s.http;
    return create(TargetSchema, {
      ...base,
      kind: {
        case: 'http',
        value: {
          baseUrl: h.baseUrl,
          authorizationRef: h.authorizationRef ?? '',
          caFile: h.caFile ?? '',
          maxMaskBodyBytes: h.maxMaskBodyBytes ?? 10 * 1024 * 1024,
          timeoutMs: h.timeoutMs ?? 30_000,
        },
      },
    });
  }
  if (s.ssh) {
    const h = s.ssh;
    return create(TargetSchema, {
      ...base,
      kind: {
        case: 'ssh',
        value: { host: h.host, port: h.port ?? 22, user: h.user, privateKeyRef: h.privateKeyRef, hostKeys: [...h.hostKeys], connectTimeoutMs: h.connectTimeoutMs ?? 10_000 },
      },
    });
  }
  const pg = s.postgres!;
  // Only loopback may omit tls (validation enforces it), and there plaintext is the only sensible default.
  const mode = pg.tls?.mode ?? (isLoopback(pg.host) ? 'disable' : 'verify-full');
  return create(TargetSchema, {
    ...base,
    kind: {
      case: 'postgres',
      value: {
        host: pg.host,
        port: pg.port,
        database: pg.database,
        user: pg.user,
        passwordRef: pg.passwordRef ?? '',
        tls: { mode: TLS[mode], caFile: pg.tls?.caFile ?? '', serverName: pg.tls?.serverName ?? '' },
        connectTimeoutMs: pg.connectTimeoutMs ?? 10_000,
      },
    },
  });
}

type ListenerProtocolInit = NonNullable<MessageInitShape<typeof ListenerSchema>['protocol']>;

function listenerProtocol(s: ListenerSpec): ListenerProtocolInit {
  const tls = (t: { certFile: string; keyFile: string } | undefined) => (t ? { tls: { certFile: t.certFile, keyFile: t.keyFile } } : {});
  if (s.http) {
    return { case: 'http', value: { allowPlaintext: s.http.allowPlaintext ?? false, ...tls(s.http.tls), maxRequestBytes: s.http.maxRequestBytes ?? 10 * 1024 * 1024 } };
  }
  if (s.ssh) return { case: 'ssh', value: { hostKeyFile: s.ssh.hostKeyFile } };
  const pg = s.postgres!;
  return { case: 'postgres', value: { allowPlaintext: pg.allowPlaintext ?? false, ...tls(pg.tls), maxMessageBytes: pg.maxMessageBytes ?? 64 * 1024 * 1024 } };
}

export function compileListener({ spec: s }: Located<ListenerSpec>): Listener {
  return create(ListenerSchema, {
    name: s.name,
    target: s.target,
    address: s.address,
    port: s.port,
    agentSelector: { ...(s.agentSelector ?? {}) },
    protocol: listenerProtocol(s),
  });
}
