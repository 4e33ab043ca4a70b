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
  /** Stops accepting and ends live sessions (each records why it ended). */
  stop(): Promise<void>;
}
