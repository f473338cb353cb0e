/**
 * Setup file of every test file: after the file's own `afterAll` hooks (Vitest runs them in
 * reverse, so this one last), delete the queues and exchanges of the namespaces it used. Left
 * behind, they pile up in the shared RabbitMQ (9,000 queues after a few days here), and an idle
 * broker then takes a quarter of a core, which skews every later test and benchmark.
 */
import { afterAll } from "vitest";
import { namespacesInUse } from "./namespaces.ts";

afterAll(async () => {
	if (namespacesInUse.size === 0) return;
	const { deleteNamespaceObjects } = await import("./chaos.ts");
	for (const namespace of namespacesInUse) await deleteNamespaceObjects(namespace).catch(() => undefined);
	namespacesInUse.clear();
});
