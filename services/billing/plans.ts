/**
 * The plan catalog. A plan has one or more prices (per currency and interval, any price model);
 * its id is a stable slug ("pro") that subscriptions refer to. A default catalog is seeded at
 * start-up without overwriting what an administrator changed since.
 */
import type { Db } from "mongodb";
import { AppError, badRequest, notFound } from "../../lib/errors.ts";
import { ExpiringCache } from "../../lib/expiring-cache.ts";
import { createValidator } from "../../lib/validator.ts";
import { CURRENCY_PATTERN, MAX_AMOUNT } from "./money.ts";
import { isDuplicateKey } from "./store.ts";
import { priceProblems } from "./pricing.ts";
import type { Interval, Price } from "./pricing.ts";

/** What happens when a trial ends and no payment method is on file (Stripe's `missing_payment_method`). */
export type TrialEndBehavior = "cancel" | "pause" | "downgrade";

export interface Plan {
	_id: string;
	name: string;
	description: string;
	active: boolean;
	features: string[];
	/** Trial length for this plan; null means BILLING_TRIAL_DAYS. */
	trialDays: number | null;
	trialEndBehavior: TrialEndBehavior;
	/** Where "downgrade" moves the subscription (a free plan). */
	downgradePlanId: string | null;
	prices: Price[];
	sortOrder: number;
	version: number;
	createdAt: Date;
	updatedAt: Date;
}

export type PlanInput = Omit<Plan, "_id" | "version" | "createdAt" | "updatedAt"> & { id: string };

export const plans = (db: Db) => db.collection<Plan>("plans");

const amount = { type: "number", integer: true, min: 0, max: MAX_AMOUNT } as const;
const SLUG = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** fastest-validator schema of a plan: the action's params and the check before every write. */
export const planSchema = {
	$$strict: "remove",
	id: { type: "string", pattern: SLUG },
	name: { type: "string", min: 1, max: 100, trim: true },
	description: { type: "string", max: 1000, default: "" },
	active: { type: "boolean", default: true },
	features: { type: "array", items: { type: "string", max: 200 }, max: 50, default: [] },
	trialDays: { type: "number", integer: true, min: 0, max: 730, optional: true, nullable: true },
	trialEndBehavior: { type: "enum", values: ["cancel", "pause", "downgrade"], default: "pause" },
	downgradePlanId: { type: "string", pattern: SLUG, optional: true, nullable: true },
	sortOrder: { type: "number", integer: true, min: 0, max: 10_000, default: 100 },
	prices: {
		type: "array",
		min: 1,
		max: 20,
		items: {
			type: "object",
			strict: "remove",
			props: {
				id: { type: "string", pattern: SLUG },
				currency: { type: "string", pattern: CURRENCY_PATTERN },
				interval: { type: "enum", values: ["month", "year"] },
				model: { type: "enum", values: ["flat", "per_seat", "tiered", "metered"] },
				unitAmount: { ...amount, optional: true },
				tiersMode: { type: "enum", values: ["graduated", "volume"], optional: true },
				tiers: {
					type: "array",
					optional: true,
					max: 20,
					items: { type: "object", strict: "remove", props: { upTo: { type: "number", integer: true, min: 1, nullable: true }, unitAmount: amount, flatAmount: { ...amount, default: 0 } } },
				},
				stripePriceId: { type: "string", pattern: /^price_[A-Za-z0-9]+$/, optional: true, nullable: true },
			},
		},
	},
} as const;

const checkPlan = createValidator().compile(planSchema);

