/**
 * Proration of a plan change: to the second, integer minor units, half-up per line.
 */
import { describe, expect, it } from "vitest";
import { prorate } from "../../services/billing/proration.ts";

const start = new Date("2026-03-01T00:00:00Z");
const end = new Date("2026-03-31T00:00:00Z"); // 30 days
const day = 86_400_000;

describe("prorate", () => {
	it("credits the unused old time and charges the remaining new time, to the second", () => {
		const p = prorate({ oldAmount: 900, newAmount: 2_900, periodStart: start, periodEnd: end, at: new Date(start.getTime() + 10 * day) });
		// 20 of 30 days remain: 900 * 2/3 = 600, 2900 * 2/3 = 1933.33 -> 1933.
		expect(p).toMatchObject({ credit: 600, charge: 1_933, net: 1_333, remainingSeconds: 20 * 86_400, periodSeconds: 30 * 86_400 });
		expect(p.lines.map((l) => [l.kind, l.amount])).toEqual([["credit", -600], ["charge", 1_933]]);
		expect(Number.isInteger(p.net)).toBe(true);
	});

	it("rounds half up on each line separately", () => {
		// 1 of 2 seconds remains: 1/2 of 1 -> 0.5 -> 1; of 3 -> 1.5 -> 2.
		const p = prorate({ oldAmount: 1, newAmount: 3, periodStart: new Date(0), periodEnd: new Date(2_000), at: new Date(1_000) });
		expect(p).toMatchObject({ credit: 1, charge: 2, net: 1 });
	});

	it("gives a credit (negative net) on a downgrade", () => {
		const p = prorate({ oldAmount: 2_900, newAmount: 900, periodStart: start, periodEnd: end, at: new Date(start.getTime() + 15 * day) });
		expect(p).toMatchObject({ credit: 1_450, charge: 450, net: -1_000 });
	});

	it("charges nothing and credits nothing at the very end of the period, everything at its start", () => {
		expect(prorate({ oldAmount: 900, newAmount: 2_900, periodStart: start, periodEnd: end, at: end })).toMatchObject({ credit: 0, charge: 0, net: 0, lines: [] });
		expect(prorate({ oldAmount: 900, newAmount: 2_900, periodStart: start, periodEnd: end, at: start })).toMatchObject({ credit: 900, charge: 2_900, net: 2_000 });
	});

	it("clamps a change time outside the period into it", () => {
		expect(prorate({ oldAmount: 900, newAmount: 2_900, periodStart: start, periodEnd: end, at: new Date(end.getTime() + day) }).net).toBe(0);
	});

	it("charges the full new price for a new period when the interval changes", () => {
		const newPeriodEnd = new Date("2027-03-11T00:00:00Z");
		const p = prorate({ oldAmount: 900, newAmount: 9_000, periodStart: start, periodEnd: end, at: new Date(start.getTime() + 10 * day), newPeriodEnd });
		expect(p).toMatchObject({ credit: 600, charge: 9_000, net: 8_400 });
		expect(p.lines[1]).toMatchObject({ kind: "charge", amount: 9_000, periodEnd: newPeriodEnd });
	});

	it("stays exact for amounts far beyond float's integer precision in the product", () => {
		// 999,999,999,999 * 2,591,999 exceeds 2^53; BigInt keeps it exact.
		const p = prorate({ oldAmount: 0, newAmount: 999_999_999_999, periodStart: start, periodEnd: end, at: new Date(start.getTime() + 1_000) });
		expect(p.charge).toBe(999_999_614_197);
	});

	it("refuses non-integer money and an empty period", () => {
		expect(() => prorate({ oldAmount: 9.99, newAmount: 100, periodStart: start, periodEnd: end, at: start })).toThrow(/integer/);
		expect(() => prorate({ oldAmount: 1, newAmount: 1, periodStart: end, periodEnd: start, at: start })).toThrow(RangeError);
	});
});
