/**
 * Billing's own Prometheus metrics (registered by the service when metrics are on), next to
 * the broker's built-in ones and the outbox relay's.
 */
export const BILLING_COUNTERS: { name: string; labelNames: string[]; description: string }[] = [
	{ name: "billing.lifecycle.sweeps.total", labelNames: [], description: "Lifecycle scheduler sweeps" },
	{ name: "billing.lifecycle.changes.total", labelNames: ["step"], description: "Subscriptions and invoices changed by the scheduler" },
	{ name: "billing.lifecycle.failures.total", labelNames: ["step"], description: "Documents the scheduler failed to change (retried next sweep)" },
	{ name: "billing.webhooks.total", labelNames: ["type", "outcome"], description: "Stripe webhooks by outcome (applied, duplicate, stale, ignored)" },
];

export const BILLING_HISTOGRAMS: { name: string; unit: string; buckets: number[]; description: string }[] = [
	{ name: "billing.lifecycle.sweep.duration", unit: "millisecond", buckets: [5, 25, 100, 500, 2_500, 10_000], description: "Lifecycle sweep duration" },
];

/** The scheduler steps counted in billing.lifecycle.changes.total. */
export const SWEEP_STEPS = ["trialWillEnd", "trialEnded", "periodsEnded", "draftsFinalized", "paymentsSucceeded", "paymentsFailed"] as const;
