/**
 * The lifecycle scheduler's work, run by a polling loop on every billing node. Durable and
 * exactly once without locks or queues: each step finds due documents by their due-time fields
 * (trialEnd, currentPeriodEnd, autoFinalizeAt, nextPaymentAttemptAt) and changes each with one version-guarded update
 * that also appends the events, so when two nodes race for the same subscription one update
 * wins and the other matches nothing. A node that was down catches up on its next sweep;
 * batches are bounded so a backlog drains over several sweeps.
 */
import type { Db } from "mongodb";
import { WITHOUT_OUTBOX } from "../../lib/events/mongo-outbox.ts";
import { collectInvoice, dueForCollection } from "./collection.ts";
import type { CollectionContext } from "./collection.ts";
import { customers } from "./customers.ts";
import { createDraft, dueDrafts, finalizeInvoice } from "./invoices.ts";
import type { InvoiceLine, Party } from "./invoices.ts";
import { findPrice, findPriceById, getPlan } from "./plans.ts";
import { addInterval, licensedAmount } from "./pricing.ts";
import { DAY_MS, pruneProcessed } from "./store.ts";
import { commitChange, subscriptions } from "./subscriptions.ts";
import type { Change, Subscription } from "./subscriptions.ts";
import { settleUsage } from "./usage.ts";

/** `subscription.trial_will_end` goes out this long before the trial ends (as Stripe does). */
export const TRIAL_WILL_END_NOTICE_MS = 3 * DAY_MS;

export interface LifecycleOptions {
	now: Date;
	/** Documents per step and sweep. */
	batchSize: number;
	seller: Party;
	taxRates: { name: string; rateBps: number }[];
	/** Also forget old processed-event keys (done now and then, not every sweep). */
	prune?: boolean;
	/** Charging our own invoices and the dunning policy. */
	collection: Pick<CollectionContext, "dunning" | "charge">;
}

export interface SweepReport {
	trialWillEnd: number;
	trialEnded: number;
	periodsEnded: number;
	draftsFinalized: number;
	paymentsSucceeded: number;
	paymentsFailed: number;
	pruned: number;
	/** Documents that failed (logged by the caller; retried next sweep). */
	failures: { id: string; step: string; error: unknown }[];
}

export async function runLifecycle(db: Db, opts: LifecycleOptions): Promise<SweepReport> {
	const report: SweepReport = { trialWillEnd: 0, trialEnded: 0, periodsEnded: 0, draftsFinalized: 0, paymentsSucceeded: 0, paymentsFailed: 0, pruned: 0, failures: [] };
	const ctx = { now: opts.now };
	const each = async <T extends { _id: string }>(step: string, docs: T[], work: (doc: T) => Promise<boolean>) => {
		let done = 0;
		for (const doc of docs) {
			try {
				if (await work(doc)) done++;
			} catch (error) {
				report.failures.push({ id: doc._id, step, error });
			}
		}
		return done;
	};
	const due = (filter: Record<string, unknown>, sort: Record<string, 1>) =>
		subscriptions(db).find(filter, { projection: WITHOUT_OUTBOX }).sort(sort).limit(opts.batchSize).toArray();

	// Only while the end is still ahead: after downtime past the end, "will end" would be news from the past.
	const ending = await due({ status: "trialing", trialWillEndNotifiedAt: null, trialEnd: { $gt: opts.now, $lte: new Date(opts.now.getTime() + TRIAL_WILL_END_NOTICE_MS) } }, { trialEnd: 1 });
	report.trialWillEnd = await each("trial_will_end", ending, async (sub) =>
		(await commitChange(db, sub, { set: { trialWillEndNotifiedAt: opts.now }, events: ["subscription.trial_will_end"], guard: { status: "trialing", trialWillEndNotifiedAt: null } }, ctx)) !== "conflict",
	);

	const ended = await due({ status: "trialing", trialEnd: { $lte: opts.now } }, { trialEnd: 1 });
	report.trialEnded = await each("trial_ended", ended, async (sub) => {
		const change = await trialOutcome(db, sub, opts.now);
		// Converted to a paid period that we bill: its invoice is drafted first, as at a renewal (endPeriod).
		const firstPeriod = change.set.status === "active" && !sub.stripeSubscriptionId ? await draftPeriodInvoice(db, { ...sub, ...change.set }, { start: change.set.currentPeriodStart!, end: change.set.currentPeriodEnd! }, null, opts) : null;
		if ((await commitChange(db, sub, { ...change, guard: { status: "trialing", trialEndedAt: null } }, ctx)) === "conflict") return false;
		if (firstPeriod) await finalizeInvoice(db, firstPeriod, ctx);
		return true;
	});

	// Stripe renews and cancels the subscriptions it bills and tells us by webhook; these are ours.
	const periods = await due({ status: { $in: ["active", "past_due", "unpaid"] }, currentPeriodEnd: { $lte: opts.now }, stripeSubscriptionId: null }, { currentPeriodEnd: 1 });
	report.periodsEnded = await each("period_end", periods, (sub) => endPeriod(db, sub, opts));

	report.draftsFinalized = await each("finalize_draft", (await dueDrafts(db, opts.now, opts.batchSize)).map((_id) => ({ _id })), async ({ _id }) => (await finalize(db, _id, opts)).status !== "draft");

	const collection = { ...opts.collection, now: opts.now };
	await each("collect_payment", await dueForCollection(db, opts.now, opts.batchSize), async (inv) => {
		const outcome = await collectInvoice(db, inv, collection);
		if (outcome === "paid") report.paymentsSucceeded++;
		else if (outcome !== "already_settled") report.paymentsFailed++;
		return true;
	});

	if (opts.prune) report.pruned = await pruneProcessed(db, opts.now);
	return report;
}

