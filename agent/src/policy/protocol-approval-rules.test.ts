import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ApprovalMatchSchema, PolicyBundleSchema, StatementKind, type PolicyBundle } from '../../../proto/src/index.js';
import { ProtocolApprovalRules } from './approval-rules.js';

function rules(...match: Array<MessageInitShape<typeof ApprovalMatchSchema> & { id: string }>): PolicyBundle {
  return create(PolicyBundleSchema, { approvalRules: match.map(({ id, ...m }) => ({ id, match: m, approverGroups: ['x'] })) });
}

const now = new Date('2024-05-01T12:00:00Z');

describe('approval rules for HTTP and SSH', () => {
  const bundle = rules(
    { id: 'sql-only', tables: ['clinic.*'] },
    { id: 'deletes', targets: ['api'], httpRoutes: ['^DELETE /api/'] },
    { id: 'rm', sshCommands: ['^rm ', 'shutdown'], roles: ['ops'] },
    { id: 'shells', targets: ['lab'], sshShell: true },
    { id: 'everything-for-interns', roles: ['intern'] },
    { id: 'kinds', statementKinds: [StatementKind.DELETE] },
  );

  it('holds what a rule names, on the targets and roles it names', () => {
    const api = new ProtocolApprovalRules(bundle, 'api');
    expect(api.holding('ops', { http: 'DELETE /api/patients/1' }, now)?.id).toBe('deletes');
    expect(api.holding('ops', { http: 'GET /api/patients/1' }, now)).toBeUndefined();
    const lab = new ProtocolApprovalRules(bundle, 'lab');
    expect(lab.holding('ops', { http: 'DELETE /api/patients/1' }, now)).toBeUndefined();
    expect(lab.holding('ops', { sshExec: 'rm -rf /data' }, now)?.id).toBe('rm');
    expect(lab.holding('ops', { sshExec: 'sudo shutdown -h now' }, now)?.id).toBe('rm');
    expect(lab.holding('dev', { sshExec: 'rm -rf /data' }, now)).toBeUndefined();
    expect(lab.holding('dev', { sshShell: true }, now)?.id).toBe('shells');
    expect(api.holding('dev', { sshShell: true }, now)).toBeUndefined();
  });

  it('lets a rule without statement conditions hold everything of its roles, and never applies SQL-only rules', () => {
    const api = new ProtocolApprovalRules(bundle, 'api');
    expect(api.holding('intern', { http: 'GET /api/anything' }, now)?.id).toBe('everything-for-interns');
    expect(api.holding('intern', { sshExec: 'ls' }, now)?.id).toBe('everything-for-interns');
    expect(api.holding('ops', { http: 'GET /clinic' }, now)).toBeUndefined();
  });
});