/** Validates (and fills defaults of) a plan; throws a 400 naming every bad field. */
export function validatePlan(input: unknown): PlanInput {
	const value = structuredClone(input) as PlanInput;
	const result = checkPlan(value);
	if (result !== true) throw badRequest("The plan is not valid.", (result as { field: string; message?: string }[]).map((e) => ({ field: e.field, message: e.message ?? "is invalid" })));
	// fastest-validator does not apply a null default.
	value.trialDays ??= null;
	value.downgradePlanId ??= null;
	const problems = value.prices.flatMap((p, i) => priceProblems(p, `prices[${i}]`));
	const ids = value.prices.map((p) => p.id);
	if (new Set(ids).size !== ids.length) problems.push({ field: "prices", message: "price ids must be unique" });
	const combos = value.prices.map((p) => `${p.currency}/${p.interval}`);
	if (new Set(combos).size !== combos.length) problems.push({ field: "prices", message: "one price per currency and interval" });
	if (value.trialEndBehavior === "downgrade" && !value.downgradePlanId) problems.push({ field: "downgradePlanId", message: "is required when trialEndBehavior is downgrade" });
	if (problems.length) throw badRequest("The plan is not valid.", problems);
	return value;
}

const DEFAULT_CATALOG: PlanInput[] = [
	{
		id: "free", name: "Free", description: "For trying things out.", active: true, sortOrder: 10,
		features: ["1 project", "Community support"], trialDays: null, trialEndBehavior: "cancel", downgradePlanId: null,
		prices: [
			{ id: "free-usd-month", currency: "usd", interval: "month", model: "flat", unitAmount: 0 },
			{ id: "free-eur-month", currency: "eur", interval: "month", model: "flat", unitAmount: 0 },
		],
	},
	{
		id: "starter", name: "Starter", description: "For small teams.", active: true, sortOrder: 20,
		features: ["10 projects", "E-mail support"], trialDays: null, trialEndBehavior: "downgrade", downgradePlanId: "free",
		prices: [
			{ id: "starter-usd-month", currency: "usd", interval: "month", model: "flat", unitAmount: 900 },
			{ id: "starter-usd-year", currency: "usd", interval: "year", model: "flat", unitAmount: 9_000 },
			{ id: "starter-eur-month", currency: "eur", interval: "month", model: "flat", unitAmount: 900 },
		],
	},
	{
		id: "pro", name: "Pro", description: "For growing teams, billed per seat.", active: true, sortOrder: 30,
		features: ["Unlimited projects", "Priority support", "SSO"], trialDays: null, trialEndBehavior: "downgrade", downgradePlanId: "free",
		prices: [
			{ id: "pro-usd-month", currency: "usd", interval: "month", model: "per_seat", unitAmount: 2_900 },
			{ id: "pro-usd-year", currency: "usd", interval: "year", model: "per_seat", unitAmount: 29_000 },
			{ id: "pro-eur-month", currency: "eur", interval: "month", model: "per_seat", unitAmount: 2_700 },
		],
	},
	{
		id: "scale", name: "Scale", description: "Usage-based, per 1,000 API calls, billed in arrears: the first 10 included, cheaper in volume.", active: true, sortOrder: 40,
		features: ["Everything in Pro", "Graduated usage pricing"], trialDays: null, trialEndBehavior: "downgrade", downgradePlanId: "free",
		prices: [
			{
				id: "scale-usd-month", currency: "usd", interval: "month", model: "metered", tiersMode: "graduated",
				tiers: [{ upTo: 10, unitAmount: 0, flatAmount: 4_900 }, { upTo: 100, unitAmount: 200, flatAmount: 0 }, { upTo: null, unitAmount: 100, flatAmount: 0 }],
			},
		],
	},
];

/** Inserts the default plans that do not exist yet; never overwrites an administrator's edits. */
export async function seedPlans(db: Db, now: Date): Promise<number> {
	let inserted = 0;
	for (const input of DEFAULT_CATALOG) {
		const { id, ...plan } = validatePlan(input);
		try {
			await plans(db).insertOne({ _id: id, ...plan, version: 1, createdAt: now, updatedAt: now });
			inserted++;
		} catch (err) {
			// Exists already (seeded by an earlier start or another node): keep it as it is.
			if (!isDuplicateKey(err)) throw err;
		}
	}
	return inserted;
}