/**
 * Where a trial goes when it ends: canceled if the user asked; active with a payment method
 * (or on a free price); otherwise what the plan says (cancel, pause, or downgrade to a free plan).
 */
export async function trialOutcome(db: Db, sub: Subscription, now: Date): Promise<Pick<Change, "set" | "events">> {
	const end = sub.trialEnd ?? now;
	const base = { trialEndedAt: now };
	const canceled = (): Pick<Change, "set" | "events"> => ({ set: { ...base, status: "canceled", canceledAt: now, endedAt: end }, events: ["trial.ended", "subscription.canceled"] });
	const activeFrom = (interval = sub.interval) => ({ status: "active" as const, currentPeriodStart: end, currentPeriodEnd: addInterval(end, interval) });
	if (sub.cancelAtPeriodEnd) return canceled();

	const plan = await getPlan(db, sub.planId);
	const price = findPriceById(plan, sub.priceId);
	const free = price.model !== "metered" && licensedAmount(price, sub.quantity) === 0;
	const customer = await customers(db).findOne({ _id: sub.userId }, { projection: { paymentMethodOnFile: 1 } });
	if (free || sub.stripeSubscriptionId || customer?.paymentMethodOnFile) return { set: { ...base, ...activeFrom() }, events: ["trial.ended", "subscription.updated"] };

	switch (plan.trialEndBehavior) {
		case "cancel":
			return canceled();
		case "pause":
			return { set: { ...base, status: "paused", pausedAt: end }, events: ["trial.ended", "subscription.updated"] };
		case "downgrade": {
			const target = await getPlan(db, plan.downgradePlanId!);
			const price = target.prices.find((p) => p.currency === sub.currency && p.interval === sub.interval) ?? findPrice(target, sub.currency);
			return { set: { ...base, ...activeFrom(price.interval), planId: target._id, priceId: price.id, interval: price.interval, quantity: 1 }, events: ["trial.ended", "subscription.updated"] };
		}
	}
}

/** Finalizes a draft, pricing its metered usage first. */
function finalize(db: Db, invoiceId: string, opts: LifecycleOptions) {
	return settleUsage(db, invoiceId, opts.taxRates, opts.now).then(() => finalizeInvoice(db, invoiceId, { now: opts.now }));
}

/**
 * Drafts the invoice of a period we bill: its licensed price in advance for [start, end), the
 * subscription's pending prorations, and the metered usage of the period that just ended
 * (`arrears`, priced when the draft is finalized). The id derives from the subscription and the
 * period, so a retry after a crash finds the same draft instead of invoicing twice. Returns the
 * draft's id, or null when there is nothing to bill.
 */
