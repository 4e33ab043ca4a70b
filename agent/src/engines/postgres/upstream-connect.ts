/**
 * Opens the agent's own connection to the upstream database: TCP, optional
 * TLS with CA verification, StartupMessage, then SCRAM-SHA-256, md5 or
 * trust with the target's credentials (never the client's token). pg-protocol
 * serialises our frontend messages and parses the server's replies.
 */
import net from 'node:net';
import tls from 'node:tls';
import { serialize } from 'pg-protocol';
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { md5Password, ScramClient } from './scram.js';
import type { UpstreamTlsMode } from '../../config/types.js';
import { listenUpstream, UpstreamReader } from './upstream-reader.js';

export interface UpstreamTarget {
  name: string;
  host: string;
  port: number;
  database: string;
  user: string;
  /** Already resolved from its env:/file: reference. */
  password?: string;
  tls: { mode: UpstreamTlsMode; ca?: string; serverName?: string };
  connectTimeoutMs: number;
}

export interface UpstreamConnection {
  socket: net.Socket;
  /** Set for a plaintext socket: its chunks come through this reader, not 'data' events (upstream-reader.ts). */
  reader?: UpstreamReader;
  /** ParameterStatus values in the order the server sent them. */
  parameters: Array<[string, string]>;
  processId: number;
  secretKey: number;
}

/** A failure to reach or log in to the upstream. `serverFields` holds the server's own error, if any. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly sqlState: string,
    readonly serverFields?: { code?: string; message?: string },
  ) {
    super(message);
  }
}

type AnyMessage = BackendMessage & Record<string, unknown>;

function connectTcp(target: UpstreamTarget, reader: UpstreamReader | undefined): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port, ...(reader ? { onread: reader.onread } : {}) });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new UpstreamError(`timed out connecting to upstream ${target.name}`, '08001'));
    }, target.connectTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new UpstreamError(`cannot reach upstream ${target.name}: ${err.message}`, '08001'));
    });
  });
}

/** SSLRequest, then a TLS handshake that verifies the server unless mode is `require`. */
async function startTls(socket: net.Socket, target: UpstreamTarget): Promise<net.Socket> {
  socket.write(serialize.requestSsl());
  const answer = await new Promise<number>((resolve, reject) => {
    socket.once('data', (d: Buffer) => resolve(d[0]!));
    socket.once('error', reject);
  });
  if (answer !== 0x53) {
    socket.destroy();
    throw new UpstreamError(`upstream ${target.name} does not accept TLS but the target requires it`, '08001');
  }
  const verify = target.tls.mode === 'verify-full';
  return new Promise((resolve, reject) => {
    const secure = tls.connect({
      socket,
      ca: target.tls.ca,
      servername: target.tls.serverName ?? (net.isIP(target.host) ? undefined : target.host),
      rejectUnauthorized: verify,
      checkServerIdentity: verify ? (host, cert) => tls.checkServerIdentity(target.tls.serverName ?? host, cert) : () => undefined,
    });
    secure.once('secureConnect', () => resolve(secure));
    secure.once('error', (err) =>
      reject(new UpstreamError(`TLS to upstream ${target.name} failed: ${err.message}`, '08001')),
    );
  });
}

/**
 * Connects and authenticates. `startupParams` are the client's vetted
 * session parameters; user and database always come from the target.
 */
export async function connectUpstream(
  target: UpstreamTarget,
  startupParams: Record<string, string>,
): Promise<UpstreamConnection> {
  // TLS owns the reads of the socket it wraps: only a plaintext socket is read through our own slabs.
  const reader = target.tls.mode === 'disable' ? new UpstreamReader() : undefined;
  let socket = await connectTcp(target, reader);
  try {
    if (target.tls.mode !== 'disable') socket = await startTls(socket, target);
    return await handshake(socket, reader, target, startupParams);
  } catch (err) {
    socket.destroy();
    throw err instanceof UpstreamError ? err : new UpstreamError(`upstream ${target.name}: ${(err as Error).message}`, '08006');
  }
}

