/**
 * The policy the enforcement tests run under, written in the agent's
 * single-file form (roles, classification, masking — the config
 * repository's Role/Classification/MaskingStrategy specs) for a PHI
 * schema of the test's choosing.
 */
import type { RoleConfig } from '../../agent/src/config/types.js';

export const GROUPS = {
  analytics: 'ai-clinical-analytics',
  billing: 'ai-billing',
  care: 'ai-care-coordination',
  dba: 'oncall-dba',
} as const;

export const HASH_KEY_ENV = 'WARDEN_TEST_HASH_KEY';
process.env[HASH_KEY_ENV] ??= 'test-hash-key-0123456789abcdef';

export function hospitalPolicy(schema: string, target = 'clinical') {
  const s = schema;
  const roles: RoleConfig[] = [
    {
      name: 'clinical-analytics',
      description: 'de-identified reads for an analytics AI agent',
      targets: [target],
      statementKinds: ['select', 'transaction', 'session'],
      maxRows: 50,
      tables: [
        {
          table: `${s}.patients`,
          defaultAction: 'allow',
          columns: [
            { column: 'mrn', action: 'mask', mask: { strategy: 'patient-token' } },
            { column: 'dob', action: 'mask' },
            { column: 'zip', action: 'mask' },
            { phiClass: 'direct-identifier', action: 'mask', mask: { strategy: 'redact' } },
            { phiClass: 'quasi-identifier', action: 'mask', mask: { strategy: 'redact' } },
          ],
        },
        { table: `${s}.patient_summary`, defaultAction: 'allow', columns: [
          { column: 'first_name', action: 'mask', mask: { strategy: 'redact' } },
          { column: 'last_name', action: 'mask', mask: { strategy: 'redact' } },
          { column: 'dob', action: 'mask', mask: { strategy: 'generalize-date' } },
          { column: 'zip', action: 'mask', mask: { strategy: 'generalize-zip' } },
        ] },
        { table: `${s}.deidentified_patients`, defaultAction: 'allow' },
        // Views the DBA adds later are readable; their columns resolve to (and are masked as) the base columns.
        { table: `${s}.*_view`, defaultAction: 'allow' },
        { table: `${s}.encounters`, defaultAction: 'allow' },
        { table: `${s}.diagnoses`, defaultAction: 'allow' },
      ],
    },
    {
      name: 'billing',
      targets: [target],
      unknownOrigin: 'redact',
      statementKinds: ['select', 'update', 'transaction', 'session'],
      maxRows: 500,
      tables: [
        { table: `${s}.billing`, defaultAction: 'allow', columns: [{ column: 'member_id', action: 'mask', mask: { strategy: 'patient-token' } }] },
        { table: `${s}.encounters`, defaultAction: 'allow', columns: [{ column: 'reason', action: 'deny' }] },
        {
          table: `${s}.patients`,
          defaultAction: 'deny',
          columns: [
            { column: 'id', action: 'allow' },
            { column: 'mrn', action: 'mask', mask: { strategy: 'patient-token' } },
            { column: 'last_name', action: 'mask', mask: { strategy: 'partial', params: { keepSuffix: 2 } } },
          ],
        },
      ],
    },
    {
      name: 'care-coordination',
      targets: [target],
      statementKinds: ['select', 'transaction', 'session'],
      tables: [
        {
          table: `${s}.patients`,
          defaultAction: 'allow',
          columns: [
            { column: 'ssn', action: 'mask', mask: { strategy: 'ssn-last4' } },
            { column: 'email', action: 'mask', mask: { strategy: 'email-domain' } },
            { phiClass: 'direct-identifier', action: 'allow' },
            { phiClass: 'quasi-identifier', action: 'allow' },
          ],
        },
        { table: `${s}.clinical_notes`, defaultAction: 'allow', columns: [{ column: 'body', action: 'mask', mask: { strategy: 'detect' } }] },
      ],
    },
    {
      name: 'oncall-dba',
      targets: [target],
      statementKinds: ['select', 'ddl', 'maintenance', 'explain', 'transaction', 'session'],
      maxRows: 100,
      tables: [
        { table: `${s}.*`, defaultAction: 'deny' },
        { table: 'pg_catalog.*', defaultAction: 'allow' },
        { table: 'information_schema.*', defaultAction: 'allow' },
      ],
    },
  ];
  const classification = [
    { pattern: `${s}.patients.mrn`, phiClass: 'direct-identifier', defaultMask: { strategy: 'patient-token' } },
    { pattern: `${s}.patients.first_name`, phiClass: 'direct-identifier', defaultMask: { strategy: 'redact' } },
    { pattern: `${s}.patients.last_name`, phiClass: 'direct-identifier', defaultMask: { strategy: 'redact' } },
    { pattern: `${s}.patients.ssn`, phiClass: 'direct-identifier', defaultMask: { strategy: 'redact' } },
    { pattern: `${s}.patients.phone`, phiClass: 'direct-identifier', defaultMask: { strategy: 'partial' } },
    { pattern: `${s}.patients.email`, phiClass: 'direct-identifier', defaultMask: { strategy: 'email-domain' } },
    { pattern: `${s}.patients.address_line`, phiClass: 'direct-identifier', defaultMask: { strategy: 'redact' } },
    { pattern: `${s}.patients.dob`, phiClass: 'quasi-identifier', defaultMask: { strategy: 'generalize-date' } },
    { pattern: `${s}.patients.zip`, phiClass: 'quasi-identifier', defaultMask: { strategy: 'generalize-zip' } },
    { pattern: `${s}.patients.city`, phiClass: 'quasi-identifier', defaultMask: { strategy: 'redact' } },
    { pattern: `${s}.clinical_notes.body`, phiClass: 'free-text', defaultMask: { strategy: 'detect' } },
    { pattern: `${s}.billing.member_id`, phiClass: 'financial', defaultMask: { strategy: 'patient-token' } },
  ];
  const masking = [
    { name: 'patient-token', hash: { keyRef: `env:${HASH_KEY_ENV}`, outputChars: 24, prefix: 'tok_' } },
    { name: 'ssn-last4', partial: { keepSuffix: 4, maskChar: '#' } },
  ];
  const groupMappings = [
    { group: GROUPS.analytics, role: 'clinical-analytics' },
    { group: GROUPS.billing, role: 'billing' },
    { group: GROUPS.care, role: 'care-coordination' },
    { group: GROUPS.dba, role: 'oncall-dba' },
  ];
  return { roles, classification, masking, groupMappings };
}
