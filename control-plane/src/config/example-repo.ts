/**
 * A complete config repository for a hospital, as path → file text. The
 * tests compile it, and it doubles as a worked example of every kind, so
 * it is kept realistic rather than minimal.
 */
export const HOSPITAL_REPO: Readonly<Record<string, string>> = {
  'targets.yaml': `# Upstream databases
apiVersion: warden.dev/v1
kind: Target
spec:
  name: clinical
  description: Clinical data warehouse
  postgres:
    host: db.clinical.internal
    port: 5432
    database: clinical
    user: warden_agent
    passwordRef: env:WARDEN_CLINICAL_PASSWORD
    tls: { mode: verify-full, caFile: /etc/warden/db-ca.crt }
---
apiVersion: warden.dev/v1
kind: Target
spec:
  name: clinical-dev
  postgres: { host: 127.0.0.1, port: 5433, database: clinical_dev, user: postgres }
`,
  'listeners.yaml': `apiVersion: warden.dev/v1
kind: Listener
spec:
  name: clinical-pg
  target: clinical
  address: 0.0.0.0
  port: 6432
  agentSelector: { site: east }
  postgres:
    tls: { certFile: /etc/warden/tls.crt, keyFile: /etc/warden/tls.key }
---
apiVersion: warden.dev/v1
kind: Listener
spec:
  name: dev-pg
  target: clinical-dev
  address: 127.0.0.1
  port: 6433
  postgres: { allowPlaintext: true, maxMessageBytes: 1048576 }
`,
  'identity.yaml': `apiVersion: warden.dev/v1
kind: Identity
spec:
  issuers:
    - issuer: https://idp.example.org/realms/hospital
      audience: warden
      algorithms: [RS256, ES256]
    - issuer: https://login.partner.example
      audiences: [warden-api, warden]
      groupsClaim: realm_access.roles
      clockSkewSeconds: 60
      jwksUri: https://login.partner.example/keys
  groupMappings:
    - { group: ai-clinical-analytics, role: clinical-analytics }
    - { group: billing-team, role: billing }
    - { group: care-coordinators, role: care-coordination, issuer: https://idp.example.org/realms/hospital }
    - { group: dba-oncall, role: oncall-dba }
`,
  'classification/clinic.yaml': `apiVersion: warden.dev/v1
kind: Classification
spec:
  rules:
    - { pattern: clinic.patients.mrn, phiClass: direct-identifier, tags: ["hipaa:mrn"], defaultMask: { strategy: hash-mrn } }
    - { pattern: clinic.patients.first_name, phiClass: direct-identifier, defaultMask: { strategy: redact } }
    - { pattern: clinic.patients.last_name, phiClass: direct-identifier, defaultMask: { strategy: redact } }
    - { pattern: clinic.patients.ssn, phiClass: direct-identifier, tags: ["hipaa:ssn"], defaultMask: { strategy: partial } }
    - { pattern: clinic.patients.dob, phiClass: quasi-identifier, defaultMask: { strategy: generalize-date } }
    - { pattern: clinic.patients.zip, phiClass: quasi-identifier, defaultMask: { strategy: generalize-zip } }
    - { pattern: clinic.patients.phone, phiClass: direct-identifier, defaultMask: { strategy: partial, params: { keepSuffix: 2 } } }
    - { pattern: clinic.patients.email, phiClass: direct-identifier, defaultMask: { strategy: email-domain } }
    - { pattern: clinic.patients.address_line, phiClass: direct-identifier, defaultMask: { strategy: redact } }
---
apiVersion: warden.dev/v1
kind: Classification
spec:
  rules:
    - id: notes-body
      pattern: clinic.clinical_notes.body
      phiClass: free-text
      tags: ["42cfr2"]
      defaultMask: { strategy: detect }
    - { pattern: clinic.billing.member_id, phiClass: financial, defaultMask: { strategy: hash-mrn, params: { prefix: "mem_" } } }
    - { pattern: clinic.billing.insurer, phiClass: financial, defaultMask: { strategy: redact } }
`,
  'classification/zz-reviewed.yaml': `# Columns reviewed and found not to be PHI
apiVersion: warden.dev/v1
kind: Classification
spec:
  rules:
    - { pattern: "clinic.*.id", phiClass: none }
    - { pattern: "clinic.*.created_at", phiClass: none }
`,
  'masking.yaml': `apiVersion: warden.dev/v1
kind: MaskingStrategy
spec:
  name: hash-mrn
  description: Keyed hash so records still join
  hash: { keyRef: env:WARDEN_HASH_KEY, outputChars: 24, prefix: "mrn_" }
---
apiVersion: warden.dev/v1
kind: MaskingStrategy
spec:
  name: notes-detect
  detect:
    detectors: [ssn, phone, email, mrn]
    replacement: "[PHI]"
---
apiVersion: warden.dev/v1
kind: MaskingStrategy
spec:
  name: ssn-last4
  partial: { keepSuffix: 4, maskChar: "#" }
`,
  'roles/clinical-analytics.yaml': `apiVersion: warden.dev/v1
kind: Role
spec:
  name: clinical-analytics
  description: De-identified analytics for AI agents
  targets: [clinical]
  maxRows: 10000
  tables:
    - table: clinic.patients
      defaultAction: allow
      columns:
        - { phiClass: direct-identifier, action: mask }
        - { column: dob, action: mask }
        - { column: zip, action: mask }
    - table: clinic.clinical_notes
      defaultAction: allow
      columns:
        - { column: body, action: mask, mask: { strategy: notes-detect } }
    - table: clinic.billing
      defaultAction: deny
`,
  'roles/billing.yaml': `apiVersion: warden.dev/v1
kind: Role
spec:
  name: billing
  targets: [clinical]
  statementKinds: [select, update, transaction, session]
  maxRows: 500
  rowLimitAction: error
  tables:
    - table: clinic.billing
      defaultAction: allow
      columns:
        - { column: member_id, action: mask }
        - { column: insurer, action: allow }
    - id: billing-patients
      table: clinic.patients
      columns:
        - { column: mrn, action: allow }
        - { id: billing-last-name, column: last_name, action: mask, mask: { strategy: partial, params: { keepSuffix: 2, maskChar: "x" } } }
`,
  'roles/care-coordination.yaml': `apiVersion: warden.dev/v1
kind: Role
spec:
  name: care-coordination
  targets: [clinical]
  statementKinds: [select, insert, update, transaction, session]
  defaultAction: deny
  tables:
    - table: clinic.patients
      defaultAction: allow
      columns:
        - { column: ssn, action: mask, mask: { strategy: ssn-last4 } }
        - { phiClass: direct-identifier, action: allow }
        - { phiClass: quasi-identifier, action: allow }
    - table: clinic.clinical_notes
      defaultAction: allow
      columns:
        - { column: body, action: allow }
`,
  'roles/oncall-dba.yaml': `apiVersion: warden.dev/v1
kind: Role
spec:
  name: oncall-dba
  targets: [clinical, clinical-dev]
  statementKinds: [select, ddl, maintenance, explain, transaction, session]
  maxRows: 100
  tables:
    - { table: "clinic.*", defaultAction: deny }
    - { table: "pg_catalog.*", defaultAction: allow }
    - { table: "information_schema.*", defaultAction: allow }
`,
  'approvals.yaml': `apiVersion: warden.dev/v1
kind: ApprovalRule
spec:
  id: bulk-export
  description: Analytics pulls above the row limit need the privacy office
  match: { roles: [clinical-analytics], rowLimitExceeded: true }
  approverGroups: [privacy-office]
  timeout: 10m
---
apiVersion: warden.dev/v1
kind: ApprovalRule
spec:
  id: dba-ddl-after-hours
  match:
    roles: [oncall-dba]
    ddl: true
    time:
      windows:
        - { days: [mon, tue, wed, thu, fri], start: "08:00", end: "18:00", timeZone: America/New_York }
      outside: true
  approverGroups: [dba-leads, platform-leads]
  quorum: 2
  scope: grant
  grantDuration: 1h
---
apiVersion: warden.dev/v1
kind: ApprovalRule
spec:
  id: billing-unbounded-write
  match: { roles: [billing], statementKinds: [update], writeWithoutWhere: true, phiClasses: [financial] }
  approverGroups: [billing-leads]
`,
  'tests/analytics.yaml': `apiVersion: warden.dev/v1
kind: PolicyTest
spec:
  name: analytics sees hashed MRNs
  identity: { subject: bot-1, groups: [ai-clinical-analytics] }
  target: clinical
  sql: SELECT mrn, dob FROM clinic.patients
  expect: { decision: mask, maskedColumns: [mrn, dob] }
---
apiVersion: warden.dev/v1
kind: PolicyTest
spec:
  name: analytics cannot read billing
  identity: { subject: bot-1, groups: [ai-clinical-analytics] }
  target: clinical
  sql: SELECT insurer FROM clinic.billing
  expect: { decision: deny, deniedMatches: "clinic\\\\.billing" }
`,
  'README.md': '# not config\n',
};
