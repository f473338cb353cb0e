/**
 * The console's administration area in Chromium against the whole platform: only administrators
 * see it; an administrator finds a user, changes their roles (and is told why the last
 * administrator cannot step down), turns off the two-step login of a user who lost every factor,
 * refunds part of a user's paid invoice with a credit note,
 * ends their sessions, reads the roles, creates, edits and
 * archives a plan, and re-queues a failed push delivery. Screenshots go to test-results/screenshots/.
 */
import { MongoClient } from "mongodb";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConsolePlatform, JSON_HEADERS as json, PASSWORD as password } from "../support/console.ts";
import type { ConsolePlatform } from "../support/console.ts";
import { createBrowserSubscription } from "../support/push-service.ts";
import { eventually, uniqueId } from "../support/infra.ts";
import { messagesTo } from "../support/mailpit.ts";
import { signed, stripeEvent, WEBHOOK_SECRET } from "../support/stripe.ts";
import { totpCode } from "../support/totp.ts";

describe("console administration in Chromium", () => {
	let platform: ConsolePlatform;
	let base: string;
	let admin: { email: string; accessToken: string };
	let page: Page;

	const register = (prefix: string) => platform.register(prefix);
	const logIn = (p: Page, email: string) => platform.logIn(p, email);
	const shot = (p: Page, name: string) => platform.shot(p, name);
	const status = (p: Page) => p.getByRole("status").first().textContent();

	beforeAll(async () => {
		platform = await startConsolePlatform("webadm", { STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET });
		base = platform.base;
		const root = await register("root");
		await platform.nodes[0]!.call("auth.bootstrapAdmin", { email: root.email });
		const login = await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: json, body: JSON.stringify({ email: root.email, password }) });
		admin = { email: root.email, accessToken: ((await login.json()) as { accessToken: string }).accessToken };
		page = await platform.browser.newPage({ viewport: { width: 1200, height: 900 } });
		await logIn(page, admin.email);
	});
	afterAll(async () => {
		await platform?.close();
	});

	it("shows the administration only to administrators", async () => {
		const userPage = await platform.browser.newPage();
		const user = await register("plain");
		await logIn(userPage, user.email);
		expect(await userPage.getByRole("link", { name: "Administration" }).count()).toBe(0);
		await userPage.goto(`${base}/#/admin/users`);
		await userPage.getByRole("heading", { name: "Not available" }).waitFor();
		expect(await userPage.locator(".card").textContent()).toContain("users:read");
		await userPage.close();
		expect(await page.getByRole("link", { name: "Administration" }).count()).toBe(1);
	});

	it("finds a user, refuses to demote the last administrator, changes roles, turns off two-step login and ends sessions", async () => {
		const ada = await register("ada");
		// Ada has two-step login on (and, in this story, lost her phone and her recovery codes).
		const authed = { ...json, authorization: `Bearer ${ada.accessToken}` };
		const { secret } = (await (await fetch(`${base}/api/v1/auth/mfa/totp`, { method: "POST", headers: authed, body: JSON.stringify({ password }) })).json()) as { secret: string };
		expect((await fetch(`${base}/api/v1/auth/mfa/totp/confirm`, { method: "POST", headers: authed, body: JSON.stringify({ code: totpCode(secret) }) })).status).toBe(200);
		const adaLogin = () => fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: json, body: JSON.stringify({ email: ada.email, password }) });
		expect((await adaLogin()).status).toBe(403);
		await page.getByRole("link", { name: "Administration" }).click();
		await page.getByRole("heading", { name: "Users" }).waitFor();
		await expect.poll(() => page.locator("tbody tr").count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(2);

		// The only administrator cannot give up the role: the API's problem is shown as it is.
		await page.getByRole("button", { name: `Edit the roles of ${admin.email}` }).click();
		await page.getByRole("checkbox", { name: /^admin/ }).uncheck();
		await page.getByRole("button", { name: "Save roles" }).click();
		await expect.poll(() => page.getByRole("alert").textContent(), { timeout: 10_000 }).toContain("This would leave no administrator");
		await shot(page, "admin-roles-error");
		await page.getByRole("button", { name: `Edit the roles of ${admin.email}` }).click();

		// By keyboard: Enter in the search field submits it.
		await page.getByLabel("Find users").fill(ada.email.split("@")[0]!);
		await page.getByLabel("Find users").press("Enter");
		await expect.poll(() => page.locator("tbody tr").allTextContents(), { timeout: 10_000 }).toEqual([expect.stringContaining(ada.email)]);
		expect(await page.locator("tbody tr").first().locator("td").nth(4).textContent()).toBe("1");
		await page.getByRole("button", { name: `Edit the roles of ${ada.email}` }).click();
		await page.getByRole("checkbox", { name: /^admin/ }).check();
		await shot(page, "admin-users");
		await page.getByRole("button", { name: "Save roles" }).click();
		await expect.poll(() => status(page), { timeout: 10_000 }).toContain(`Roles of ${ada.email}: admin, user.`);
		const found = await fetch(`${base}/api/v1/auth/users?query=${ada.id}`, { headers: { authorization: `Bearer ${admin.accessToken}` } });
		expect(((await found.json()) as { items: { roles: string[] }[] }).items[0]!.roles).toEqual(["admin", "user"]);

		expect(await page.locator("tbody tr").first().locator("td").nth(5).textContent()).toBe("on");
		// It asks first.
		page.once("dialog", (dialog) => void dialog.accept());
		await page.getByRole("button", { name: `Turn off the two-step login of ${ada.email}` }).click();
		await expect.poll(() => status(page), { timeout: 10_000 }).toBe(`Two-step login of ${ada.email} is off and their sessions ended; they have been told by e-mail.`);
		expect(await page.locator("tbody tr").first().locator("td").nth(5).textContent()).toBe("off");
		expect((await adaLogin()).status).toBe(200);

		await page.getByRole("button", { name: `End every session of ${ada.email}` }).click();
		// The reset ended her sessions (one may be on the lost phone): the one the password alone just opened is left.
		await expect.poll(() => status(page), { timeout: 10_000 }).toBe(`1 session(s) of ${ada.email} ended.`);
		await eventually(async () => (await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${ada.accessToken}` } })).status === 401, 5_000, "ada's token to be refused");

		// On a phone the table scrolls sideways inside its card; the page itself does not.
		await page.setViewportSize({ width: 390, height: 844 });
		expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(390);
		await shot(page, "admin-users-mobile");
		await page.setViewportSize({ width: 1200, height: 900 });
	});

	it("shows a user's invoices and refunds part of a paid one with a credit note", async () => {
		const bea = await register("bea");
		const mongo = new MongoClient(platform.env.MONGO_URL!, { retryWrites: false });
		try {
			// A paid invoice of ours (its card payment's PaymentIntent is what stripe-mock refunds).
			await mongo.db().collection("invoices").insertOne({ _id: `in_web_${bea.id}` as never, number: "2026-000321", numberKey: `web-${bea.id}`, userId: bea.id, subscriptionId: null, status: "paid", currency: "usd", total: 4_200, amountPaid: 4_200, amountDue: 0, stripeInvoiceId: null, stripePaymentIntentId: "pi_3MtwBwLkdIwHu7ix28a3tqPa", createdAt: new Date(), lines: [], taxLines: [] });
			// Twenty older ones: more than the first page the console loads.
			await mongo.db().collection("invoices").insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: `in_old_${i}_${bea.id}` as never, number: `2025-${String(100 + i).padStart(6, "0")}`, numberKey: `old-${i}-${bea.id}`, userId: bea.id, subscriptionId: null, status: "paid", currency: "usd", total: 900, amountPaid: 900, amountDue: 0, stripeInvoiceId: null, stripePaymentIntentId: null, createdAt: new Date(Date.now() - (i + 1) * 86_400_000), lines: [], taxLines: [] })));
		} finally {
			await mongo.close();
		}
		await page.getByRole("link", { name: "Users" }).click();
		await page.getByLabel("Find users").fill(bea.email);
		await page.getByLabel("Find users").press("Enter");
		await page.getByRole("button", { name: `Invoices of ${bea.email}` }).click();
		const rows = page.getByRole("table", { name: `Invoices of ${bea.email}` }).locator("tbody tr");
		await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(20);
		await page.getByRole("button", { name: "Show more invoices" }).click();
		await expect.poll(() => rows.count()).toBe(21);
		expect(await page.getByRole("button", { name: "Show more invoices" }).count()).toBe(0);
		await page.getByRole("button", { name: "Refund on invoice 2026-000321" }).click();
		// Not a number: refused before anything is sent (never "all of it" by mistake).
		for (const typo of ["twelve", "Infinity", "12.345", "1,000.00"]) {
			await page.getByLabel(/^Amount to refund/).fill(typo);
			await page.getByRole("button", { name: "Refund to the card" }).click();
			await expect.poll(() => page.locator("#f-amount-error").textContent()).toContain("enter an amount like 12.50");
		}
		await page.getByLabel(/^Amount to refund/).fill("12.50");
		await page.getByLabel("Reason").selectOption("product_unsatisfactory");
		await page.getByLabel(/^Note for the records/).fill("two days of outage");
		await page.getByRole("button", { name: "Refund to the card" }).click();
		await expect.poll(() => status(page), { timeout: 10_000 }).toMatch(/^Credit note CN-\d{4}-\d{6} issued: \$12\.50 back to the card\.$/);
		await expect.poll(() => page.getByRole("table", { name: `Invoices of ${bea.email}` }).locator("tbody tr").first().locator("td").nth(3).textContent()).toBe("$12.50");
		await shot(page, "admin-refund");
		// The customer sees it on the invoice, without the administrator's note.
		const seen = (await (await fetch(`${base}/api/v1/billing/invoices/in_web_${bea.id}`, { headers: { authorization: `Bearer ${bea.accessToken}` } })).json()) as { amountCredited: number; creditNotes: Record<string, unknown>[] };
		expect(seen.amountCredited).toBe(1_250);
		expect(seen.creditNotes[0]).toMatchObject({ amount: 1_250, reason: "product_unsatisfactory", status: "issued" });
		expect(seen.creditNotes[0]).not.toHaveProperty("memo");

		// A week later the bank sends the refund back (Stripe's signed refund.failed, through the gateway).
		const mongo2 = new MongoClient(platform.env.MONGO_URL!, { retryWrites: false });
		let note: { _id: string; refundId: string };
		try {
			note = (await mongo2.db().collection<{ _id: string; refundId: string }>("credit_notes").findOne({ invoiceId: `in_web_${bea.id}` }))!;
		} finally {
			await mongo2.close();
		}
		const event = stripeEvent("refund.failed", { id: note.refundId, object: "refund", amount: 1_250, status: "failed", failure_reason: "expired_or_canceled_card", metadata: { creditNoteId: note._id } }, Math.floor(Date.now() / 1000));
		const body = signed(event, Math.floor(Date.now() / 1000));
		const hook = await fetch(`${base}/api/v1/billing/webhooks/stripe`, { method: "POST", headers: { "content-type": "application/json", "stripe-signature": body.signature }, body: body.rawBody });
		expect(hook.status).toBe(200);
		await page.getByRole("button", { name: `Invoices of ${bea.email}` }).click();
		await page.getByRole("button", { name: `Invoices of ${bea.email}` }).click();
		await expect.poll(() => page.getByTestId("refund-returned").textContent(), { timeout: 10_000 }).toBe(" ($12.50 refund came back: still owed)");
		// All of it can be given back again: the form offers the whole $42.00, not the $29.50 left before.
		await page.getByRole("button", { name: "Refund on invoice 2026-000321" }).click();
		await expect.poll(() => page.locator('label[for="f-amount"]').textContent()).toBe("Amount to refund (up to $42.00; empty: all of it)");
		const after = (await (await fetch(`${base}/api/v1/billing/invoices/in_web_${bea.id}`, { headers: { authorization: `Bearer ${bea.accessToken}` } })).json()) as { amountCredited: number; creditNotes: Record<string, unknown>[] };
		expect(after).toMatchObject({ amountCredited: 0, creditNotes: [{ status: "reversed", amount: 1_250 }] });
		// The customer, told the money was on its way, is told it is not.
		await eventually(async () => (await messagesTo(bea.email)).some((m) => m.Subject === "Your refund of $12.50 did not reach your card"), 15_000, "the refund-failed e-mail");
	});

	it("lists the roles with their permissions", async () => {
		await page.getByRole("link", { name: "Roles" }).click();
		await page.getByRole("heading", { name: "Roles" }).waitFor();
		await expect.poll(() => page.locator("tbody th").allTextContents(), { timeout: 10_000 }).toEqual(["admin", "user"]);
		expect(await page.locator("tbody tr").first().textContent()).toContain("billing:admin");
		await shot(page, "admin-roles");
	});

	it("creates a plan (after explaining what is wrong), edits and archives it", async () => {
		const id = uniqueId("team-");
		await page.getByRole("link", { name: "Plans" }).click();
		await page.getByRole("heading", { name: "Plans" }).waitFor();
		await expect.poll(() => page.locator("tbody tr").count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(4);
		await shot(page, "admin-plans");

		await page.getByRole("button", { name: "New plan" }).click();
		await page.getByLabel("Plan id").fill(id);
		await page.getByLabel("Name", { exact: true }).fill("Team");
		await page.getByLabel("Features, one per line").fill("5 projects\nShared billing");
		await page.getByLabel("Prices (JSON)").fill(JSON.stringify([{ id: `${id}-usd-month`, currency: "usd", interval: "month", model: "flat", unitAmount: -5 }]));
		await page.getByRole("button", { name: "Save plan" }).click();
		await expect.poll(() => page.getByRole("alert").textContent(), { timeout: 10_000 }).toContain("prices[0].unitAmount");
		expect(await page.locator("#f-prices-error").textContent()).toContain("prices[0].unitAmount");
		await shot(page, "admin-plan-error");

		await page.getByLabel("Prices (JSON)").fill(JSON.stringify([{ id: `${id}-usd-month`, currency: "usd", interval: "month", model: "flat", unitAmount: 4900 }]));
		await page.getByRole("button", { name: "Save plan" }).click();
		await expect.poll(() => status(page), { timeout: 10_000 }).toBe("Team saved.");
		await expect.poll(() => page.getByRole("row", { name: new RegExp(id) }).textContent()).toMatch(/\$49\.00 \/ month.*offered/);

		await page.getByRole("button", { name: "Edit Team" }).click();
		await page.getByLabel("Name", { exact: true }).fill("Team Plus");
		await page.getByRole("button", { name: "Save plan" }).click();
		await expect.poll(() => status(page), { timeout: 10_000 }).toBe("Team Plus saved.");

		await page.getByRole("button", { name: "Archive Team Plus" }).click();
		await expect.poll(() => page.getByRole("row", { name: new RegExp(id) }).textContent(), { timeout: 10_000 }).toContain("archived");
		const catalog = (await (await fetch(`${base}/api/v1/billing/plans`)).json()) as { plans: { id: string }[] };
		expect(catalog.plans.map((p) => p.id)).not.toContain(id);
		const all = (await (await fetch(`${base}/api/v1/billing/admin/plans`, { headers: { authorization: `Bearer ${admin.accessToken}` } })).json()) as { plans: { id: string; name: string; features: string[] }[] };
		expect(all.plans.find((p) => p.id === id)).toMatchObject({ name: "Team Plus", features: ["5 projects", "Shared billing"] });
	});

	it("lists a push delivery the provider refused and re-queues it", async () => {
		const bob = await register("bob");
		const device = `${bob.id}-phone`;
		const phone = createBrowserSubscription(platform.pushService.endpoint(device));
		const add = await fetch(`${base}/api/v1/notifications/push-subscriptions`, { method: "POST", headers: { ...json, authorization: `Bearer ${bob.accessToken}` }, body: JSON.stringify({ ...phone.subscription, deviceName: "Bob's phone" }) });
		expect(add.status).toBe(201);
		platform.pushService.respondWith(device, 400);
		// A password change is pushed to every device; this one refuses it, which is never retried.
		const change = await fetch(`${base}/api/v1/auth/password/change`, { method: "POST", headers: { ...json, authorization: `Bearer ${bob.accessToken}` }, body: JSON.stringify({ currentPassword: password, newPassword: `${password}!`, keepOtherSessions: true }) });
		expect(change.status).toBe(204);
		const failedFor = async () => {
			const res = await fetch(`${base}/api/v1/notifications/admin/failed?channel=push`, { headers: { authorization: `Bearer ${admin.accessToken}` } });
			return ((await res.json()) as { items: { data: { userId: string } }[] }).items.filter((j) => j.data.userId === bob.id);
		};
		await eventually(async () => (await failedFor()).length === 1, 15_000, "the failed push job");

		await page.getByRole("link", { name: "Dead letters" }).click();
		await page.getByRole("heading", { name: "Dead letters" }).waitFor();
		await page.getByLabel("Channel").selectOption("push");
		const row = page.getByRole("row", { name: new RegExp(bob.id) });
		await expect.poll(() => row.textContent(), { timeout: 10_000 }).toMatch(/user\.password_changed.*refused the message \(400\)/);
		await shot(page, "admin-dead-letters");

		platform.pushService.respondWith(device, 201);
		await page.getByRole("button", { name: `Re-queue the user.password_changed job of ${bob.id}` }).click();
		await expect.poll(() => status(page), { timeout: 10_000 }).toContain("1 job(s) re-queued");
		await eventually(async () => platform.pushService.for(device).some((r) => r.status === 201), 10_000, "the re-queued push");
		const message = JSON.parse(phone.decrypt(platform.pushService.for(device).find((r) => r.status === 201)!.body).toString()) as { title: string };
		expect(message.title).toMatch(/password/i);
		expect(await failedFor()).toEqual([]);
	});
});
