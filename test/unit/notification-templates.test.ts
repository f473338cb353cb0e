import { describe, expect, it } from "vitest";
import type { EventType } from "../../lib/events/catalog.ts";
import { createTemplates, loadTemplateSources } from "../../services/notification/templates.ts";
import type { LocaleCatalog } from "../../services/notification/templates.ts";
import { LOCKED_CATEGORIES, WORKFLOWS } from "../../services/notification/workflows.ts";
import { SAMPLE_DATA } from "../support/notification-fixtures.ts";

const PUBLIC_URL = "https://app.example.com";
const sources = loadTemplateSources();
const templates = createTemplates(sources);
const options = (locked: boolean) => ({ locked, preferencesUrl: `${PUBLIC_URL}/settings/notifications` });
const varsOf = (event: EventType): Record<string, unknown> => ({ name: "Ada", ...WORKFLOWS.find((w) => w.event === event)!.variables(SAMPLE_DATA[event], PUBLIC_URL) });

describe("notification templates", () => {
	for (const workflow of WORKFLOWS.filter((w) => w.channels.includes("email"))) {
		it(`render the ${workflow.id} e-mail with an HTML and a text part sharing the layout and the link`, () => {
			const vars = varsOf(workflow.event);
			const mail = templates.email(workflow.id, vars, options(LOCKED_CATEGORIES.has(workflow.category)));
			expect(mail.subject.length).toBeGreaterThan(5);
			expect(mail.subject).not.toMatch(/\n/);
			for (const part of [mail.subject, mail.html, mail.text]) expect(part).not.toMatch(/undefined|\[object|NaN|\{\{/);
			expect(mail.html).toMatch(/^<!doctype html>/);
			expect(mail.html).toContain(`href="${String(vars.actionUrl).replaceAll("=", "&#x3D;")}"`);
			expect(mail.text).toContain(String(vars.actionUrl));
			expect(mail.text).toContain("You receive this e-mail because you have an account at Backplane.");
			expect(mail.html).not.toMatch(/<(?!\/?(html|head|meta|title|body|span|table|tr|td|h1|a|br)\b)[a-z]/i);
		});
	}

	it("write the security notice on locked mails and the preferences link on the others", () => {
		const reset = templates.email("password-reset", varsOf("user.password_reset_requested"), options(true));
		expect(reset.text).toMatch(/security notice/);
		expect(reset.text).not.toContain("/settings/notifications");
		const paid = templates.email("invoice-paid", varsOf("invoice.paid"), options(false));
		expect(paid.text).toContain(`Notification preferences: ${PUBLIC_URL}/settings/notifications`);
		expect(paid.text).not.toMatch(/security notice/);
	});

	it("escape variables in the HTML part only", () => {
		const mail = templates.email("welcome", { name: `<img src=x onerror="1">`, actionUrl: PUBLIC_URL }, options(false));
		expect(mail.html).toContain("Welcome, &lt;img src&#x3D;x onerror&#x3D;&quot;1&quot;&gt;!");
		expect(mail.html).not.toContain("<img");
		expect(mail.text).toContain(`Welcome, <img src=x onerror="1">!`);
	});

	it("format money in the currency's minor unit and dates in UTC, in the message's locale", () => {
		expect(templates.email("invoice-paid", { ...varsOf("invoice.paid"), total: 1999, currency: "usd" }, options(false)).text).toContain("$19.99");
		expect(templates.alert("invoice-created", { invoiceNumber: "N", total: 500, currency: "jpy" }).body).toBe("An invoice of ¥500 was issued.");
		expect(templates.alert("trial-ending", { planId: "pro", trialEnd: "2026-12-01T00:00:00.000Z" }).body).toBe("Your trial of the pro plan ends on December 1, 2026.");
		const failed = templates.email("payment-failed", { ...varsOf("invoice.payment_failed"), nextPaymentAttempt: null }, options(false));
		expect(failed.text).not.toContain("We will try again");
	});

	it("name neither the new address nor a way back to a previous address that was never verified", () => {
		const workflow = WORKFLOWS.find((w) => w.id === "email-changed")!;
		const unverified = { ...SAMPLE_DATA["user.email_changed"], previousEmailVerified: false, revertUrl: null };
		const mail = templates.email("email-changed", { name: "Ada", ...workflow.variables(unverified, PUBLIC_URL) }, options(true));
		expect(mail.text).not.toContain(unverified.email);
		expect(mail.text).not.toContain("revert-email");
		expect(mail.text).toContain("was never confirmed");
		const verified = templates.email("email-changed", { name: "Ada", ...workflow.variables(SAMPLE_DATA["user.email_changed"], PUBLIC_URL) }, options(true));
		expect(verified.text).toContain(SAMPLE_DATA["user.email_changed"].email);
	});

	it("tell a subscriber in dunning what the status means", () => {
		const alert = (status: string) => templates.alert("subscription-updated", { planId: "pro", status, cancelAtPeriodEnd: false, currentPeriodEnd: "2026-12-01T00:00:00.000Z" }).body;
		expect(alert("past_due")).toBe("Your pro plan is past due: we could not collect the last payment.");
		expect(alert("unpaid")).toBe("Your pro plan is unpaid: pay the open invoice to keep using it.");
		expect(alert("active")).toBe("You are on the pro plan.");
		const ended = (status: string, planId = "pro") => templates.alert("trial-ended", { planId, status, product: "Backplane" }).body;
		expect(ended("active")).toBe("You are on the pro plan now.");
		expect(ended("active", "free")).toBe("You are on the free plan now.");
		expect(ended("paused")).toBe("Your pro plan is paused until you add a payment method.");
		expect(ended("canceled")).toBe("Choose a plan to keep using Backplane.");
	});

	it("say why a refund came back, in words, and that the money was not lost", () => {
		const text = (failureReason: string) => templates.email("credit-note-refund-failed", { ...varsOf("credit_note.refund_failed"), failureReason }, options(false)).text;
		expect(text("expired_or_canceled_card")).toContain("was sent back to us: the card that paid has expired or was canceled.");
		expect(text("lost_or_stolen_card")).toContain("the card that paid was reported lost or stolen.");
		expect(text("canceled")).toContain("the refund was canceled before it was paid out.");
		expect(text("declined")).toContain("your bank did not accept it.");
		expect(text("declined")).toContain("€15.00");
		expect(text("declined")).toContain("The money has not left us.");
	});

	it("tell a user whose passkeys went with an administrator's reset, and send a new passkey's owner to their passkeys", () => {
		const reset = (passkeysRemoved: number) => templates.email("mfa-disabled", { ...varsOf("user.mfa_disabled"), byAdministrator: true, passkeysRemoved }, options(true)).text;
		expect(reset(2)).toContain("Your passkeys (2) were removed too");
		expect(reset(0)).not.toContain("passkey");
		const added = templates.email("passkey-added", varsOf("user.passkey_added"), options(true));
		expect(added.text).toContain(`Review your passkeys:\n${PUBLIC_URL}/`);
		expect(added.text).toContain("A password reset alone does not remove a passkey.");
	});

	it("render alert texts on one line without escaping", () => {
		expect(templates.alert("welcome", { name: "Ada & Co" })).toEqual({ title: "Welcome to Backplane", body: "Hi Ada & Co, your account is ready." });
		expect(templates.alert("welcome", { name: null }).body).toBe("Your account is ready.");
	});

	it("refuse to render a text whose variable the workflow does not provide", () => {
		expect(() => templates.alert("invoice-paid", { total: 1, currency: "usd" })).toThrow(/invoiceNumber/);
		expect(() => templates.email("nope", {}, options(false))).toThrow(/no email text for "nope"/);
	});

	it("pick a user's locale, its language, or the default, and fall back per message", () => {
		const de: LocaleCatalog = {
			product: "Backplane",
			layout: { footer: "Sie haben ein Konto bei {{product}}.", preferences: "Einstellungen", securityNotice: "Sicherheitshinweis.", actionFallback: "Link:" },
			messages: { welcome: { alert: { title: "Willkommen bei {{product}}", body: "Hallo {{name}}." } } },
		};
		const both = createTemplates({ ...sources, catalogs: { ...sources.catalogs, de } });
		expect(both.locales.sort()).toEqual(["de", "en"]);
		expect(both.resolveLocale("de-AT")).toBe("de");
		expect(both.resolveLocale("fr")).toBe("en");
		expect(both.resolveLocale(null)).toBe("en");
		expect(both.alert("welcome", { name: "Ada" }, "de-AT")).toEqual({ title: "Willkommen bei Backplane", body: "Hallo Ada." });
		expect(both.alert("trial-ended", {}, "de").title).toBe("Your trial has ended");
		expect(() => createTemplates({ ...sources, catalogs: { de } })).toThrow(/default locale/);
	});
});
