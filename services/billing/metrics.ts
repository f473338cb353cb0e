/**
 * Billing's own Prometheus metrics (registered by the service when metrics are on), next to
 * the broker's built-in ones and the outbox relay's.
 */
import type { Db } from "mongodb";

export const BILLING_COUNTERS: { name: string; labelNames: string[]; description: string }[] = [
	{ name: "billing.lifecycle.sweeps.total", labelNames: [], description: "Lifecycle scheduler sweeps" },
	{ name: "billing.lifecycle.changes.total", labelNames: ["step"], description: "Subscriptions and invoices changed by the scheduler" },
	{ name: "billing.lifecycle.failures.total", labelNames: ["step"], description: "Documents the scheduler failed to change (retried next sweep)" },
	{ name: "billing.webhooks.total", labelNames: ["type", "outcome"], description: "Stripe webhooks by outcome (applied, duplicate, stale, ignored)" },
	{ name: "billing.revenue.minor_units.total", labelNames: ["currency"], description: "Amounts of invoices that became paid, in minor units (cents), by currency" },
	{ name: "billing.mongo.pings.failed.total", labelNames: [], description: "Failed pings of the MongoDB client's watchdog" },
	{ name: "billing.mongo.client.resets.total", labelNames: [], description: "MongoDB client closed and reopened by its watchdog (its pool failed while the server answered)" },
];

export const BILLING_HISTOGRAMS: { name: string; unit: string; buckets: number[]; description: string }[] = [
	{ name: "billing.lifecycle.sweep.duration", unit: "millisecond", buckets: [5, 25, 100, 500, 2_500, 10_000], description: "Lifecycle sweep duration" },
];

/** The scheduler steps counted in billing.lifecycle.changes.total. */
export const SWEEP_STEPS = ["trialWillEnd", "trialEnded", "periodsEnded", "draftsFinalized", "paymentsSucceeded", "paymentsFailed", "creditNotesCompleted"] as const;

type RevenueListener = (amountMinor: number, currency: string) => void;

/** Per billing database (one per service instance), who counts the revenue it records. */
const revenueListeners = new WeakMap<Db, RevenueListener>();

/** The service counts revenue into billing.revenue.minor_units.total; domain code needs no broker. */
export function onRevenue(db: Db, listener: RevenueListener): void {
	revenueListeners.set(db, listener);
}

/** Called once where an invoice becomes paid (invoices.ts), with its total. */
export function recordRevenue(db: Db, amountMinor: number, currency: string): void {
	revenueListeners.get(db)?.(amountMinor, currency);
}
