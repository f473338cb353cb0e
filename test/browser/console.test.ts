/**
 * The web console in a real browser (Debian's Chromium driven by playwright-core) against the
 * whole platform: sign up -> dashboard with the trial and the welcome alert -> a new alert
 * arrives live over SSE -> log out and in; and the e-mailed reset link opens the console's reset
 * page and sets a new password. Screenshots of each screen go to test-results/screenshots/.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import type { ServiceBroker } from "moleculer";
import { chromium } from "playwright-core";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteMessages, getMessage, messagesTo } from "../support/mailpit.ts";
import { createTestDatabase, eventually, gatewayUrl, startNode, testEnv, uniqueId, waitForCluster } from "../support/infra.ts";

const SHOTS = path.resolve(import.meta.dirname, "..", "..", "test-results", "screenshots");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

describe("web console in Chromium", () => {
	const nodes: ServiceBroker[] = [];
	const mails: string[] = [];
	let base: string;
	let browser: Browser;

	beforeAll(async () => {
		mkdirSync(SHOTS, { recursive: true });
		const env = testEnv(uniqueId("web"), { DATABASE_URL: await createTestDatabase() });
		for (const svc of ["auth", "billing", "notification"] as const) nodes.push(await startNode([svc], env));
		const gateway = await startNode(["gateway"], env);
		nodes.push(gateway);
		await waitForCluster(nodes);
		base = gatewayUrl(gateway);
		// The links in e-mails point at PUBLIC_URL; here the gateway under test is the public URL.
		browser = await chromium.launch({
			executablePath: CHROMIUM,
			args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
		});
	});
	afterAll(async () => {
		await browser?.close();
		await Promise.all(nodes.map((n) => n.stop()));
		await deleteMessages([...new Set(mails)]);
	});

	const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

	it("signs up, shows the trial and the inbox, receives a live alert, logs out and in", async () => {
		const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
		const email = `${uniqueId("web")}@example.com`;
		const password = "correct horse battery staple 42";
		await page.goto(`${base}/#/signup`);
		await shot(page, "signup");
		await page.getByLabel("Name").fill("Grace");
		await page.getByLabel("E-mail").fill(email);
		await page.getByLabel(/^Password/).fill("short");
		await page.getByRole("button", { name: "Sign up" }).click();
		await expect.poll(() => page.getByRole("alert").textContent()).toContain("password");
		await expect.poll(() => page.locator("#f-password-error").textContent()).toBeTruthy();
		await shot(page, "signup-error");
		await page.getByLabel(/^Password/).fill(password);
		await page.getByRole("button", { name: "Sign up" }).click();

		await page.getByRole("heading", { name: "Hello, Grace" }).waitFor();
		await expect.poll(async () => page.locator(".plan").textContent(), { timeout: 15_000 }).toMatch(/trialing.*days of trial left/);
		await expect.poll(async () => page.locator(".alerts li").allTextContents(), { timeout: 15_000 }).toEqual(expect.arrayContaining([expect.stringMatching(/Welcome/)]));
		await shot(page, "dashboard");

		// A live alert: change the password through the API; the open page gets it over SSE.
		const before = Number(await page.getByTestId("unread").textContent());
		const tokens = await page.evaluate(() => JSON.parse(sessionStorage.getItem("backplane.session")!) as { accessToken: string });
		const change = await fetch(`${base}/api/v1/auth/password/change`, {
			method: "POST",
			headers: { "content-type": "application/json", authorization: `Bearer ${tokens.accessToken}` },
			body: JSON.stringify({ currentPassword: password, newPassword: `${password} and more`, keepOtherSessions: true }),
		});
		expect(change.status).toBe(204);
		await expect.poll(async () => Number(await page.getByTestId("unread").textContent()), { timeout: 15_000 }).toBeGreaterThan(before);
		await expect.poll(async () => page.locator(".alerts li").first().textContent()).toMatch(/Password changed/);
		await shot(page, "live-alert");

		await page.getByRole("button", { name: "Log out" }).click();
		await page.getByRole("heading", { name: "Log in" }).waitFor();
		await page.getByLabel("E-mail").fill(email);
		await page.getByLabel("Password").fill(`${password} and more`);
		await page.getByRole("button", { name: "Log in" }).click();
		await page.getByRole("heading", { name: "Hello, Grace" }).waitFor();
		mails.push(...(await messagesTo(email)).map((m) => m.ID));
		await page.close();
	});

	it("resets a forgotten password through the e-mailed link", async () => {
		const page = await browser.newPage();
		const email = `${uniqueId("webreset")}@example.com`;
		const register = await fetch(`${base}/api/v1/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: "correct horse battery staple 42" }) });
		expect(register.status).toBe(201);
		await page.goto(`${base}/#/forgot`);
		await page.getByLabel("E-mail").fill(email);
		await page.getByRole("button", { name: "Send the link" }).click();
		await page.getByRole("heading", { name: "Check your inbox" }).waitFor();
		await shot(page, "forgot");

		const mail = await eventually(async () => (await messagesTo(email)).find((m) => /reset/i.test(m.Subject)), 15_000, "the reset e-mail");
		const link = /https?:\/\/\S+reset-password\?token=[A-Za-z0-9_-]+/.exec((await getMessage(mail.ID)).Text)![0];
		// Same path and token, on the gateway under test.
		const url = new URL(link);
		await page.goto(`${base}${url.pathname}${url.search}`);
		await page.getByLabel("New password", { exact: true }).fill("a fresh and long passphrase 1");
		await page.getByRole("button", { name: "Set the password" }).click();
		await page.getByRole("heading", { name: "Password changed" }).waitFor();
		await shot(page, "reset-done");
		const login = await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: "a fresh and long passphrase 1" }) });
		expect(login.status).toBe(200);
		mails.push(...(await messagesTo(email)).map((m) => m.ID));
		await page.close();
	});
});
