/**
 * `make demo` runs the scripted session; CI runs it non-interactively and
 * checks what a person would see: a masked read, refusals, a forged token
 * refused, and a session record.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('make demo', () => {
  it('plays the scripted AI-agent session end to end', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'deploy/demo/run.ts'], {
      env: { ...process.env, WARDEN_DEMO_EXIT: '1', WARDEN_DEMO_PORT: '0' },
      timeout: 60_000,
    });
    expect(stdout).toMatch(/tok_[0-9a-f]{24}  \[REDACTED\]  \[REDACTED\]  \[REDACTED\]  \d{4}  \d{3}\*\*/);
    expect(stdout).toMatch(/42501 table warden_demo\.clinical_notes is not permitted/);
    expect(stdout).toMatch(/28P01 token signature is invalid/);
    expect(stdout).toMatch(/statement {2}mask {2}SELECT 3/);
  }, 90_000);
});
