/**
 * The untyped first packets a client sends (Int32 length, Int32 code):
 * SSLRequest, GSSENCRequest, CancelRequest and StartupMessage.
 */

export const PROTOCOL_3_0 = 196608;
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

/** PostgreSQL itself refuses startup packets above this size (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10_000;

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; processId: number; secretKey: number }
  | { kind: 'startup'; major: number; minor: number; params: Map<string, string> };

export class StartupError extends Error {}

/** Decodes one complete startup-phase packet (length prefix included). */
export function decodeStartupPacket(packet: Buffer): StartupPacket {
  if (packet.length < 8) throw new StartupError('startup packet too short');
  const code = packet.readInt32BE(4);
  if (code === SSL_REQUEST_CODE) return { kind: 'ssl' };
  if (code === GSSENC_REQUEST_CODE) return { kind: 'gssenc' };
  if (code === CANCEL_REQUEST_CODE) {
    // Protocol 3.2 allows longer keys; the agent only ever hands out 4-byte ones.
    if (packet.length !== 16) throw new StartupError('invalid cancel request length');
    return { kind: 'cancel', processId: packet.readInt32BE(8), secretKey: packet.readInt32BE(12) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) {
    throw new StartupError(`unsupported frontend protocol ${major}.${minor}: server supports 3.0`);
  }
  const params = new Map<string, string>();
  let pos = 8;
  for (;;) {
    if (pos >= packet.length) throw new StartupError('startup packet is not terminated');
    if (packet[pos] === 0) break;
    const keyEnd = packet.indexOf(0, pos);
    if (keyEnd < 0) throw new StartupError('startup packet has an unterminated parameter name');
    const valueEnd = packet.indexOf(0, keyEnd + 1);
    if (valueEnd < 0) throw new StartupError('startup packet has an unterminated parameter value');
    params.set(packet.toString('utf8', pos, keyEnd), packet.toString('utf8', keyEnd + 1, valueEnd));
    pos = valueEnd + 1;
  }
  if (pos !== packet.length - 1) throw new StartupError('trailing bytes after startup parameters');
  return { kind: 'startup', major, minor, params };
}

/**
 * Collects bytes until one whole startup packet is present. Returns the
 * packet and whatever followed it (a client may pipeline its next message).
 */
export class StartupReader {
  private chunks: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): { packet: Buffer; rest: Buffer } | null {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size < 4) return null;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    this.chunks = [all];
    const length = all.readInt32BE(0);
    if (length < 8 || length > MAX_STARTUP_PACKET) {
      throw new StartupError(`invalid startup packet length ${length}`);
    }
    if (this.size < length) return null;
    this.chunks = [];
    this.size = 0;
    return { packet: all.subarray(0, length), rest: all.subarray(length) };
  }
}

/** NegotiateProtocolVersion: tells a 3.x>0 client we speak 3.0 and which `_pq_.` options we ignore. */
export function negotiateProtocolVersion(unsupported: string[]): Buffer {
  const names = Buffer.from(unsupported.map((n) => n + '\0').join(''), 'utf8');
  const out = Buffer.allocUnsafe(1 + 4 + 4 + 4 + names.length);
  out[0] = 0x76; // 'v'
  out.writeInt32BE(out.length - 1, 1);
  out.writeInt32BE(0, 5); // newest minor version supported
  out.writeInt32BE(unsupported.length, 9);
  names.copy(out, 13);
  return out;
}
