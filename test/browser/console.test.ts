/**
 * The web console in a real browser (Debian's Chromium driven by playwright-core) against the
 * whole platform: sign up -> dashboard with the trial and the welcome alert -> a new alert
 * arrives live over SSE -> log out and in; the e-mailed reset link opens the console's reset
 * page and sets a new password; the e-mailed verification link verifies the address; the account
 * card renames the user and moves the account to a new address through the link sent there (and
 * the old address's notice moves it back);
 * two-step login is turned on (its QR code scanned), makes new recovery codes, and then asks for
 * a code at login; web push (service worker,
 * opt-in, devices). Screenshots of each screen go to test-results/screenshots/.
 */
import jsQR from "jsqr";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConsolePlatform, JSON_HEADERS as json, PASSWORD as password } from "../support/console.ts";
import type { ConsolePlatform } from "../support/console.ts";
import { getMessage, messagesTo } from "../support/mailpit.ts";
import { createBrowserSubscription } from "../support/push-service.ts";
import { eventually, uniqueId } from "../support/infra.ts";
import { totpCode } from "../support/totp.ts";

describe("web console in Chromium", () => {
	let platform: ConsolePlatform;
	let base: string;

	beforeAll(async () => {
		platform = await startConsolePlatform("web");
		base = platform.base;
	});
	afterAll(async () => {
		await platform?.close();
	});

	const shot = (page: Page, name: string) => platform.shot(page, name);
	const newPage = (options?: Parameters<ConsolePlatform["browser"]["newPage"]>[0]) => platform.browser.newPage(options);
	/** A new page logged in through the console's form, on the dashboard that greets `name`. */
	const loggedInPage = async (email: string, name: string, height: number) => {
		const page = await newPage({ viewport: { width: 1100, height } });
		await page.goto(`${base}/#/login`);
		await page.getByLabel("E-mail").fill(email);
		await page.getByLabel("Password").fill(password);
		await page.getByRole("button", { name: "Log in" }).click();
		await page.getByRole("heading", { name: `Hello, ${name}` }).waitFor();
		return page;
	};

	it("signs up, shows the trial and the inbox, receives a live alert, logs out and in", async () => {
		const page = await newPage({ viewport: { width: 1100, height: 900 } });
		const email = `${uniqueId("web")}@example.com`;
		platform.track(email);
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
		await page.close();
	});

	it("shows where the account is signed in and signs out another device", async () => {
		const email = `${uniqueId("websessions")}@example.com`;
		platform.track(email);
		const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: "POST", headers: json, body: JSON.stringify(body) });
		expect((await post("/api/v1/auth/register", { email, password, name: "Lin" })).status).toBe(201);
		const phone = (await (await post("/api/v1/auth/login", { email, password })).json()) as { refreshToken: string };

		const page = await loggedInPage(email, "Lin", 1400);
		const sessions = page.getByTestId("session");
		// The phone's and this browser's (registering opens none).
		await expect.poll(() => sessions.count(), { timeout: 10_000 }).toBe(2);
		await expect.poll(() => sessions.filter({ hasText: "this device" }).count()).toBe(1);
		await page.getByRole("heading", { name: "Where you are signed in" }).scrollIntoViewIfNeeded();
		await shot(page, "sessions");

		await sessions.getByRole("button", { name: "Sign out" }).click();
		await expect.poll(() => sessions.count(), { timeout: 10_000 }).toBe(1);
		expect(await sessions.first().textContent()).toContain("this device");
		// The phone's refresh token no longer works; this browser is still in.
		expect((await post("/api/v1/auth/refresh", { refreshToken: phone.refreshToken })).status).toBe(401);

		// Two more devices sign in; "Sign out all other devices" ends both at once.
		const others = await Promise.all([1, 2].map(async () => ((await (await post("/api/v1/auth/login", { email, password })).json()) as { refreshToken: string }).refreshToken));
		await page.reload();
		await expect.poll(() => sessions.count(), { timeout: 10_000 }).toBe(3);
		await page.getByRole("button", { name: "Sign out all other devices" }).click();
		await expect.poll(() => sessions.count(), { timeout: 10_000 }).toBe(1);
		for (const refreshToken of others) expect((await post("/api/v1/auth/refresh", { refreshToken })).status).toBe(401);
		await page.reload();
		await page.getByRole("heading", { name: "Hello, Lin" }).waitFor();
		await page.close();
	});

	it("renames the user and moves the account to a new e-mail address through the link sent there", async () => {
		const email = `${uniqueId("webmove")}@example.com`;
		const newEmail = `${uniqueId("webmoved")}@example.org`;
		platform.track(email);
		platform.track(newEmail);
		expect((await fetch(`${base}/api/v1/auth/register`, { method: "POST", headers: json, body: JSON.stringify({ email, password, name: "Kay" }) })).status).toBe(201);
		// The old address is verified: only a proven address gets the way back after a move.
		const verification = await eventually(async () => (await messagesTo(email)).find((m) => /confirm your e-mail address/i.test(m.Subject)), 15_000, "the verification e-mail");
		const verifyToken = new URL(/https?:\/\/\S+verify-email\?token=[A-Za-z0-9_-]+/.exec((await getMessage(verification.ID)).Text)![0]).searchParams.get("token");
		expect((await fetch(`${base}/api/v1/auth/verify-email`, { method: "POST", headers: json, body: JSON.stringify({ token: verifyToken }) })).status).toBe(204);
		const page = await loggedInPage(email, "Kay", 1600);

		await page.getByLabel("Display name").fill("Kay Moss");
		await page.getByRole("button", { name: "Save the name" }).click();
		await page.getByRole("heading", { name: "Hello, Kay Moss" }).waitFor();

		await page.getByLabel("New e-mail address").fill(newEmail);
		await page.getByLabel("Your password").fill("not my password at all");
		await page.getByRole("button", { name: "Send the confirmation link" }).click();
		await expect.poll(() => page.locator("#f-password-error").textContent()).toContain("not your current password");
		await page.getByLabel("Your password").fill(password);
		await page.getByRole("button", { name: "Send the confirmation link" }).click();
		await expect.poll(() => page.getByRole("status").filter({ hasText: "We sent a link" }).textContent()).toContain(newEmail);
		await page.getByRole("heading", { name: "Your account" }).scrollIntoViewIfNeeded();
		await shot(page, "account");

		const mail = await eventually(async () => (await messagesTo(newEmail)).find((m) => /confirm your new e-mail/i.test(m.Subject)), 15_000, "the confirmation e-mail");
		const link = new URL(/https?:\/\/\S+confirm-email\?token=[A-Za-z0-9_-]+/.exec((await getMessage(mail.ID)).Text)![0]);
		await page.goto(`${base}${link.pathname}${link.search}`);
		// Opening the link changes nothing; the click does.
		await page.getByRole("heading", { name: "Use this e-mail address?" }).waitFor();
		const before = (await (await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${await page.evaluate(() => (JSON.parse(sessionStorage.getItem("backplane.session")!) as { accessToken: string }).accessToken)}` } })).json()) as { email: string };
		expect(before.email).toBe(email);
		await page.getByRole("button", { name: "Confirm the new address" }).click();
		await page.getByRole("heading", { name: "New address confirmed" }).waitFor();
		await page.goto(`${base}/#/`);
		await expect.poll(() => page.locator(".home .card").first().textContent(), { timeout: 10_000 }).toContain(newEmail);

		// The old address's notice: "this was not me" takes the account back on a click.
		const notice = await eventually(async () => (await messagesTo(email)).find((m) => /address was changed/i.test(m.Subject)), 15_000, "the notice to the old address");
		const revert = new URL(/https?:\/\/\S+revert-email\?token=[A-Za-z0-9_-]+/.exec((await getMessage(notice.ID)).Text)![0]);
		await page.goto(`${base}${revert.pathname}${revert.search}`);
		await page.getByRole("button", { name: "Move it back to this address" }).click();
		await page.getByRole("heading", { name: "Your account is back" }).waitFor();
		await shot(page, "account-reverted");
		const login = await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: json, body: JSON.stringify({ email, password }) });
		expect(login.status).toBe(200);
		await page.close();
	});

	it("turns on two-step login, then asks for the app's code (or a recovery code) at login", async () => {
		const email = `${uniqueId("web2fa")}@example.com`;
		platform.track(email);
		expect((await fetch(`${base}/api/v1/auth/register`, { method: "POST", headers: json, body: JSON.stringify({ email, password, name: "Ida" }) })).status).toBe(201);
		const page = await loggedInPage(email, "Ida", 1800);
		await page.getByLabel("Password to turn it on").fill(password);
		await page.getByRole("button", { name: "Set up two-step login" }).click();
		const secret = (await page.getByTestId("totp-secret").textContent())!;
		await page.getByLabel("Code from the app").fill("000000");
		await page.getByRole("button", { name: "Confirm the code" }).click();
		await expect.poll(() => page.locator("#f-mfa-code-error").textContent()).toContain("not the current code");
		// The QR code is what an authenticator app scans: an independent decoder reads the otpauth link from it.
		expect(await scanQrCode(page)).toMatch(new RegExp(`^otpauth://totp/Backplane:[^?]+\\?.*secret=${secret}`));
		await page.getByTestId("totp-qr").scrollIntoViewIfNeeded();
		await shot(page, "two-step-setup");
		await page.getByLabel("Code from the app").fill(totpCode(secret));
		await page.getByRole("button", { name: "Confirm the code" }).click();
		// allTextContents does not wait: wait for the list to be there first.
		await expect.poll(() => page.getByTestId("recovery-codes").locator("li").count(), { timeout: 10_000 }).toBe(10);
		const codes = await page.getByTestId("recovery-codes").locator("li").allTextContents();
		await expect.poll(() => page.getByRole("heading", { name: /Two-step login/ }).textContent()).toContain("on");
		await page.getByRole("heading", { name: /Two-step login/ }).scrollIntoViewIfNeeded();
		await shot(page, "two-step-recovery-codes");
		await page.getByRole("button", { name: "I have saved them" }).click();
		await expect.poll(() => page.getByTestId("recovery-codes-left").textContent()).toContain("10 recovery codes are left");

		// New recovery codes, proven with a recovery code (the app's current code was just used): the old ones stop working.
		await page.getByLabel("Password to change two-step login").fill(password);
		await page.getByLabel("Code from the app").fill(codes[1]!);
		await page.getByRole("button", { name: "Make new recovery codes" }).click();
		await expect.poll(() => page.getByTestId("recovery-codes").locator("li").count(), { timeout: 10_000 }).toBe(10);
		const fresh = await page.getByTestId("recovery-codes").locator("li").allTextContents();
		expect(fresh.filter((c) => codes.includes(c))).toEqual([]);
		await page.getByRole("button", { name: "I have saved them" }).click();
		await expect.poll(() => page.getByTestId("recovery-codes-left").textContent()).toContain("10 recovery codes are left");

		await page.getByRole("button", { name: "Log out" }).click();
		await page.getByRole("heading", { name: "Log in" }).waitFor();
		await page.getByLabel("E-mail").fill(email);
		await page.getByLabel("Password").fill(password);
		await page.getByRole("button", { name: "Log in" }).click();
		await page.getByRole("heading", { name: "Two-step login" }).waitFor();
		await shot(page, "two-step-login");
		await page.getByRole("link", { name: "Use a recovery code instead" }).click();
		await page.getByLabel("Recovery code").fill(codes[0]!);
		await page.getByRole("button", { name: "Continue" }).click();
		await expect.poll(() => page.getByRole("alert").textContent()).toContain("not right");
		await page.getByLabel("Recovery code").fill(fresh[0]!);
		await page.getByRole("button", { name: "Continue" }).click();
		await page.getByRole("heading", { name: "Hello, Ida" }).waitFor();
		await page.close();
	});

	it("resets a forgotten password through the e-mailed link", async () => {
		const page = await newPage();
		const email = `${uniqueId("webreset")}@example.com`;
		platform.track(email);
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
		await page.close();
	});

	it("verifies the e-mail address through the e-mailed link", async () => {
		const page = await newPage({ viewport: { width: 1100, height: 700 } });
		const { email, accessToken } = await platform.register("webverify");
		const mail = await eventually(async () => (await messagesTo(email)).find((m) => /verify|confirm/i.test(m.Subject)), 15_000, "the verification e-mail");
		const link = new URL(/https?:\/\/\S+verify-email\?token=[A-Za-z0-9_-]+/.exec((await getMessage(mail.ID)).Text)![0]);
		await page.goto(`${base}${link.pathname}${link.search}`);
		await expect.poll(() => page.locator(".card").textContent(), { timeout: 10_000 }).toContain("Your e-mail address is verified.");
		await shot(page, "verify-email");
		const me = await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } });
		expect(await me.json()).toMatchObject({ email, emailVerified: true });

		// The link works once: opened again, the page says why it fails.
		await page.goto(`${base}${link.pathname}${link.search}`);
		await expect.poll(() => page.getByRole("alert").textContent(), { timeout: 10_000 }).toMatch(/invalid, has expired or was already used/);
		await shot(page, "verify-email-used");
		await page.close();
	});

	it("installs the service worker for web push, shows this device's push state and the account's devices", async () => {
		const sw = await fetch(`${base}/sw.js`);
		expect(sw.status).toBe(200);
		expect(sw.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
		expect(sw.headers.get("cache-control")).toBe("no-cache");
		expect(await sw.text()).toContain("showNotification");

		const context = await platform.browser.newContext({ viewport: { width: 1100, height: 900 } });
		await context.grantPermissions(["notifications"], { origin: base });
		const page = await context.newPage();
		const { email, accessToken } = await platform.register("webpush");
		await platform.logIn(page, email);
		await expect.poll(() => page.getByTestId("push-state").textContent(), { timeout: 10_000 }).toBe("Push is off on this device.");
		const registration = await page.evaluate(async () => {
			// Runs in the page; the tests are type-checked without the DOM library.
			const { serviceWorker } = navigator as unknown as { serviceWorker: { getRegistration(scope: string): Promise<{ scope: string; active: { scriptURL: string } | null } | undefined> } };
			const r = await serviceWorker.getRegistration("/");
			return { scope: r?.scope, script: r?.active?.scriptURL };
		});
		expect(registration).toEqual({ scope: `${base}/`, script: `${base}/sw.js` });

		// Headless Chromium cannot subscribe: it refuses push registration ("Registration failed -
		// permission denied") even with the notifications permission granted, and there is no push
		// service (FCM) to reach here. So this checks the failure path: the console says so,
		// registers nothing and stays off. Delivery to a subscription is tested with a fake push
		// service in test/integration/notification.test.ts.
		await page.getByRole("button", { name: "Turn on push on this device" }).click();
		await expect.poll(() => page.getByRole("alert").textContent(), { timeout: 15_000 }).toMatch(/could not subscribe to push/);
		await expect.poll(() => page.getByTestId("push-state").textContent()).toBe("Push is off on this device.");
		await page.locator(".push").scrollIntoViewIfNeeded();
		await shot(page, "push-refused");
		const none = await fetch(`${base}/api/v1/notifications/push-subscriptions`, { headers: { authorization: `Bearer ${accessToken}` } });
		expect(await none.json()).toEqual({ items: [] });

		// A device registered elsewhere (what a browser with a push service sends) is listed.
		const phone = createBrowserSubscription(platform.pushService.endpoint(`${email}-phone`));
		const add = await fetch(`${base}/api/v1/notifications/push-subscriptions`, { method: "POST", headers: { ...json, authorization: `Bearer ${accessToken}` }, body: JSON.stringify({ ...phone.subscription, deviceName: "Ada's phone" }) });
		expect(add.status).toBe(201);
		await page.reload();
		await expect.poll(() => page.locator(".devices li").allTextContents(), { timeout: 10_000 }).toEqual([expect.stringContaining("Ada's phone")]);
		await page.locator(".push").scrollIntoViewIfNeeded();
		await shot(page, "push");
		// A lost phone is removed from here, by the id the list carries.
		await page.getByRole("button", { name: "Remove Ada's phone" }).click();
		await expect.poll(() => page.locator(".devices li").count(), { timeout: 10_000 }).toBe(0);
		const after = await fetch(`${base}/api/v1/notifications/push-subscriptions`, { headers: { authorization: `Bearer ${accessToken}` } });
		expect(await after.json()).toEqual({ items: [] });
		await context.close();
	});
});

