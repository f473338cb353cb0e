/**
 * The subscription status model: one transition table, enforced for every change.
 */
import { describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors.ts";
import { assertOperation, assertTransition, canTransition, fromStripeStatus, SUBSCRIPTION_STATUSES, TRANSITIONS } from "../../services/billing/status.ts";

describe("subscription transitions", () => {
	it("covers every status, and every target is a known status", () => {
		expect(Object.keys(TRANSITIONS).sort()).toEqual([...SUBSCRIPTION_STATUSES].sort());
		for (const targets of Object.values(TRANSITIONS)) for (const t of targets) expect(SUBSCRIPTION_STATUSES).toContain(t);
	});

	it("allows the Stripe lifecycle paths", () => {
		const paths: [string, string][] = [["trialing", "active"], ["trialing", "paused"], ["trialing", "canceled"], ["trialing", "past_due"], ["incomplete", "active"], ["active", "past_due"], ["past_due", "active"], ["past_due", "unpaid"], ["unpaid", "active"], ["paused", "active"], ["active", "canceled"]];
		for (const [from, to] of paths) expect(canTransition(from as never, to as never), `${from} -> ${to}`).toBe(true);
	});

	it("makes canceled final and refuses backwards moves", () => {
		for (const to of SUBSCRIPTION_STATUSES) expect(canTransition("canceled", to)).toBe(false);
		expect(canTransition("active", "trialing")).toBe(false);
		expect(canTransition("active", "incomplete")).toBe(false);
		expect(canTransition("paused", "past_due")).toBe(false);
	});

	it("lets a live subscription stay where it is (plan change, renewal)", () => {
		for (const s of SUBSCRIPTION_STATUSES.filter((s) => s !== "canceled")) expect(canTransition(s, s)).toBe(true);
	});

	it("throws a 409 AppError naming both ends", () => {
		try {
			assertTransition("canceled", "active");
			expect.unreachable();
		} catch (err) {
			expect(err).toBeInstanceOf(AppError);
			expect(err).toMatchObject({ code: 409, type: "INVALID_STATUS_TRANSITION", data: { from: "canceled", to: "active" } });
		}
	});

	it("allows user operations only in the right statuses", () => {
		expect(() => assertOperation("changePlan", "trialing")).not.toThrow();
		expect(() => assertOperation("changePlan", "canceled")).toThrow(expect.objectContaining({ code: 409, type: "SUBSCRIPTION_STATE_CONFLICT" }) as Error);
		expect(() => assertOperation("pause", "trialing")).toThrow(AppError);
		expect(() => assertOperation("cancel", "canceled")).toThrow(AppError);
	});

	it("maps Stripe statuses, ending incomplete_expired", () => {
		expect(fromStripeStatus("past_due")).toBe("past_due");
		expect(fromStripeStatus("incomplete_expired")).toBe("canceled");
		expect(fromStripeStatus("something_new")).toBeUndefined();
	});
});
