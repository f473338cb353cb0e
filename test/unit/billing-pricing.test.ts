/**
 * Money and price models: integer minor units everywhere, exact formatting, plan validation.
 */
import { describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors.ts";
import { applyBps, formatMoney, mulDiv, toDecimalString } from "../../services/billing/money.ts";
import { validatePlan } from "../../services/billing/plans.ts";
import { addInterval, priceAmount } from "../../services/billing/pricing.ts";
import type { Price } from "../../services/billing/pricing.ts";
import { taxLinesFor, totals } from "../../services/billing/invoices.ts";

const base = { id: "p", currency: "usd", interval: "month" } as const;

describe("money", () => {
	it("multiplies and divides exactly with half-up rounding, also for negatives", () => {
		expect(mulDiv(7_466, 2_000, 10_000)).toBe(1_493);
		expect(mulDiv(5, 1, 2)).toBe(3);
		expect(mulDiv(-5, 1, 2)).toBe(-3);
		expect(applyBps(1_000, 825)).toBe(83); // 82.5 -> 83
	});

	it("formats from the integer without floating point", () => {
		expect(toDecimalString(123_456, "usd")).toBe("1234.56");
		expect(toDecimalString(-5, "usd")).toBe("-0.05");
		expect(toDecimalString(1_500, "jpy")).toBe("1500");
		expect(toDecimalString(1_234, "kwd")).toBe("1.234");
		expect(formatMoney(123_456, "usd")).toBe("$1,234.56");
		// 2^53 + 1 minor units is not representable as a float of dollars; the string path is exact.
		expect(formatMoney(900_719_925_474_099, "usd")).toBe("$9,007,199,254,740.99");
	});

	it("computes invoice totals and tax lines in minor units", () => {
		const lines = [
			{ description: "Pro x3", quantity: 3, unitAmount: 2_900, amount: 8_700, periodStart: null, periodEnd: null, proration: false },
			{ description: "Credit", quantity: 1, unitAmount: -1_234, amount: -1_234, periodStart: null, periodEnd: null, proration: true },
		];
		const taxLines = taxLinesFor(7_466, [{ name: "VAT", rateBps: 2_000 }]);
		expect(taxLines).toEqual([{ name: "VAT", rateBps: 2_000, taxableAmount: 7_466, amount: 1_493 }]);
		expect(totals(lines, 0, taxLines)).toEqual({ subtotal: 7_466, discount: 0, tax: 1_493, total: 8_959 });
		expect(taxLinesFor(0, [{ name: "VAT", rateBps: 2_000 }])).toEqual([]);
	});
});

describe("price models", () => {
	it("prices flat, per seat and metered per unit", () => {
		expect(priceAmount({ ...base, model: "flat", unitAmount: 900 }, 7)).toBe(900);
		expect(priceAmount({ ...base, model: "per_seat", unitAmount: 2_900 }, 3)).toBe(8_700);
		expect(priceAmount({ ...base, model: "metered", unitAmount: 2 }, 1_500)).toBe(3_000);
	});

	const tiers = [{ upTo: 10, unitAmount: 0, flatAmount: 4_900 }, { upTo: 100, unitAmount: 200, flatAmount: 0 }, { upTo: null, unitAmount: 100, flatAmount: 0 }];
	it("prices graduated tiers unit by unit", () => {
		const price: Price = { ...base, model: "tiered", tiersMode: "graduated", tiers };
		expect(priceAmount(price, 0)).toBe(0);
		expect(priceAmount(price, 5)).toBe(4_900);
		expect(priceAmount(price, 15)).toBe(4_900 + 5 * 200);
		expect(priceAmount(price, 150)).toBe(4_900 + 90 * 200 + 50 * 100);
	});

	it("prices volume tiers at the tier the total reaches", () => {
		const price: Price = { ...base, model: "tiered", tiersMode: "volume", tiers };
		expect(priceAmount(price, 15)).toBe(15 * 200);
		expect(priceAmount(price, 150)).toBe(150 * 100);
		expect(priceAmount(price, 10)).toBe(4_900);
	});

	it("adds months keeping the day where it exists", () => {
		expect(addInterval(new Date("2026-01-31T10:00:00Z"), "month").toISOString()).toBe("2026-02-28T10:00:00.000Z");
		expect(addInterval(new Date("2028-02-29T00:00:00Z"), "year").toISOString()).toBe("2029-02-28T00:00:00.000Z");
		expect(addInterval(new Date("2026-03-15T00:00:00Z"), "month").toISOString()).toBe("2026-04-15T00:00:00.000Z");
	});
});

describe("plan validation", () => {
	const plan = { id: "team", name: "Team", prices: [{ id: "team-usd-month", currency: "usd", interval: "month", model: "per_seat", unitAmount: 1_500 }] };

	it("fills defaults for a valid plan", () => {
		expect(validatePlan(plan)).toMatchObject({ id: "team", active: true, features: [], trialDays: null, trialEndBehavior: "pause" });
	});

	it("names every bad field: float money, unknown model, bad tiers, missing amounts", () => {
		const bad = {
			...plan,
			prices: [
				{ id: "a", currency: "usd", interval: "month", model: "flat", unitAmount: 9.99 },
				{ id: "b", currency: "USD", interval: "week", model: "tiered", tiers: [{ upTo: 10, unitAmount: 1 }] },
			],
		};
		try {
			validatePlan(bad);
			expect.unreachable();
		} catch (err) {
			expect(err).toBeInstanceOf(AppError);
			const fields = ((err as AppError).data!.errors as { field: string }[]).map((e) => e.field);
			expect(fields).toEqual(expect.arrayContaining(["prices[0].unitAmount", "prices[1].currency", "prices[1].interval"]));
		}
		expect(() => validatePlan({ ...plan, prices: [{ id: "t", currency: "usd", interval: "month", model: "tiered", tiers: [{ upTo: 10, unitAmount: 1 }] }] })).toThrow(AppError);
		expect(() => validatePlan({ ...plan, prices: [{ id: "f", currency: "usd", interval: "month", model: "flat" }] })).toThrow(AppError);
		expect(() => validatePlan({ ...plan, trialEndBehavior: "downgrade" })).toThrow(AppError);
	});
});
