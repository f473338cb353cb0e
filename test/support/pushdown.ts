/**
 * FerretDB v1 filters in PostgreSQL only what has an equality on a top-level scalar field;
 * anything else makes it read and decode the whole collection, on every call. `recordFilters`
 * captures the filters a piece of code sends (driver command monitoring); `notPushedDown` asks the
 * server to `explain` each and answers those it could not hand to PostgreSQL. On a real MongoDB
 * (no `filterPushdown` in explain) nothing is reported: indexes serve these queries there.
 */
import { MongoClient } from "mongodb";
import type { Db } from "mongodb";

export interface SentFilter {
	command: string;
	collection: string;
	filter: Record<string, unknown>;
}

/** Runs `work` with a Db of the same database whose every find/update/delete filter is recorded. */
export async function recordFilters(url: string, dbName: string, work: (db: Db) => Promise<void>): Promise<SentFilter[]> {
	const target = new URL(url);
	target.pathname = `/${dbName}`;
	const client = new MongoClient(target.toString(), { retryWrites: false, monitorCommands: true });
	const filters: SentFilter[] = [];
	client.on("commandStarted", (e) => {
		const c = e.command as Record<string, unknown> & { updates?: { q: Record<string, unknown> }[]; deletes?: { q: Record<string, unknown> }[]; filter?: Record<string, unknown> };
		const collection = String(c[e.commandName]);
		if (e.commandName === "find") filters.push({ command: "find", collection, filter: c.filter ?? {} });
		for (const u of c.updates ?? []) filters.push({ command: "update", collection, filter: u.q });
		for (const d of c.deletes ?? []) filters.push({ command: "delete", collection, filter: d.q });
	});
	try {
		await work(client.db());
	} finally {
		await client.close();
	}
	return filters;
}

export async function notPushedDown(db: Db, filters: SentFilter[]): Promise<SentFilter[]> {
	const missed: SentFilter[] = [];
	for (const f of filters) {
		const explained = (await db.collection(f.collection).find(f.filter).explain()) as { filterPushdown?: boolean };
		if (explained.filterPushdown === false) missed.push(f);
	}
	return missed;
}