async function draftPeriodInvoice(db: Db, sub: Subscription, period: { start: Date; end: Date }, arrears: { start: Date; end: Date } | null, opts: LifecycleOptions): Promise<string | null> {
	const plan = await getPlan(db, sub.planId);
	const price = findPriceById(plan, sub.priceId);
	const lines: InvoiceLine[] = [];
	const amount = licensedAmount(price, sub.quantity);
	if (amount > 0) lines.push({ description: `${plan.name} (${sub.interval}ly)`, quantity: sub.quantity, unitAmount: price.model === "per_seat" ? (price.unitAmount ?? 0) : amount, amount, periodStart: period.start, periodEnd: period.end, proration: false });
	lines.push(...sub.pendingItems.map((i) => ({ description: i.description, quantity: 1, unitAmount: i.amount, amount: i.amount, periodStart: i.periodStart, periodEnd: i.periodEnd, proration: true })));
	const usagePeriod = price.model === "metered" && arrears ? { subscriptionId: sub._id, planId: plan._id, priceId: price.id, ...arrears } : null;
	// A credit larger than what is owed waits for a later invoice rather than making a negative one.
	// A metered period is always invoiced (as Stripe does, even at zero): its usage is known only at finalization.
	const billable = usagePeriod !== null || (lines.length > 0 && lines.reduce((a, l) => a + l.amount, 0) >= 0);
	if (!billable) return null;
	const invoiceId = `in_${sub._id}_${period.start.getTime()}`;
	const customer = await customers(db).findOne({ _id: sub.userId });
	await createDraft(db, { id: invoiceId, userId: sub.userId, subscriptionId: sub._id, currency: sub.currency, seller: opts.seller, buyer: { name: customer?.name ?? customer?.email ?? sub.userId, email: customer?.email ?? null }, lines, taxRates: opts.taxRates, usagePeriod }, opts.now);
	return invoiceId;
}

/** Ends a local subscription's period: cancels it if scheduled, else renews it and invoices what is owed. */
async function endPeriod(db: Db, sub: Subscription, opts: LifecycleOptions): Promise<boolean> {
	const ctx = { now: opts.now };
	const guard = { currentPeriodEnd: sub.currentPeriodEnd };
	if (sub.cancelAtPeriodEnd) {
		const change: Change = { set: { status: "canceled", canceledAt: opts.now, endedAt: sub.currentPeriodEnd }, events: ["subscription.canceled"], guard };
		return (await commitChange(db, sub, change, ctx)) !== "conflict";
	}
	const start = sub.currentPeriodEnd;
	const end = addInterval(start, sub.interval);
	const invoiceId = await draftPeriodInvoice(db, sub, { start, end }, { start: sub.currentPeriodStart, end: sub.currentPeriodEnd }, opts);
	const extra = invoiceId && sub.pendingItems.length ? { $pullAll: { pendingItems: sub.pendingItems } } : undefined;
	const next = await commitChange(db, sub, { set: { currentPeriodStart: start, currentPeriodEnd: end }, events: [], guard, extra }, ctx);
	if (next === "conflict") return false;
	if (invoiceId) await finalize(db, invoiceId, opts);
	return true;
}

/** One log line for a sweep, and whether it changed anything. */
export function describeSweep(report: SweepReport, ms: number): { changed: number; line: string } {
	const changed = report.trialWillEnd + report.trialEnded + report.periodsEnded + report.draftsFinalized + report.paymentsSucceeded + report.paymentsFailed;
	const line = `lifecycle sweep: ${report.trialWillEnd} trial_will_end, ${report.trialEnded} trials ended, ${report.periodsEnded} periods ended, ${report.draftsFinalized} drafts finalized, ${report.paymentsSucceeded} payments collected, ${report.paymentsFailed} failed charges, ${report.failures.length} failed in ${Math.round(ms)} ms`;
	return { changed, line };
}

/** Runs `work` now and then every `intervalMs` after each run ends (never two at once), until stopped. */
export function pollEvery(intervalMs: number, work: () => Promise<void>): { stop(): Promise<void> } {
	let timer: NodeJS.Timeout | undefined;
	let running: Promise<void> | undefined;
	let stopped = false;
	const loop = () => {
		running = work().finally(() => {
			if (!stopped) timer = setTimeout(loop, intervalMs);
		});
	};
	loop();
	return {
		async stop() {
			stopped = true;
			clearTimeout(timer);
			await running;
		},
	};
}

