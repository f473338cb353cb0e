/**
 * Setup file of every test file: after the file's own `afterAll` hooks (Vitest runs them in
 * reverse, so this one last), delete what the file made on the shared servers: its namespaces'
 * queues, exchanges, Redis keys and billing database, and the PostgreSQL databases it created.
 * Left behind, they pile up (9,000 queues after a few days here; later 500 databases of 4 GB,
 * 440,000 Redis keys and 126 FerretDB databases), and everything later runs slower for it: an idle
 * broker took a quarter of a core, Redis forked to snapshot 280 MB during benchmarks, and a
 * FerretDB `ping` walks every database (2 ms of CPU instead of 0.3 ms).
 */
import { afterAll } from "vitest";
import { databasesInUse, namespacesInUse } from "./namespaces.ts";

afterAll(async () => {
	if (namespacesInUse.size > 0) {
		const { deleteNamespaceObjects } = await import("./chaos.ts");
		for (const namespace of namespacesInUse) await deleteNamespaceObjects(namespace).catch(() => undefined);
		namespacesInUse.clear();
	}
	if (databasesInUse.size > 0) {
		const { dropTestDatabase } = await import("./infra.ts");
		// Not by force: the file's own pools may still be closing their connections.
		for (const url of databasesInUse) await dropTestDatabase(url, { force: false }).catch(() => undefined);
	}
}, 60_000);
