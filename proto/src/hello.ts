/**
 * The bytes an agent signs to answer a Connect Challenge (see Hello.signature
 * in agent_service.proto): "warden.v1.Hello" 0x00 agent_id 0x00 nonce.
 * Both sides build them here so they cannot drift apart.
 */
const CONTEXT = 'warden.v1.Hello';

export function helloSignedBytes(agentId: string, nonce: Uint8Array): Uint8Array {
  if (agentId.length === 0 || agentId.includes('\0')) {
    throw new TypeError('agent id must be non-empty and contain no NUL');
  }
  if (nonce.length < 32) {
    throw new TypeError('challenge nonce must be at least 32 bytes');
  }
  const prefix = new TextEncoder().encode(`${CONTEXT}\0${agentId}\0`);
  const out = new Uint8Array(prefix.length + nonce.length);
  out.set(prefix, 0);
  out.set(nonce, prefix.length);
  return out;
}
