import { describe, expect, it } from "vitest";
import type { EventType } from "../../lib/events/catalog.ts";
import { safeId } from "../../services/notification/keys.ts";
import { alertIdFor, jobIdFor } from "../../services/notification/notifier.ts";
import { createTemplates, loadTemplateSources } from "../../services/notification/templates.ts";
import { InvalidEventDataError, LOCKED_CATEGORIES, WORKFLOWS, checkedLink, link, plannedChannels, workflowFor } from "../../services/notification/workflows.ts";
import type { Category, Channel } from "../../services/notification/workflows.ts";
import { SAMPLE_DATA } from "../support/notification-fixtures.ts";

const allOn = { enabled: () => true };

describe("notification workflows", () => {
	it("declare one workflow for every catalog event that notifies (all but user.deleted and user.updated)", () => {
		const types = Object.keys(SAMPLE_DATA).filter((t) => t !== "user.deleted" && t !== "user.updated").sort();
		expect(WORKFLOWS.map((w) => w.event).sort()).toEqual(types);
		expect(new Set(WORKFLOWS.map((w) => w.id)).size).toBe(WORKFLOWS.length);
		expect(workflowFor("user.deleted")).toBeUndefined();
		expect(workflowFor("user.updated")).toBeUndefined();
	});

	it("have the texts each of their channels needs in the default catalog", () => {
		const templates = createTemplates(loadTemplateSources());
		for (const w of WORKFLOWS) {
			if (w.channels.includes("email")) expect(templates.has(w.id, "email"), `${w.id} e-mail`).toBe(true);
			if (w.channels.includes("push") || w.channels.includes("in_app")) expect(templates.has(w.id, "alert"), `${w.id} alert`).toBe(true);
		}
	});

	it("send the e-mails the issue asks for, security ones in the locked category", () => {
		const emailed = Object.fromEntries(WORKFLOWS.filter((w) => w.channels.includes("email")).map((w) => [w.id, w.category]));
		expect(emailed).toEqual({
			welcome: "account",
			"verify-email": "security",
			"confirm-new-email": "security",
			"email-changed": "security",
			"mfa-enabled": "security",
			"mfa-disabled": "security",
			"mfa-recovery-codes": "security",
			"mfa-locked": "security",
			"passkey-added": "security",
			"passkey-removed": "security",
			"passkey-disabled": "security",
			"credit-note-issued": "billing",
			"credit-note-refund-failed": "billing",
			"password-reset": "security",
			"password-changed": "security",
			"trial-ending": "billing",
			"trial-ended": "billing",
			"invoice-paid": "billing",
			"payment-failed": "billing",
		});
		expect([...LOCKED_CATEGORIES]).toEqual(["security"]);
	});

	it("take links from the event for one-time tokens and build the others from the public URL", () => {
		const vars = (type: EventType, base = "https://app.example.com") => workflowFor(type)!.variables(SAMPLE_DATA[type], base);
		expect(vars("user.password_reset_requested").actionUrl).toBe("https://app.example.com/reset?token=xyz");
		expect(vars("user.email_verification_requested").actionUrl).toBe("https://app.example.com/verify?token=abc");
		expect(vars("user.created", "https://example.com/app/").actionUrl).toBe("https://example.com/app/");
		expect(vars("invoice.paid", "https://example.com/app").actionUrl).toBe("https://example.com/app/billing/invoices/in_1");
		expect(link("https://x.io", "billing", "invoices", "a/b?c")).toBe("https://x.io/billing/invoices/a%2Fb%3Fc");
	});

	it("refuse a link from an event that is not an absolute http(s) URL", () => {
		expect(() => checkedLink("javascript:alert(1)", "resetUrl")).toThrow(InvalidEventDataError);
		expect(() => checkedLink("/reset?token=1", "resetUrl")).toThrow(/not a URL/);
		const bad = { ...SAMPLE_DATA["user.password_reset_requested"], resetUrl: "data:text/html,hi" };
		expect(() => workflowFor("user.password_reset_requested")!.variables(bad as never, "https://x.io")).toThrow(/http\(s\)/);
	});

	it("plan the channels a user's switches allow, and every channel of a locked category", () => {
		const offFor = (category: Category, channel: Channel) => ({ enabled: (c: Category, ch: Channel) => !(c === category && ch === channel) });
		const trialEnding = workflowFor("subscription.trial_will_end")!;
		expect(plannedChannels(trialEnding, allOn)).toEqual(["email", "push", "in_app"]);
		expect(plannedChannels(trialEnding, offFor("billing", "email"))).toEqual(["push", "in_app"]);
		const passwordChanged = workflowFor("user.password_changed")!;
		expect(plannedChannels(passwordChanged, { enabled: () => false })).toEqual(["email", "push", "in_app"]);
	});

	it("derive job and alert ids from the event id: stable, without ':' and never an integer", () => {
		const id = "9b2f0f5e-4a59-4f0e-a1b4-6c3a4b0c2d11";
		expect(jobIdFor(id, "email")).toBe(`${id}.email`);
		expect(jobIdFor(id, "push", "dev1")).toBe(`${id}.push.dev1`);
		expect(alertIdFor(id, "welcome")).toBe(`${id}.welcome`);
		expect(safeId("urn:event:1")).toMatch(/^h-[A-Za-z0-9_-]{22}$/);
		expect(safeId("urn:event:1")).toBe(safeId("urn:event:1"));
		expect(safeId("12345")).toMatch(/^h-/);
		expect(jobIdFor("a:b", "email")).not.toContain(":");
	});
});
