/**
 * Readers for the frontend messages the agent inspects, and the one it
 * rewrites (Parse/Query substitution on refusal). Offsets follow the
 * protocol v3 layouts; every read is bounds-checked by Buffer itself.
 */

export function cstring(buf: Buffer, start: number): [string, number] {
  const end = cstringEnd(buf, start);
  // Unnamed statements and portals are the common case: no call into C++ to decode nothing.
  return [end === start ? '' : buf.toString('utf8', start, end), end + 1];
}

/** Where the string at `start` ends (its NUL); for strings that are skipped, not read. */
function cstringEnd(buf: Buffer, start: number): number {
  const end = buf.indexOf(0, start);
  if (end < 0) throw new Error('unterminated string in message');
  return end;
}

export interface ParseMessage {
  name: string;
  text: string;
  /** Parameter types the client declared (0 = let the server infer). */
  paramTypes: number[];
}

export function readParse(frame: Buffer): ParseMessage {
  const [name, next] = cstring(frame, 5);
  const [text, after] = cstring(frame, next);
  const paramTypes: number[] = [];
  const n = after + 2 <= frame.length ? frame.readInt16BE(after) : 0;
  for (let i = 0; i < n; i++) paramTypes.push(frame.readUInt32BE(after + 2 + 4 * i));
  return { name, text, paramTypes };
}

export interface BindMessage {
  portal: string;
  statement: string;
  /** Result column format codes as sent: [] = all text, [f] = all f, else per column. */
  resultFormats: number[];
}

export function readBind(frame: Buffer): BindMessage {
  const [portal, p1] = cstring(frame, 5);
  const [statement, p2] = cstring(frame, p1);
  let pos = p2;
  const nParamFormats = frame.readInt16BE(pos);
  pos += 2 + 2 * nParamFormats;
  const nParams = frame.readInt16BE(pos);
  pos += 2;
  for (let i = 0; i < nParams; i++) {
    const len = frame.readInt32BE(pos);
    pos += 4 + (len > 0 ? len : 0);
  }
  const nResult = frame.readInt16BE(pos);
  pos += 2;
  const resultFormats: number[] = [];
  for (let i = 0; i < nResult; i++) resultFormats.push(frame.readInt16BE(pos + 2 * i));
  return { portal, statement, resultFormats };
}

/** A Bind's parameter values (null for SQL NULL) with their format codes, as sent. Read only when needed. */
export function readBindValues(frame: Buffer): { values: Array<Buffer | null>; formats: number[] } {
  // The portal and statement names are skipped: readBind has them.
  let pos = cstringEnd(frame, cstringEnd(frame, 5) + 1) + 1;
  const nFormats = frame.readInt16BE(pos);
  const formats: number[] = [];
  for (let i = 0; i < nFormats; i++) formats.push(frame.readInt16BE(pos + 2 + 2 * i));
  pos += 2 + 2 * nFormats;
  const n = frame.readInt16BE(pos);
  pos += 2;
  const values: Array<Buffer | null> = [];
  for (let i = 0; i < n; i++) {
    const len = frame.readInt32BE(pos);
    pos += 4;
    if (len < 0) values.push(null);
    else {
      values.push(frame.subarray(pos, pos + len));
      pos += len;
    }
  }
  return { values, formats };
}

export function formatOf(formats: number[], column: number): number {
  if (formats.length === 0) return 0;
  if (formats.length === 1) return formats[0]!;
  return formats[column] ?? 0;
}

/** Parse message for `name` with new text and no parameter types. */
export function buildParse(name: string, text: string): Buffer {
  const body = Buffer.from(`${name}\0${text}\0`, 'utf8');
  const out = Buffer.alloc(5 + body.length + 2);
  out[0] = 0x50;
  out.writeInt32BE(out.length - 1, 1);
  body.copy(out, 5);
  out.writeInt16BE(0, 5 + body.length);
  return out;
}

/** A message whose body is one NUL-terminated string (Query, CommandComplete). */
export function cstringFrame(type: number, text: string): Buffer {
  const body = Buffer.from(text + '\0', 'utf8');
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

export const buildQuery = (text: string): Buffer => cstringFrame(0x51, text);

/** Rewrites Execute's row limit (0 = all). */
export function buildExecute(portal: string, maxRows: number): Buffer {
  const body = Buffer.from(portal + '\0', 'utf8');
  const out = Buffer.allocUnsafe(5 + body.length + 4);
  out[0] = 0x45;
  out.writeInt32BE(out.length - 1, 1);
  body.copy(out, 5);
  out.writeInt32BE(maxRows, 5 + body.length);
  return out;
}

export function readExecute(frame: Buffer): { portal: string; maxRows: number } {
  const [portal, next] = cstring(frame, 5);
  return { portal, maxRows: frame.readInt32BE(next) };
}