function handshake(
  socket: net.Socket,
  reader: UpstreamReader | undefined,
  target: UpstreamTarget,
  startupParams: Record<string, string>,
): Promise<UpstreamConnection> {
  return new Promise((resolve, reject) => {
    const parser = new Parser();
    const parameters: Array<[string, string]> = [];
    let processId = 0;
    let secretKey = 0;
    let scram: ScramClient | null = null;
    const timer = setTimeout(
      () => finish(new UpstreamError(`upstream ${target.name} did not finish the login in time`, '08001')),
      target.connectTimeoutMs,
    );

    const needPassword = (): string => {
      if (target.password === undefined) {
        throw new UpstreamError(`upstream ${target.name} asks for a password but the target has none configured`, '08004');
      }
      return target.password;
    };

    const finish = (err: Error | null): void => {
      clearTimeout(timer);
      stopListening();
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      if (err) reject(err);
      else resolve({ socket, parameters, processId, secretKey, ...(reader ? { reader } : {}) });
    };

    const onMessage = (msg: AnyMessage): void => {
      switch (msg.name) {
        case 'authenticationOk':
        case 'notice':
          return;
        case 'authenticationCleartextPassword':
          if (target.tls.mode === 'disable') {
            throw new UpstreamError(`upstream ${target.name} asks for a cleartext password over an unencrypted connection; refusing`, '08004');
          }
          socket.write(serialize.password(needPassword()));
          return;
        case 'authenticationMD5Password':
          socket.write(serialize.password(md5Password(target.user, needPassword(), msg.salt as Buffer)));
          return;
        case 'authenticationSASL': {
          const mechanisms = msg.mechanisms as string[];
          if (!mechanisms.includes('SCRAM-SHA-256')) {
            throw new UpstreamError(`upstream ${target.name} offers no supported SASL mechanism (${mechanisms.join(', ')})`, '08004');
          }
          scram = new ScramClient(needPassword());
          socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirst()));
          return;
        }
        case 'authenticationSASLContinue':
          if (!scram) throw new UpstreamError('unexpected SASLContinue', '08P01');
          socket.write(serialize.sendSCRAMClientFinalMessage(scram.clientFinal(msg.data as string)));
          return;
        case 'authenticationSASLFinal':
          if (!scram) throw new UpstreamError('unexpected SASLFinal', '08P01');
          scram.verifyServerFinal(msg.data as string);
          return;
        case 'parameterStatus':
          parameters.push([msg.parameterName as string, msg.parameterValue as string]);
          return;
        case 'backendKeyData':
          processId = msg.processID as number;
          secretKey = msg.secretKey as number;
          return;
        case 'readyForQuery':
          finish(null);
          return;
        case 'error': {
          const code = msg.code as string | undefined;
          const text = msg.message as string | undefined;
          // Upstream auth failures name the agent's own database user: keep that to the agent's log.
          const authFailure = code?.startsWith('28') ?? false;
          throw new UpstreamError(
            authFailure
              ? `the agent could not log in to upstream ${target.name}; check the target's credentials`
              : `upstream ${target.name} refused the connection: ${text ?? 'unknown error'}`,
            authFailure ? '08004' : code ?? '08004',
            { code, message: text },
          );
        }
        default:
          throw new UpstreamError(`unexpected message ${msg.name} from upstream ${target.name} during login`, '08P01');
      }
    };

    const onData = (chunk: Buffer): void => {
      try {
        parser.parse(chunk, (m) => onMessage(m as AnyMessage));
      } catch (err) {
        finish(err as Error);
      }
    };
    const onError = (err: Error): void => finish(new UpstreamError(`upstream ${target.name}: ${err.message}`, '08006'));
    const onClose = (): void => finish(new UpstreamError(`upstream ${target.name} closed the connection during login`, '08006'));

    const stopListening = listenUpstream(socket, reader, onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(serialize.startup({ ...startupParams, user: target.user, database: target.database }));
  });
}
