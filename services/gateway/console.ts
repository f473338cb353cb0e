/**
 * The web console (web/, built by Vite into web/dist) served by the gateway: its files are read
 * into memory once, served by name only (no path from the client ever reaches the filesystem),
 * hashed assets cached for a year, the page and the service worker (/sw.js) never cached.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";

export interface ConsoleFile {
	type: string;
	body: Buffer;
}

export interface ConsoleBundle {
	index: ConsoleFile;
	assets: Map<string, ConsoleFile>;
	/** sw.js: web push needs a service worker whose scope is the whole console. */
	serviceWorker?: ConsoleFile;
}

export const CONSOLE_DIR = path.resolve(import.meta.dirname, "..", "..", "web", "dist");

const TYPES: Record<string, string> = {
	".js": "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
	".png": "image/png",
	".woff2": "font/woff2",
};

/** The built console, or undefined when it was not built (`npm run build:web`). */
export function loadConsole(dir = CONSOLE_DIR): ConsoleBundle | undefined {
	const indexPath = path.join(dir, "index.html");
	if (!existsSync(indexPath)) return undefined;
	const assets = new Map<string, ConsoleFile>();
	const assetsDir = path.join(dir, "assets");
	if (existsSync(assetsDir)) {
		for (const name of readdirSync(assetsDir)) {
			const type = TYPES[path.extname(name)];
			if (type) assets.set(name, { type, body: readFileSync(path.join(assetsDir, name)) });
		}
	}
	const swPath = path.join(dir, "sw.js");
	const serviceWorker = existsSync(swPath) ? { type: TYPES[".js"]!, body: readFileSync(swPath) } : undefined;
	return { index: { type: "text/html; charset=utf-8", body: readFileSync(indexPath) }, assets, serviceWorker };
}

/** Scripts and styles from this origin only; the API is this origin too. */
export const CONSOLE_CSP = "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
