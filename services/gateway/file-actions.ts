/**
 * The gateway's actions that answer with files held in memory: the API's OpenAPI document and its
 * docs page (Swagger UI), and the web console (its page, hashed assets and service worker). Files
 * are served by name only: no path from a client reaches the filesystem.
 */
import type { ActionSchema, Context, Service } from "moleculer";
import { notFound } from "../../lib/errors.ts";
import { collectOperations, DOCS_ASSETS, DOCS_INIT, DOCS_PAGE } from "./api-docs.ts";
import { CONSOLE_CSP, loadConsole } from "./console.ts";
import type { ConsoleFile } from "./console.ts";
import { buildSpec } from "./openapi.ts";
import { AUTH_ROUTES } from "./routes.ts";

// Swagger UI styles itself inline; everything it loads comes from this origin.
const DOCS_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

type FileMeta = { $responseType?: string; $responseHeaders?: Record<string, string> };

/** Answers with a file held in memory: its content type, and the caching and CSP headers given. */
function sendFile(meta: FileMeta, file: ConsoleFile, headers: Record<string, string>): Buffer {
	meta.$responseType = file.type;
	meta.$responseHeaders = headers;
	return file.body;
}

/** The actions, and `invalidateSpec` for when routes or actions change (rebuilt on next request). */
export function fileActions(webConsole = loadConsole()): { actions: Record<string, ActionSchema>; invalidateSpec(): void } {
	let spec: Record<string, unknown> | undefined;
	const actions: Record<string, ActionSchema> = {
		openapi: {
			visibility: "published",
			auth: "none",
			handler(this: Service) {
				spec ??= buildSpec({ title: "Backplane API", version: "1.0.0", description: "Accounts, billing and notifications. Errors are RFC 9457 problem+json." }, collectOperations(this.broker.registry, AUTH_ROUTES));
				return spec;
			},
		},
		docs: {
			visibility: "published",
			auth: "none",
			handler(ctx: Context<unknown, FileMeta>) {
				ctx.meta.$responseType = "text/html; charset=utf-8";
				ctx.meta.$responseHeaders = { "Content-Security-Policy": DOCS_CSP };
				return DOCS_PAGE;
			},
		},
		docsAsset: {
			visibility: "published",
			auth: "none",
			params: { file: { type: "string", max: 100 } },
			handler(ctx: Context<{ file: string }, FileMeta>) {
				if (ctx.params.file === "init.js") {
					ctx.meta.$responseType = "text/javascript; charset=utf-8";
					return DOCS_INIT;
				}
				const asset = DOCS_ASSETS[ctx.params.file];
				if (!asset) throw notFound("This file");
				return sendFile(ctx.meta, asset, { "Cache-Control": "public, max-age=86400" });
			},
		},
		console: {
			visibility: "published",
			auth: "none",
			rateLimit: "none",
			handler(ctx: Context<unknown, FileMeta>) {
				if (!webConsole) throw notFound("The console (build it with `npm run build:web`)");
				return sendFile(ctx.meta, webConsole.index, { "Content-Security-Policy": CONSOLE_CSP, "Cache-Control": "no-cache" });
			},
		},
		consoleAsset: {
			visibility: "published",
			auth: "none",
			rateLimit: "none",
			params: { file: { type: "string", max: 200 } },
			handler(ctx: Context<{ file: string }, FileMeta>) {
				const asset = webConsole?.assets.get(ctx.params.file);
				if (!asset) throw notFound("This file");
				// Vite puts a content hash in every asset name: safe to cache for good.
				return sendFile(ctx.meta, asset, { "Cache-Control": "public, max-age=31536000, immutable" });
			},
		},
		consoleServiceWorker: {
			visibility: "published",
			auth: "none",
			rateLimit: "none",
			handler(ctx: Context<unknown, FileMeta>) {
				if (!webConsole?.serviceWorker) throw notFound("The console's service worker");
				// Served from the root, so its scope is the whole console; never cached, so updates reach browsers.
				return sendFile(ctx.meta, webConsole.serviceWorker, { "Content-Security-Policy": CONSOLE_CSP, "Cache-Control": "no-cache" });
			},
		},
	};
	return {
		actions,
		invalidateSpec() {
			spec = undefined;
		},
	};
}
