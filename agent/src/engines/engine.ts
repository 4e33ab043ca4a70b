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

/** What every engine's server can do: listen, say where, report errors (net, http, https and ssh2 servers alike). */
interface ListeningServer {
  listen(port: number, address: string, done: () => void): unknown;
  address(): unknown;
  once(event: 'error', listener: (err: Error) => void): unknown;
}

/** Binds `server` and resolves with the bound address (port 0 picks a free one); rejects if the port is taken. */
export async function listenOn(server: ListeningServer, port: number, address: string): Promise<{ address: string; port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve());
  });
  const bound = server.address() as { address: string; port: number };
  return { address: bound.address, port: bound.port };
}

/** A session context for the session about to start, registered in `live` (so stop() can end it) until it untracks itself. */
export function trackedContext<C, S>(context: C, live: Set<S>): C & { track(session: S): () => void } {
  return {
    ...context,
    track: (session: S) => {
      live.add(session);
      return () => live.delete(session);
    },
  };
}
