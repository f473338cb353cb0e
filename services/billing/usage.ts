/**
 * Metered usage, billed in arrears (as Stripe's meters and Lago's billable metrics): the user's
 * application reports units as they are used, each report once by its idempotency key, and the
 * period's invoice prices the period's total with the subscription's metered price.
 *
 * No report is billed twice or lost at a period's end without transactions: a report is
 * accepted only into the subscription's current period, checked again after it is stored (a
 * renewal that slipped in between makes it refused and removed), and the period's usage line is
 * computed when its invoice is finalized, which is after the renewal is committed.
 */
import type { Db } from "mongodb";
import { AppError, badRequest } from "../../lib/errors.ts";
import { invoices, replaceMeteredLine } from "./invoices.ts";
import { findPriceById, getPlan } from "./plans.ts";
import { priceAmount } from "./pricing.ts";
import type { Price } from "./pricing.ts";
import { isDuplicateKey } from "./store.ts";
import { liveSubscription, subscriptions } from "./subscriptions.ts";
import type { Subscription } from "./subscriptions.ts";

export interface UsageRecord {
	/** `<subscription id>:<idempotency key>`: a retried report finds the first one. */
	_id: string;
	userId: string;
	subscriptionId: string;
	quantity: number;
	timestamp: Date;
	createdAt: Date;
}

export const usageRecords = (db: Db) => db.collection<UsageRecord>("usage_records");

/** Statuses in which usage is recorded (and later billed). */
const METERING_STATUSES = ["active", "past_due"] as const;
/** A report may be stamped this far ahead of the server's clock (clients' clocks drift). */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export interface UsageInput {
	userId: string;
	quantity: number;
	idempotencyKey: string;
	/** When the units were used; now when absent. Must fall in the current period. */
	timestamp?: Date;
}

async function meteredSubscription(db: Db, userId: string): Promise<{ sub: Subscription; price: Price }> {
	const sub = await liveSubscription(db, userId);
	const price = findPriceById(await getPlan(db, sub.planId), sub.priceId);
	if (price.model !== "metered") throw new AppError(409, "PRICE_NOT_METERED", `The subscription's price ${price.id} is not metered; usage is not billed on it.`);
	return { sub, price };
}

/** Records one usage report; the same idempotency key again returns the first report unchanged. */
export async function recordUsage(db: Db, input: UsageInput, now: Date): Promise<{ record: UsageRecord; duplicate: boolean }> {
	const { sub } = await meteredSubscription(db, input.userId);
	const id = `${sub._id}:${input.idempotencyKey}`;
	const existing = await usageRecords(db).findOne({ _id: id });
	if (existing) return { record: existing, duplicate: true };
	if (!(METERING_STATUSES as readonly string[]).includes(sub.status)) throw new AppError(409, "SUBSCRIPTION_NOT_METERING", `Usage is not recorded while the subscription is ${sub.status}.`);
	const timestamp = input.timestamp ?? now;
	const outOfPeriod = () => badRequest("The usage timestamp must fall in the current billing period.", [{ field: "timestamp", message: `must be between ${sub.currentPeriodStart.toISOString()} and now` }]);
	if (timestamp < sub.currentPeriodStart || timestamp.getTime() > now.getTime() + MAX_CLOCK_SKEW_MS) throw outOfPeriod();

	const record: UsageRecord = { _id: id, userId: input.userId, subscriptionId: sub._id, quantity: input.quantity, timestamp, createdAt: now };
	try {
		await usageRecords(db).insertOne(record);
	} catch (err) {
		if (!isDuplicateKey(err)) throw err;
		return { record: (await usageRecords(db).findOne({ _id: id }))!, duplicate: true };
	}
	// The period may have been closed (and its usage summed) since we read it: then this report is not in it.
	const after = await subscriptions(db).findOne({ _id: sub._id }, { projection: { currentPeriodStart: 1 } });
	if (!after || timestamp < after.currentPeriodStart) {
		await usageRecords(db).deleteOne({ _id: id });
		throw outOfPeriod();
	}
	return { record, duplicate: false };
}

/** Units reported for a subscription in [start, end). */
export async function usageTotal(db: Db, subscriptionId: string, start: Date, end: Date): Promise<number> {
	const [row] = await usageRecords(db)
		.aggregate<{ total: number }>([{ $match: { subscriptionId, timestamp: { $gte: start, $lt: end } } }, { $group: { _id: null, total: { $sum: "$quantity" } } }])
		.toArray();
	return row?.total ?? 0;
}

/** The user's usage in the current period and what it costs so far (minor units). */
export async function currentUsage(db: Db, userId: string, now: Date) {
	const { sub, price } = await meteredSubscription(db, userId);
	const quantity = await usageTotal(db, sub._id, sub.currentPeriodStart, new Date(now.getTime() + MAX_CLOCK_SKEW_MS + 1));
	return { subscriptionId: sub._id, priceId: price.id, periodStart: sub.currentPeriodStart.toISOString(), periodEnd: sub.currentPeriodEnd.toISOString(), quantity, amount: priceAmount(price, quantity), currency: price.currency };
}

/**
 * Prices the metered period of a draft from the usage reported in it and puts the line on the
 * draft. Called right before the draft is finalized, which is after the renewal that closed the
 * period was committed: a report accepted into the period is stored by then.
 */
export async function settleUsage(db: Db, invoiceId: string, taxRates: { name: string; rateBps: number }[], now: Date): Promise<void> {
	const draft = await invoices(db).findOne({ _id: invoiceId, status: "draft" }, { projection: { usagePeriod: 1 } });
	const period = draft?.usagePeriod;
	if (!period) return;
	const price = findPriceById(await getPlan(db, period.planId), period.priceId);
	const quantity = await usageTotal(db, period.subscriptionId, period.start, period.end);
	const amount = priceAmount(price, quantity);
	// Tiers may leave no single unit price: then the line is one item of the total, units in its description.
	const perUnit = quantity > 0 && amount % quantity === 0;
	const line = { description: `Usage (${quantity} units)`, quantity: perUnit ? quantity : 1, unitAmount: perUnit ? amount / quantity : amount, amount };
	await replaceMeteredLine(db, invoiceId, { ...line, periodStart: period.start, periodEnd: period.end, proration: false, metered: true }, taxRates, now);
}
