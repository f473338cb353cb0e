/**
 * Price models, as in Stripe Billing and Lago: flat (one amount per period), per seat (amount
 * times the subscription's quantity), tiered (graduated: each unit priced by the tier it falls
 * in; volume: all units at the tier the total reaches) and metered (usage in arrears, per unit or
 * tiered). Pure integer arithmetic on minor units.
 */
import { assertMinor, sumMinor } from "./money.ts";

export type Interval = "month" | "year";
export type PriceModel = "flat" | "per_seat" | "tiered" | "metered";

export interface Tier {
	/** Inclusive upper bound of units in this tier; null for the last, open-ended tier. */
	upTo: number | null;
	/** Per unit, minor units. */
	unitAmount: number;
	/** Once per tier reached, minor units. */
	flatAmount: number;
}

export interface Price {
	/** Unique within the catalog, e.g. "pro-usd-month". */
	id: string;
	currency: string;
	interval: Interval;
	model: PriceModel;
	/** flat: the period's amount; per_seat: per seat; metered without tiers: per unit. */
	unitAmount?: number;
	tiers?: Tier[];
	tiersMode?: "graduated" | "volume";
	/** The same price in Stripe (price_...), used for Checkout and subscription updates. */
	stripePriceId?: string | null;
}

/** The amount for one period at `quantity` (seats, or metered usage). */
export function priceAmount(price: Price, quantity: number): number {
	if (!Number.isSafeInteger(quantity) || quantity < 0) throw new RangeError(`quantity must be a non-negative integer, got ${quantity}`);
	switch (price.model) {
		case "flat":
			return assertMinor(price.unitAmount ?? 0);
		case "per_seat":
			return assertMinor((price.unitAmount ?? 0) * quantity);
		case "tiered":
		case "metered":
			return price.tiers?.length ? tieredAmount(price.tiers, price.tiersMode ?? "graduated", quantity) : assertMinor((price.unitAmount ?? 0) * quantity);
	}
}

function tieredAmount(tiers: Tier[], mode: "graduated" | "volume", quantity: number): number {
	if (mode === "volume") {
		const tier = tiers.find((t) => t.upTo === null || quantity <= t.upTo) ?? tiers[tiers.length - 1]!;
		return quantity === 0 ? 0 : assertMinor(tier.flatAmount + tier.unitAmount * quantity);
	}
	const parts: number[] = [];
	let lower = 0;
	for (const tier of tiers) {
		if (quantity <= lower) break;
		const upper = tier.upTo === null ? quantity : Math.min(quantity, tier.upTo);
		parts.push(tier.flatAmount + tier.unitAmount * (upper - lower));
		lower = upper;
	}
	return sumMinor(parts);
}

/**
 * What a period costs in advance at `quantity` seats: metered prices are billed in arrears from
 * usage, so they owe nothing up front (and are not prorated).
 */
export function licensedAmount(price: Price, quantity: number): number {
	return price.model === "metered" ? 0 : priceAmount(price, quantity);
}

/** Problems with a price's shape that a schema cannot express; empty when it is consistent. */
export function priceProblems(price: Price, field: string): { field: string; message: string }[] {
	const problems: { field: string; message: string }[] = [];
	const tiered = price.model === "tiered" || (price.model === "metered" && price.tiers?.length);
	if (!tiered && price.unitAmount === undefined) problems.push({ field: `${field}.unitAmount`, message: `is required for a ${price.model} price` });
	if (price.model === "tiered" && !price.tiers?.length) problems.push({ field: `${field}.tiers`, message: "a tiered price needs at least one tier" });
	if (tiered && price.tiers?.length) {
		price.tiers.forEach((tier, i) => {
			const last = i === price.tiers!.length - 1;
			if (last && tier.upTo !== null) problems.push({ field: `${field}.tiers[${i}].upTo`, message: "the last tier must be open-ended (null)" });
			if (!last && tier.upTo === null) problems.push({ field: `${field}.tiers[${i}].upTo`, message: "only the last tier may be open-ended" });
			const previous = i > 0 ? price.tiers![i - 1]!.upTo : 0;
			if (tier.upTo !== null && previous !== null && tier.upTo <= previous) problems.push({ field: `${field}.tiers[${i}].upTo`, message: "tiers must be in ascending order" });
		});
	}
	return problems;
}

/** Adds one billing interval, keeping the day of month where it exists (Jan 31 + 1 month = Feb 28/29). */
export function addInterval(from: Date, interval: Interval, count = 1): Date {
	const d = new Date(from.getTime());
	const day = d.getUTCDate();
	d.setUTCDate(1);
	if (interval === "month") d.setUTCMonth(d.getUTCMonth() + count);
	else d.setUTCFullYear(d.getUTCFullYear() + count);
	const lastDay = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
	d.setUTCDate(Math.min(day, lastDay));
	return d;
}
