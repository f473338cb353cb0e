/**
 * Runs a service's versioned SQL migrations (node-pg-migrate) under its advisory lock, so
 * several nodes starting together apply each migration exactly once.
 */
import { runner } from "node-pg-migrate";

export interface MigrationLogger {
	info(...args: unknown[]): void;
	warn(...args: unknown[]): void;
	error(...args: unknown[]): void;
}

export async function migrateUp(databaseUrl: string, dir: string, logger: MigrationLogger): Promise<string[]> {
	const applied = await runner({
		databaseUrl,
		dir,
		direction: "up",
		migrationsTable: "schema_migrations",
		checkOrder: true,
		singleTransaction: true,
		advisoryLockMode: "wait",
		verbose: false,
		logger: { debug: () => undefined, info: (m: string) => logger.info(m), warn: (m: string) => logger.warn(m), error: (m: string) => logger.error(m) },
	});
	return applied.map((m) => m.name);
}
