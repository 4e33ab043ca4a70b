/**
 * Evidence for auditors, from a real run: the demo stack (PGlite patient
 * database, embedded control plane, managed agent), real sessions through
 * the agent, then `warden evidence export` — JSON numbers checked against
 * what the clients did and against the audit log, and the HTML opened in a
 * real headless Chromium, its numbers read off the page and compared.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import pg from 'pg';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoStack, SCHEMA, type DemoStack } from '../../deploy/demo/stack.js';
import { removeTemps, tempDir } from '../../control-plane/src/gitops/test-support.js';
import type { EvidenceReport } from '../../control-plane/src/evidence/report.js';

const CHROMIUM = process.env.WARDEN_TEST_CHROMIUM ?? '/usr/bin/chromium';
let stack: DemoStack;
let outDir: string;
let report: EvidenceReport;
let cliOut: string;

function warden(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, ['--import', 'tsx', 'control-plane/src/cli/warden.ts', ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

beforeAll(async () => {
  stack = await startDemoStack({ port: 0, patients: 40 });
  const connect = async (sub: string, group: string): Promise<pg.Client> => {
    const c = new pg.Client({ host: '127.0.0.1', port: stack.port, database: 'clinical', user: sub, password: await stack.issuer.sign({ sub, groups: [group] }) });
    c.on('notice', () => undefined);
    await c.connect();
    return c;
  };
  // Analytics: two masked reads of 3 rows x 2 masked columns, one refusal.
  const a = await connect('analytics-bot', 'ai-clinical-analytics');
  await a.query(`SELECT mrn, dob FROM ${SCHEMA}.patients ORDER BY id LIMIT 3`);
  await a.query(`SELECT id, mrn FROM ${SCHEMA}.patients ORDER BY id LIMIT 3`);
  await a.query(`SELECT insurer FROM ${SCHEMA}.billing`).catch(() => undefined);
  await a.end();
  // Care coordination: a held read approved by a charge nurse.
  const c = await connect('care-bot', 'care-coordinators');
  const held = c.query(`SELECT phone FROM ${SCHEMA}.patients WHERE id = 2`);
  const nurse = await stack.issuer.sign({ sub: 'nurse-1', groups: ['charge-nurses'] }, { audience: 'warden-api' });
  let id: string | undefined;
  for (let i = 0; i < 300 && !id; i++) {
    const res = await fetch(`http://127.0.0.1:${stack.cp.port}/v1/approvals?state=pending`, { headers: { authorization: `Bearer ${nurse}` } });
    id = ((await res.json()) as { approvals: Array<{ id: string }> }).approvals[0]?.id;
    if (!id) await new Promise((r) => setTimeout(r, 20));
  }
  await fetch(`http://127.0.0.1:${stack.cp.port}/v1/approvals/${id}/decision`, {
    method: 'POST',
    headers: { authorization: `Bearer ${nurse}`, 'content-type': 'application/json' },
    body: '{"decision":"approve"}',
  });
  await held;
  await c.end();
  // Wait until the agent's events are in the control plane's chain (4 sessions' worth).
  for (let i = 0; i < 200; i++) {
    if ((await stack.cp.audit.size()) >= 9) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  outDir = await tempDir('warden-evidence-');
  const day = new Date().toISOString().slice(0, 10);
  const r = await warden(['evidence', 'export', '--from', day, '--to', day, '--out', outDir, '--api', `http://127.0.0.1:${stack.cp.port}`, '--token', 'env:WARDEN_TEST_AUDITOR'], {
    WARDEN_TEST_AUDITOR: await stack.issuer.sign({ sub: 'auditor-1', groups: ['compliance'] }, { audience: 'warden-api' }),
  });
  cliOut = r.stdout + r.stderr;
  expect(r.code, cliOut).toBe(0);
  report = JSON.parse(fs.readFileSync(fs.readdirSync(outDir).map((f) => path.join(outDir, f)).find((f) => f.endsWith('.json'))!, 'utf8')) as EvidenceReport;
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await removeTemps();
});

describe('evidence export', () => {
  it('counts what the AI agents did: PHI touched, values masked and unmasked, refusals, approvals with verified signatures', () => {
    const analytics = report.identities.find((i) => i.subject === 'analytics-bot')!;
    expect(analytics).toMatchObject({ roles: ['clinical-analytics'], sessions: 1, statements: 3, phiStatements: 3, denials: 1, valuesMasked: 9, valuesReturned: 12, valuesUnmasked: 3 });
    expect(analytics.columns.filter((c) => c.phi).map((c) => c.column)).toEqual([`${SCHEMA}.billing.insurer`, `${SCHEMA}.patients.dob`, `${SCHEMA}.patients.mrn`]);
    const care = report.identities.find((i) => i.subject === 'care-bot')!;
    expect(care).toMatchObject({ statements: 1, approvedStatements: 1, valuesUnmasked: 1, valuesMasked: 0 });
    expect(report.denials).toEqual([expect.objectContaining({ subject: 'analytics-bot', ruleIds: expect.arrayContaining([expect.stringContaining('clinical-analytics')]) })]);
    expect(report.approvals).toEqual([expect.objectContaining({ state: 'approved', ruleId: 'care-contact-unmask', requester: 'care-bot', signature: 'valid' })]);
    expect(report.summary).toMatchObject({ phiIdentities: 2, statements: 4, denials: 1, approvals: { total: 1, approved: 1, signaturesValid: 1, signaturesInvalid: 0 } });
    expect(report.policyVersions).toEqual([expect.objectContaining({ version: stack.cp.watcher.current!.sha, message: 'hospital access policy', agents: [stack.agent.agentId] })]);
    expect(report.auditChain).toMatchObject({ ok: true });
    // Two sessions: start, statements, the approval evidence, end.
    expect(report.auditChain.records).toBe(9);
    expect(report.accessOverTime).toEqual([{ day: new Date().toISOString().slice(0, 10), phiStatements: 4, valuesReturned: 13 }]);
    expect(cliOut).toMatch(/2 identities touched PHI in 4 statements; 9 values masked, 4 unmasked; 1 refused; 1 approvals; audit chain verified/);
  });

  it('lists the agents that enforce the policy (warden agents list)', async () => {
    const r = await warden(['agents', 'list', '--api', `http://127.0.0.1:${stack.cp.port}`, '--token', 'env:WARDEN_TEST_AUDITOR', '--json'], {
      WARDEN_TEST_AUDITOR: await stack.issuer.sign({ sub: 'auditor-1', groups: ['compliance'] }, { audience: 'warden-api' }),
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([expect.objectContaining({ id: stack.agent.agentId, name: 'demo-agent', connected: true, appliedVersion: stack.cp.watcher.current!.sha })]);
  });

  it('agrees with the audit log itself', async () => {
    let statements = 0;
    let denied = 0;
    let masked = 0;
    for await (const batch of stack.cp.audit.scan(500)) {
      for (const row of batch) {
        const st = (JSON.parse(row.payload) as { statement?: { decision?: string; maskedValues?: string } }).statement;
        if (!st) continue;
        statements++;
        if (st.decision === 'STATEMENT_DECISION_DENY') denied++;
        masked += Number(st.maskedValues ?? 0);
      }
    }
    expect(report.summary).toMatchObject({ statements, denials: denied, valuesMasked: masked });
  });

  it('writes one CSV per section', () => {
    const files = fs.readdirSync(outDir).filter((f) => f.endsWith('.csv')).map((f) => f.replace(/^evidence-[\d-]+-/, ''));
    expect(files.sort()).toEqual(['access_over_time.csv', 'approvals.csv', 'columns.csv', 'denials.csv', 'identities.csv', 'policy_versions.csv', 'sessions.csv', 'summary.csv']);
    const summary = fs.readFileSync(path.join(outDir, fs.readdirSync(outDir).find((f) => f.endsWith('-summary.csv'))!), 'utf8');
    expect(summary).toContain('values_masked,9\r\n');
  });

  it('renders the HTML in a real browser with the same numbers as the JSON', async () => {
    const html = path.join(outDir, fs.readdirSync(outDir).find((f) => f.endsWith('.html'))!);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`file://${html}`);
      expect(await page.title()).toMatch(/^Warden evidence report/);
      const shown = await page.$$eval('[data-k]', (els) => els.map((e) => [e.getAttribute('data-k')!, e.textContent!.trim()] as [string, string]));
      expect(shown.length).toBeGreaterThan(20);
      const lookup = (k: string): unknown => k.split('.').reduce<unknown>((o, part) => (o as Record<string, unknown>)[part], report);
      for (const [k, text] of shown) {
        const v = lookup(k);
        if (k === 'auditChain.ok') expect(text).toBe(v ? 'verified' : 'FAILED');
        else expect(text.replace(/,/g, ''), k).toBe(String(v));
      }
      expect(await page.locator('svg[aria-label="PHI statements per day"] rect').count()).toBe(1);
      const pdf = await page.pdf({ format: 'A4' });
      expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
