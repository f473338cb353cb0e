/** PostgreSQL helpers shared by the auth domain modules. */
import type pg from "pg";

/** A pool or a client inside a transaction: anything that runs a query. */
export type Db = pg.Pool | pg.PoolClient;

/** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
export async function withTransaction<T>(pool: pg.Pool, fn: (tx: pg.PoolClient) => Promise<T>): Promise<T> {
	const client = await pool.connect();
	try {
		await client.query("BEGIN");
		const result = await fn(client);
		await client.query("COMMIT");
		return result;
	} catch (err) {
		await client.query("ROLLBACK").catch(() => undefined);
		throw err;
	} finally {
		client.release();
	}
}

export const isUniqueViolation = (err: unknown, constraint?: string) =>
	(err as { code?: string }).code === "23505" && (constraint === undefined || (err as { constraint?: string }).constraint === constraint);
