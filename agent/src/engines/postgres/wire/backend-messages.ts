/**
 * Serialisers for the backend (server → client) messages the agent itself
 * speaks. pg-protocol only serialises frontend messages, so the proxy owns
 * these. Each builds its frame in a single allocation.
 */

/** ErrorResponse / NoticeResponse fields, by their protocol field code. */
export interface ErrorFields {
  severity: 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function frame(type: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstrings(parts: Array<[string, string | undefined]>): Buffer {
  const chunks: Buffer[] = [];
  for (const [code, value] of parts) {
    if (value === undefined) continue;
    chunks.push(Buffer.from(code + value + '\0', 'utf8'));
  }
  chunks.push(Buffer.from([0]));
  return Buffer.concat(chunks);
}

function errorLike(type: 'E' | 'N', f: ErrorFields): Buffer {
  return frame(
    type,
    cstrings([
      // 'S' is localised in real servers; 'V' is the stable, never-localised copy.
      ['S', f.severity],
      ['V', f.severity],
      ['C', f.code],
      ['M', f.message],
      ['D', f.detail],
      ['H', f.hint],
    ]),
  );
}

export const backend = {
  errorResponse: (f: ErrorFields): Buffer => errorLike('E', f),
  noticeResponse: (f: ErrorFields): Buffer => errorLike('N', f),

  authenticationCleartextPassword(): Buffer {
    const out = Buffer.allocUnsafe(9);
    out[0] = 0x52; // 'R'
    out.writeInt32BE(8, 1);
    out.writeInt32BE(3, 5);
    return out;
  },

  authenticationOk(): Buffer {
    const out = Buffer.allocUnsafe(9);
    out[0] = 0x52;
    out.writeInt32BE(8, 1);
    out.writeInt32BE(0, 5);
    return out;
  },

  backendKeyData(processId: number, secretKey: number): Buffer {
    const out = Buffer.allocUnsafe(13);
    out[0] = 0x4b; // 'K'
    out.writeInt32BE(12, 1);
    out.writeInt32BE(processId, 5);
    out.writeInt32BE(secretKey, 9);
    return out;
  },

  parameterStatus(name: string, value: string): Buffer {
    return frame('S', Buffer.from(`${name}\0${value}\0`, 'utf8'));
  },

  readyForQuery(status: 'I' | 'T' | 'E'): Buffer {
    const out = Buffer.allocUnsafe(6);
    out[0] = 0x5a; // 'Z'
    out.writeInt32BE(5, 1);
    out[5] = status.charCodeAt(0);
    return out;
  },
};

/** Decodes the fields of an ErrorResponse/NoticeResponse body (after the 5-byte header). */
export function parseErrorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const code = String.fromCharCode(body[pos]!);
    const end = body.indexOf(0, pos + 1);
    if (end < 0) break;
    fields[code] = body.toString('utf8', pos + 1, end);
    pos = end + 1;
  }
  return fields;
}
