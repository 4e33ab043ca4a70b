import { toBinary } from '@bufbuild/protobuf';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { describe, expect, it } from 'vitest';
import { AuditEventSchema } from '../../../proto/src/index.js';
import { encodeStatement } from './encode-statement.js';
import { toAuditEvent } from './to-proto.js';
import { full, http, minimal } from '../../../test/support/statement-events.js';

describe('encodeStatement', () => {
  it('writes exactly the bytes toBinary(toAuditEvent(e)) gives, for minimal, full and HTTP statements', () => {
    const w = new BinaryWriter();
    for (const e of [minimal, full, http]) {
      encodeStatement(w, e, e.seq);
      expect(Buffer.from(w.finish()).toString('hex')).toBe(Buffer.from(toBinary(AuditEventSchema, toAuditEvent(e, e.seq))).toString('hex'));
    }
  });
});
