/**
 * What the OpenAPI spec is built from: the actions the gateway routes to, read from the
 * Moleculer registry (so a service's params schema and REST mapping are the single source), plus
 * the gateway's own routes. And the docs page: Swagger UI served from the swagger-ui-dist
 * package, with no third-party host involved.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import type { OperationSource } from "./openapi.ts";
import type { GrpcRoute } from "./routes.ts";
import { AUTO_ALIASED } from "./routes.ts";

interface RegistryAction {
	name: string;
	rest?: string | { method?: string; path?: string } | (string | { method?: string; path?: string })[];
	params?: Record<string, unknown>;
	visibility?: string;
	auth?: "required" | "none";
	permissions?: string[];
	rateLimit?: string;
	openapi?: OperationSource["openapi"];
}
interface RegistryService {
	name: string;
	settings?: { rest?: string };
	actions?: Record<string, RegistryAction>;
}
interface Registry {
	getServiceList(opts: { onlyAvailable: boolean; withActions: boolean; grouping: boolean; skipInternal: boolean }): unknown[];
}

const GATEWAY_OPERATIONS: OperationSource[] = [
	{ method: "GET", path: "/healthz", tag: "platform", operationId: "liveness", auth: "none", openapi: { summary: "Liveness, with every service's health" } },
	{ method: "GET", path: "/readyz", tag: "platform", operationId: "readiness", auth: "none", openapi: { summary: "Readiness of this gateway", responses: { "503": { description: "Not ready", content: { "application/json": { schema: {} } } } } } },
	{ method: "GET", path: "/api/openapi.json", tag: "platform", operationId: "openapi", auth: "none", openapi: { summary: "This document" } },
	{ method: "POST", path: "/api/v1/billing/webhooks/stripe", tag: "billing", operationId: "stripeWebhook", auth: "none", rawBody: true, openapi: { summary: "Stripe webhook (signed with Stripe-Signature)" } },
	{
		method: "GET",
		path: "/api/v1/notifications/stream",
		tag: "notifications",
		operationId: "alertStream",
		auth: "required",
		openapi: { summary: "Server-Sent Events of new in-app alerts", responses: { "200": { description: "An event stream", content: { "text/event-stream": { schema: { type: "string" } } } } } },
	},
];

function restEntries(rest: RegistryAction["rest"]): { method: string; path: string }[] {
	const list = Array.isArray(rest) ? rest : rest ? [rest] : [];
	return list.flatMap((r) => {
		if (typeof r === "string") {
			const [method, p] = r.includes(" ") ? r.split(/\s+/) : ["*", r];
			return [{ method: method!.toUpperCase(), path: p ?? "" }];
		}
		return r.path !== undefined ? [{ method: (r.method ?? "*").toUpperCase(), path: r.path }] : [];
	});
}

const join = (...parts: string[]) => "/" + parts.map((p) => p.replace(/^\/+|\/+$/g, "")).filter(Boolean).join("/");

export function collectOperations(registry: Registry, authRoutes: GrpcRoute[]): OperationSource[] {
	const services = registry.getServiceList({ onlyAvailable: true, withActions: true, grouping: true, skipInternal: true }) as RegistryService[];
	const actions = new Map<string, RegistryAction>();
	for (const svc of services) for (const a of Object.values(svc.actions ?? {})) actions.set(a.name, a);

	const operations = [...GATEWAY_OPERATIONS];
	for (const r of authRoutes) {
		const [method, p] = r.route.split(" ") as [string, string];
		operations.push({
			method,
			path: p.startsWith("/") ? p : join("api/v1", p),
			tag: "auth",
			operationId: r.action.replace(/^auth\./, "auth_"),
			params: actions.get(r.action)?.params,
			auth: r.auth,
			permissions: r.permissions,
			rateLimited: true,
			successStatus: r.successStatus,
			createdLocation: r.location !== undefined,
			openapi: { summary: r.summary, ...actions.get(r.action)?.openapi },
		});
	}
	for (const svc of services.filter((s) => AUTO_ALIASED.includes(s.name))) {
		const base = svc.settings?.rest ?? svc.name;
		for (const a of Object.values(svc.actions ?? {})) {
			if (a.visibility && a.visibility !== "published") continue;
			for (const { method, path: p } of restEntries(a.rest)) {
				if (method === "*") continue;
				operations.push({
					method,
					path: join("api/v1", base, p),
					tag: base,
					operationId: a.name.replace(".", "_"),
					params: a.params,
					auth: a.auth ?? "required",
					permissions: a.permissions,
					rateLimited: true,
					successStatus: a.openapi?.created ? 201 : undefined,
					createdLocation: a.openapi?.created,
					openapi: a.openapi,
				});
			}
		}
	}
	return operations;
}

const require = createRequire(import.meta.url);
const SWAGGER_DIR = path.dirname(require.resolve("swagger-ui-dist/package.json"));

/** The Swagger UI files the docs page loads, by name. */
export const DOCS_ASSETS: Record<string, { type: string; body: Buffer }> = Object.fromEntries(
	[
		["swagger-ui.css", "text/css; charset=utf-8"],
		["swagger-ui-bundle.js", "text/javascript; charset=utf-8"],
	].map(([file, type]) => [file!, { type: type!, body: readFileSync(path.join(SWAGGER_DIR, file!)) }]),
);

export const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Backplane API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<div id="docs"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body>
</html>`;

/** Kept out of the page so the page's CSP can forbid inline scripts. */
export const DOCS_INIT = `window.ui = SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#docs", deepLinking: true });`;