export async function listPlans(db: Db, opts: { includeInactive?: boolean; currency?: string } = {}): Promise<Plan[]> {
	const list = await plans(db).find(opts.includeInactive ? {} : { active: true }).sort({ sortOrder: 1, _id: 1 }).limit(200).toArray();
	if (!opts.currency) return list;
	return list.map((p) => ({ ...p, prices: p.prices.filter((price) => price.currency === opts.currency) })).filter((p) => p.prices.length);
}

export async function getPlan(db: Db, id: string): Promise<Plan> {
	const plan = await plans(db).findOne({ _id: id });
	if (!plan) throw notFound(`Plan ${id}`);
	return plan;
}

/**
 * Plans read through a short-lived cache, for the sign-up path that reads the same default plan
 * for every new user: one read per `ttlMs` instead of one per sign-up. A change made on another
 * node reaches new sign-ups within `ttlMs`; `forget` drops this node's copy at once.
 */
export function planCache(db: Db, ttlMs: number, nowMs: () => number = Date.now) {
	const cache = new ExpiringCache<Plan>(64);
	return {
		async get(id: string): Promise<Plan> {
			const cached = cache.get(id, nowMs());
			if (cached) return cached;
			const plan = await getPlan(db, id);
			cache.set(id, plan, nowMs() + ttlMs);
			return plan;
		},
		forget(id: string): void {
			cache.delete(id);
		},
	};
}

/** The plan's price in `currency` and `interval` (interval optional: month first). */
export function findPrice(plan: Plan, currency: string, interval?: Interval): Price {
	const candidates = plan.prices.filter((p) => p.currency === currency && (!interval || p.interval === interval));
	const price = candidates.find((p) => p.interval === "month") ?? candidates[0];
	if (!price) throw new AppError(409, "PRICE_NOT_AVAILABLE", `Plan ${plan._id} has no ${interval ? `${interval}ly ` : ""}price in ${currency.toUpperCase()}.`);
	return price;
}

export function findPriceById(plan: Plan, priceId: string): Price {
	const price = plan.prices.find((p) => p.id === priceId);
	if (!price) throw new AppError(409, "PRICE_NOT_AVAILABLE", `Plan ${plan._id} has no price ${priceId}.`);
	return price;
}

/** Creates or replaces a plan (admin). Prices in use keep working: subscriptions copy their terms. */
export async function upsertPlan(db: Db, input: unknown, now: Date): Promise<Plan> {
	const { id, ...plan } = validatePlan(input);
	if (plan.downgradePlanId === id) throw badRequest("The plan is not valid.", [{ field: "downgradePlanId", message: "cannot be the plan itself" }]);
	if (plan.downgradePlanId) await getPlan(db, plan.downgradePlanId);
	const saved = await plans(db).findOneAndUpdate(
		{ _id: id },
		{ $set: { ...plan, updatedAt: now }, $inc: { version: 1 }, $setOnInsert: { createdAt: now } },
		{ upsert: true, returnDocument: "after" },
	);
	return saved!;
}

/** Hides a plan from the catalog and new sign-ups; existing subscriptions keep it. */
export async function archivePlan(db: Db, id: string, now: Date): Promise<Plan> {
	const saved = await plans(db).findOneAndUpdate({ _id: id }, { $set: { active: false, updatedAt: now }, $inc: { version: 1 } }, { returnDocument: "after" });
	if (!saved) throw notFound(`Plan ${id}`);
	return saved;
}

/** What clients see of a plan. */
export function planView(plan: Plan) {
	return {
		id: plan._id, name: plan.name, description: plan.description, active: plan.active, features: plan.features,
		trialDays: plan.trialDays, trialEndBehavior: plan.trialEndBehavior, downgradePlanId: plan.downgradePlanId, sortOrder: plan.sortOrder,
		prices: plan.prices.map(({ stripePriceId: _, ...p }) => p),
	};
}
