/**
 * `make demo` runs the whole stack on embedded defaults and a scripted
 * session; CI runs it non-interactively and checks what a person would see:
 * a masked read, refusals, a forged token refused, a query held and
 * approved through the CLI, and the audit chain verified.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('make demo', () => {
  it('plays the scripted AI-agent session end to end on embedded defaults', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'deploy/demo/run.ts'], {
      env: { ...process.env, WARDEN_DEMO_EXIT: '1', WARDEN_DEMO_PORT: '0' },
      timeout: 120_000,
    });
    // Masked on the wire: tokenised MRN, redacted names, partial SSN, year of birth, ZIP3.
    expect(stdout).toMatch(/^ {3}1 {2}mrn_[0-9a-f]{24} {2}\[REDACTED\] {2}\[REDACTED\] {2}\*{7}\d{4} {2}\d{4} {2}\d{3}\*\* {2}[FMU]$/m);
    expect(stdout).toMatch(/42501 column clinic\.billing\.insurer is not permitted for role "clinical-analytics"/);
    expect(stdout).toMatch(/42501 column clinic\.patients\.ssn is masked/);
    expect(stdout).toMatch(/refused: 28P01 token signature is invalid/);
    expect(stdout).toMatch(/NOTICE: Warden: this statement needs approval \(rule care-contact-unmask\); request (\S+) is waiting/);
    expect(stdout).toMatch(/recorded your approve; request \S+ is approved \(1 vote\)/);
    expect(stdout).toMatch(/released: 7 {2}\w+ {2}\(\d{3}\) \d{3}-\d{4}$/m);
    expect(stdout).toMatch(/\d+ records, chain verified/);
    expect(stdout).toMatch(/2 identities touched PHI in 4 statements; \d+ values masked, \d+ unmasked; 2 refused; 1 approvals; audit chain verified/);
    expect(stdout).toMatch(/evidence-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.html$/m);
    expect(stdout).not.toMatch(/UNEXPECTED/);
  }, 150_000);
});
