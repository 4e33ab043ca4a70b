/**
 * The interface every protocol engine (postgres today; ssh and http later)
 * implements, so the agent's wiring treats them alike.
 */
export interface ProtocolEngine {
  readonly protocol: string;
  readonly name: string;
  readonly activeSessions: number;
  /** Binds the listener; resolves with the bound address (port 0 picks a free one). */
  start(): Promise<{ address: string; port: number }>;
  /**
   * Stops accepting and ends live sessions (each records why it ended): statements in flight may
   * finish for up to `graceMs` (default 0), then the client is told the agent is shutting down.
   */
  stop(graceMs?: number): Promise<void>;
}
