/**
 * Graceful shutdown of the HTTP server: keep serving what arrives on open connections (the
 * gateway answers each with `Connection: close` while draining) until every client has left or
 * its idle keep-alive connection expired, then close what remains. Closing idle connections at
 * once races with a client reusing one (a failed request); docs/reliability.md, scenario 3.
 */
import type { Server } from "node:http";
import { KEEP_ALIVE_TIMEOUT_MS } from "./connections.ts";

/** Longest wait for clients to leave: the server's keep-alive timeout and a margin. */
export const DRAIN_MAX_MS = KEEP_ALIVE_TIMEOUT_MS + 500;
const POLL_MS = 50;

export async function drainConnections(server: Server, maxMs = DRAIN_MAX_MS): Promise<void> {
	if (!server.listening) return;
	const deadline = Date.now() + maxMs;
	const open = () => new Promise<number>((resolve) => server.getConnections((err, n) => resolve(err ? 0 : n)));
	while (Date.now() < deadline && (await open()) > 0) await new Promise((r) => setTimeout(r, POLL_MS));
	server.closeAllConnections();
}
