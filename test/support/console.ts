/**
 * The whole platform for the console's browser tests: one node per service on the real servers,
 * a gateway serving the console, Debian's Chromium, a fake push service, and the helpers every
 * browser test uses (register through the API, log in through the page, screenshots). Mails to
 * the addresses registered here are deleted at the end.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import type { ServiceBroker } from "moleculer";
import { chromium } from "playwright-core";
import type { Browser, Page } from "playwright-core";
import { expect } from "vitest";
import { deleteMessages, messagesTo } from "./mailpit.ts";
import { FakePushService } from "./push-service.ts";
import { createTestDatabase, gatewayUrl, startNode, testEnv, uniqueId, waitForCluster } from "./infra.ts";

const SHOTS = path.resolve(import.meta.dirname, "..", "..", "test-results", "screenshots");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export const PASSWORD = "correct horse battery staple 42";
export const JSON_HEADERS = { "content-type": "application/json" };

export interface ConsolePlatform {
	/** The gateway's URL: the console and the API. */
	base: string;
	browser: Browser;
	pushService: FakePushService;
	/** auth, billing, notification, gateway. */
	nodes: ServiceBroker[];
	env: Record<string, string>;
	/** A new account registered through the API, logged in: its id, address and access token. */
	register(prefix: string): Promise<{ id: string; email: string; accessToken: string }>;
	/** Counts an address whose mails are deleted at the end (accounts made through the page). */
	track(email: string): void;
	logIn(page: Page, email: string, password?: string): Promise<void>;
	shot(page: Page, name: string): Promise<Buffer>;
	close(): Promise<void>;
}

export async function startConsolePlatform(prefix: string, extraEnv: Record<string, string> = {}): Promise<ConsolePlatform> {
	mkdirSync(SHOTS, { recursive: true });
	const pushService = await FakePushService.start();
	// Devices registered by the tests point at the fake push service.
	const env = testEnv(uniqueId(prefix), { DATABASE_URL: await createTestDatabase(), PUSH_ENDPOINT_ORIGINS: pushService.origin, ...extraEnv });
	const nodes: ServiceBroker[] = [];
	for (const svc of ["auth", "billing", "notification", "gateway"] as const) nodes.push(await startNode([svc], env));
	await waitForCluster(nodes);
	const base = gatewayUrl(nodes[3]!);
	const browser = await chromium.launch({
		executablePath: CHROMIUM,
		args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
	});
	const emails: string[] = [];

	return {
		base, browser, pushService, nodes, env,
		track: (email) => void emails.push(email),
		async register(idPrefix) {
			const email = `${uniqueId(idPrefix)}@example.com`;
			emails.push(email);
			const reg = await fetch(`${base}/api/v1/auth/register`, { method: "POST", headers: JSON_HEADERS, body: JSON.stringify({ email, password: PASSWORD }) });
			expect(reg.status).toBe(201);
			const login = await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: JSON_HEADERS, body: JSON.stringify({ email, password: PASSWORD }) });
			return { id: ((await reg.json()) as { user: { id: string } }).user.id, email, accessToken: ((await login.json()) as { accessToken: string }).accessToken };
		},
		async logIn(page, email, password = PASSWORD) {
			await page.goto(`${base}/#/login`);
			await page.getByLabel("E-mail").fill(email);
			await page.getByLabel("Password").fill(password);
			await page.getByRole("button", { name: "Log in" }).click();
			await page.getByRole("heading", { name: /^Hello/ }).waitFor();
		},
		shot: (page, name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true }),
		async close() {
			await browser.close();
			await Promise.all(nodes.map((n) => n.stop()));
			await pushService.close();
			const ids = (await Promise.all(emails.map((e) => messagesTo(e)))).flat().map((m) => m.ID);
			await deleteMessages([...new Set(ids)]);
		},
	};
}
