/** PostgreSQL connection pool with bounded waits, so a stuck database cannot hang a request. */
import pg from "pg";

export function createPgPool(connectionString: string, applicationName: string, onIdleError: (err: Error) => void): pg.Pool {
	const pool = new pg.Pool({
		connectionString,
		application_name: applicationName,
		max: 10,
		connectionTimeoutMillis: 3_000,
		idleTimeoutMillis: 30_000,
		statement_timeout: 10_000,
		query_timeout: 12_000,
	});
	// An idle client losing its connection (database restart) must not crash the process.
	pool.on("error", onIdleError);
	// Nor may a checked-out one: pg-pool removes its own error listener at checkout, so a client
	// held between two queries (a transaction's next statement, the outbox relay waiting for
	// RabbitMQ's confirm) that loses its connection would emit an unhandled 'error' and take the
	// node down. Its holder learns of it from its next query, which fails.
	pool.on("connect", (client) => client.on("error", () => undefined));
	return pool;
}
