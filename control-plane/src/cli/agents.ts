/** `warden agents list`: enrolled agents as the control plane sees them. */
import { call, failed, type ApiTarget } from './api-client.js';

type Out = NodeJS.WritableStream;

export async function agentsList(t: ApiTarget, json: boolean, out: Out): Promise<number> {
  const r = await call(t, 'GET', '/v1/agents');
  if (r.status !== 200) return failed(r, out);
  const agents = r.json.agents as Array<{ id: string; name: string; connected: boolean; appliedVersion?: string; lastSeenAt?: string }>;
  if (json) out.write(JSON.stringify(agents, null, 2) + '\n');
  else for (const a of agents) out.write(`${a.id}  ${a.name.padEnd(20)}  ${a.connected ? 'connected   ' : 'disconnected'}  ${a.appliedVersion?.slice(0, 12) ?? '-'}  last seen ${a.lastSeenAt ?? 'never'}\n`);
  return 0;
}