/**
 * Reads the page's QR code the way a phone would: the SVG drawn onto a canvas in the page, its
 * pixels decoded by jsQR (a decoder that shares nothing with the encoder the console uses). The
 * page sends one grey byte a pixel, base64: an array of every RGBA value took this process (which
 * hosts the platform's nodes) long enough to make the gateway shed requests.
 */
async function scanQrCode(page: Page): Promise<string | undefined> {
	const side = 300;
	// Runs in the page (a string: the tests are type-checked without the DOM library).
	const grey = await page.evaluate<string>(`(async () => {
		const svg = document.querySelector('[data-testid="totp-qr"]');
		const image = new Image();
		image.src = "data:image/svg+xml;base64," + btoa(new XMLSerializer().serializeToString(svg));
		await image.decode();
		const canvas = document.createElement("canvas");
		canvas.width = canvas.height = ${side};
		const g = canvas.getContext("2d");
		g.drawImage(image, 0, 0, ${side}, ${side});
		const rgba = g.getImageData(0, 0, ${side}, ${side}).data;
		let bytes = "";
		for (let i = 0; i < rgba.length; i += 4) bytes += String.fromCharCode(rgba[i]);
		return btoa(bytes);
	})()`);
	const pixels = Buffer.from(grey, "base64");
	const rgba = new Uint8ClampedArray(pixels.length * 4);
	pixels.forEach((v, i) => rgba.fill(v, i * 4, i * 4 + 3).fill(255, i * 4 + 3, i * 4 + 4));
	// jsqr is CommonJS: its function is the module's default export.
	return jsQR.default(rgba, side, side)?.data;
}
