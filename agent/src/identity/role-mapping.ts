/**
 * Maps a verified identity to the single Warden role it acts as. Exactly one:
 * with two, which policy applies would depend on mapping order, and an
 * operator reading the audit log could not tell what the agent was allowed.
 */
import type { GroupMapping } from '../config/types.js';
import { AuthError, quote, quoteList } from './errors.js';
import type { VerifiedIdentity } from './token-verifier.js';

export function resolveRole(identity: VerifiedIdentity, mappings: GroupMapping[]): string {
  const groups = new Set(identity.groups);
  // role -> the token's groups that led to it, to name them in a refusal
  const via = new Map<string, string[]>();
  for (const { group, role } of mappings) {
    if (!groups.has(group)) continue;
    const list = via.get(role) ?? [];
    if (!list.includes(group)) list.push(group);
    via.set(role, list);
  }

  if (via.size === 0) {
    const had = identity.groups.length === 0 ? 'carries no groups' : `has groups ${quoteList(identity.groups)}`;
    throw new AuthError(
      `no Warden role for ${quote(identity.subject)}: the token ${had} and no group mapping exists for any of them; ask an administrator to map one of your groups to a role`,
      '28000',
      'no_role',
    );
  }
  if (via.size > 1) {
    const roles = [...via].map(([role, gs]) => `${quote(role)} (via ${gs.map((g) => quote(g)).join(', ')})`);
    throw new AuthError(
      `ambiguous role for ${quote(identity.subject)}: the token's groups map to more than one role: ${roles.join(', ')}; a connection must resolve to exactly one role, so use an identity whose groups map to one, or ask an administrator to fix the mappings`,
      '28000',
      'ambiguous_role',
    );
  }
  return [...via.keys()][0]!;
}
