/**
 * Paying, in Chromium against the whole platform: sign up -> welcome e-mail -> trial -> upgrade
 * through Stripe Checkout -> Stripe's webhooks -> the paid invoice listed and downloaded as PDF;
 * and a subscription billed here whose charge was declined: the console says it is past due, the
 * user pays the invoice again and the subscription is active. Stripe's hosted Checkout page is
 * answered by the test (no internet); everything else is the platform talking to stripe-mock
 * through a card network that succeeds or declines as scripted (test/support/stripe.ts).
 */
import { readFile } from "node:fs/promises";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runLifecycle } from "../../services/billing/lifecycle.ts";
import { chargeInvoice, createStripeClient } from "../../services/billing/stripe.ts";
import { startConsolePlatform } from "../support/console.ts";
import type { ConsolePlatform } from "../support/console.ts";
import { eventually, uniqueId } from "../support/infra.ts";
import { messagesTo } from "../support/mailpit.ts";
import { signed, startCardNetwork, stripeEvent, WEBHOOK_SECRET } from "../support/stripe.ts";

const DAY = 86_400_000;

describe("paying in the console", () => {
	let platform: ConsolePlatform;
	let network: Awaited<ReturnType<typeof startCardNetwork>>;
	let mongo: MongoClient;

	beforeAll(async () => {
		network = await startCardNetwork();
		platform = await startConsolePlatform("webpay", { STRIPE_API_BASE: network.url, STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET });
		mongo = new MongoClient(platform.env.MONGO_URL!, { retryWrites: false });
	});
	afterAll(async () => {
		await platform?.close();
		await mongo?.close();
		await network?.close();
	});

	/** What Stripe would POST to the webhook route, signed now. */
	async function stripeSends(type: string, object: Record<string, unknown>): Promise<void> {
		const { rawBody, signature } = signed(stripeEvent(type, object, Math.floor(Date.now() / 1000)), Math.floor(Date.now() / 1000));
		const res = await fetch(`${platform.base}/api/v1/billing/webhooks/stripe`, { method: "POST", headers: { "content-type": "application/json", "stripe-signature": signature }, body: rawBody });
		expect(res.status).toBe(200);
	}

	it("signs up, gets the welcome e-mail and a trial, upgrades through Checkout and downloads the paid invoice", async () => {
		const { base } = platform;
		const page = await platform.browser.newPage({ viewport: { width: 1100, height: 1000 }, acceptDownloads: true });
		const email = `${uniqueId("webpay")}@example.com`;
		platform.track(email);
		await page.goto(`${base}/#/signup`);
		await page.getByLabel("Name").fill("Katherine");
		await page.getByLabel("E-mail").fill(email);
		await page.getByLabel(/^Password/).fill("correct horse battery staple 42");
		await page.getByRole("button", { name: "Sign up" }).click();
		await page.getByRole("heading", { name: "Hello, Katherine" }).waitFor();
		await eventually(async () => (await messagesTo(email)).some((m) => /welcome/i.test(m.Subject)), 15_000, "the welcome e-mail");
		await expect.poll(async () => page.locator(".plan").textContent(), { timeout: 15_000 }).toMatch(/trialing.*14 days of trial left/);

		// Stripe's hosted page is not reachable here: the test plays it.
		await page.route(/^https:\/\/checkout\.stripe\.com\//, (route) => route.fulfill({ contentType: "text/html", body: "<title>Checkout</title><h1>Stripe Checkout (test double)</h1>" }));
		const me = await page.evaluate(() => JSON.parse(sessionStorage.getItem("backplane.session")!) as { accessToken: string });
		const account = (await (await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${me.accessToken}` } })).json()) as { id: string };
		await page.getByRole("button", { name: "Subscribe to Pro" }).click();
		await page.waitForURL(/checkout\.stripe\.com/);

		// The customer paid on Stripe's page; Stripe reports the checkout, the subscription and the invoice.
		const userId = account.id;
		const subscriptionId = `sub_${userId}`;
		const metadata = { userId, subscriptionId, planId: "pro", priceId: "pro-usd-month", quantity: "1" };
		const now = Math.floor(Date.now() / 1000);
		await stripeSends("checkout.session.completed", { id: "cs_web_1", object: "checkout.session", mode: "subscription", client_reference_id: userId, customer: "cus_web_1", subscription: "sub_web_1", metadata });
		await stripeSends("customer.subscription.updated", {
			id: "sub_web_1", object: "subscription", status: "active", customer: "cus_web_1", cancel_at_period_end: false, pause_collection: null, trial_end: null, metadata,
			items: { object: "list", data: [{ id: "si_web_1", object: "subscription_item", price: { id: "price_web" }, quantity: 1, current_period_start: now, current_period_end: now + 30 * 86_400 }] },
		});
		await stripeSends("invoice.paid", {
			id: "in_web_1", object: "invoice", status: "paid", customer: "cus_web_1", currency: "usd", subtotal: 2_900, total: 2_900, amount_paid: 2_900, hosted_invoice_url: "https://invoice.stripe.com/i/web",
			lines: { object: "list", data: [{ id: "il_web_1", description: "1 × Pro (at $29.00 / month)", amount: 2_900, quantity: 1, period: { start: now, end: now + 30 * 86_400 }, pricing: { unit_amount_decimal: "2900" } }] },
			parent: { type: "subscription_details", subscription_details: { subscription: "sub_web_1", metadata: { userId, subscriptionId } } },
			status_transitions: { paid_at: now },
		});

		await page.goto(`${base}/?checkout=success`);
		await expect.poll(async () => page.locator(".plan").textContent(), { timeout: 15_000 }).toMatch(/Pro.*active/);
		const row = page.getByRole("row", { name: /paid/ });
		await expect.poll(() => row.textContent(), { timeout: 15_000 }).toMatch(/\$29\.00/);
		await platform.shot(page, "console-billing-paid");
		const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: /as PDF/ }).click()]);
		expect(download.suggestedFilename()).toMatch(/^\d{4}-\d{6}\.pdf$/);
		expect((await readFile((await download.path()))).subarray(0, 5).toString()).toBe("%PDF-");
		await page.close();
	});

	it("shows a declined charge of an invoice we issued, and the user pays it again", async () => {
		const user = await platform.register("webdun");
		const db = mongo.db();
		await eventually(async () => (await db.collection("subscriptions").findOne({ userId: user.id })) ?? undefined, 15_000, "the trial");
		// A card on file (as the portal would attach one), then the trial ends and the first charge is declined:
		// one pass of the scheduler at that moment, as a billing node would run it.
		await db.collection("customers").updateOne({ _id: user.id as never }, { $set: { stripeCustomerId: "cus_123", paymentMethodOnFile: true } });
		const stripe = createStripeClient({ apiKey: "sk_test_123", apiBase: network.url });
		network.script.push("declined");
		const report = await runLifecycle(db, {
			now: new Date(Date.now() + 14 * DAY + 60_000), batchSize: 100, seller: { name: "Backplane" }, taxRates: [],
			collection: { dunning: { retryDays: [3, 5, 7], finalStatus: "canceled" }, charge: (input) => chargeInvoice(stripe, input) },
		});
		expect(report).toMatchObject({ trialEnded: 1, paymentsFailed: 1 });

		const page = await platform.browser.newPage({ viewport: { width: 1100, height: 1000 } });
		await platform.logIn(page, user.email);
		await expect.poll(async () => page.locator(".plan").textContent(), { timeout: 15_000 }).toMatch(/past_due/);
		await expect.poll(() => page.getByRole("status").filter({ hasText: "could not collect" }).count()).toBe(1);
		const row = page.getByRole("row", { name: /open/ });
		await expect.poll(() => row.textContent(), { timeout: 10_000 }).toMatch(/payment failed \(insufficient_funds\), next try/);
		await platform.shot(page, "console-billing-past-due");

		// The card was updated in the portal; the next charge goes through.
		await row.getByRole("button", { name: /^Pay invoice/ }).click();
		await expect.poll(async () => page.locator(".plan").textContent(), { timeout: 10_000 }).toMatch(/active/);
		await expect.poll(() => page.getByRole("row", { name: /paid/ }).count()).toBe(1);
		expect(await page.getByRole("status").filter({ hasText: "could not collect" }).count()).toBe(0);
		await platform.shot(page, "console-billing-paid-again");
		await page.close();
	});
});
