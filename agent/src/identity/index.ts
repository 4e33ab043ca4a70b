/** Public API of the identity module: token verification and role mapping. */
export { AuthError, type AuthReason, type AuthSqlState } from './errors.js';
export {
  TokenVerifier,
  SUPPORTED_ALGORITHMS,
  type TokenVerifierOptions,
  type VerifiedIdentity,
} from './token-verifier.js';
export { resolveRole } from './role-mapping.js';
export { authorizeToken, type AuthContext, type Authenticated } from './authorize.js';
