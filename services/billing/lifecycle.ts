/**
 * The lifecycle scheduler's work, run by a polling loop on every billing node. Durable and
 * exactly once without locks or queues: each step finds due documents by their due-time fields
 * (trialEnd, currentPeriodEnd, autoFinalizeAt, nextPaymentAttemptAt) and changes each with one version-guarded update
 * that also appends the events, so when two nodes race for the same subscription one update
 * wins and the other matches nothing. A node that was down catches up on its next sweep;
 * batches are bounded so a backlog drains over several sweeps.
 */
import type { Db, Filter } from "mongodb";
import { WITHOUT_OUTBOX } from "../../lib/events/mongo-outbox.ts";
import { collectInvoice, dueForCollection } from "./collection.ts";
import type { CollectionContext } from "./collection.ts";
import { completeCreditNote, pendingCreditNotes } from "./credit-notes.ts";
import type { Refund } from "./credit-notes.ts";
import { customers } from "./customers.ts";
import { dueDrafts } from "./invoices.ts";
import type { Party } from "./invoices.ts";
import { draftPeriodInvoice, finalizePeriodInvoice } from "./period-invoices.ts";
import { findPrice, findPriceById, getPlan } from "./plans.ts";
import { addInterval, licensedAmount } from "./pricing.ts";
import { DAY_MS, pruneProcessed } from "./store.ts";
import { commitChange, subscriptions } from "./subscriptions.ts";
import type { Change, Subscription } from "./subscriptions.ts";

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
	/** Refunds of credit notes a crash or an outage left pending (stripe.ts `refundPayment`); without it, they wait. */
	refund?: Refund;
}

export interface SweepReport {
	trialWillEnd: number;
	trialEnded: number;
	periodsEnded: number;
	draftsFinalized: number;
	paymentsSucceeded: number;
	creditNotesCompleted: number;
	paymentsFailed: number;
	pruned: number;
	/** Documents that failed (logged by the caller; retried next sweep). */
	failures: { id: string; step: string; error: unknown }[];
}

export async function runLifecycle(db: Db, opts: LifecycleOptions): Promise<SweepReport> {
	const report: SweepReport = { trialWillEnd: 0, trialEnded: 0, periodsEnded: 0, draftsFinalized: 0, paymentsSucceeded: 0, paymentsFailed: 0, creditNotesCompleted: 0, pruned: 0, failures: [] };
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
		if (firstPeriod) await finalizePeriodInvoice(db, firstPeriod, opts);
		return true;
	});

	// Stripe renews and cancels the subscriptions it bills and tells us by webhook; these are ours.
	// One query per status: FerretDB filters an equality in PostgreSQL, an $in by reading every subscription.
	const periods = (await Promise.all(BILLED_STATUSES.map((status) => due(periodDue(opts.now, status), { currentPeriodEnd: 1 }))))
		.flat()
		.sort((a, b) => a.currentPeriodEnd.getTime() - b.currentPeriodEnd.getTime())
		.slice(0, opts.batchSize);
	report.periodsEnded = await each("period_end", periods, (sub) => endPeriod(db, sub, opts));

	report.draftsFinalized = await each("finalize_draft", (await dueDrafts(db, opts.now, opts.batchSize)).map((_id) => ({ _id })), async ({ _id }) => (await finalizePeriodInvoice(db, _id, opts)).status !== "draft");

	const collection = { ...opts.collection, now: opts.now };
	await each("collect_payment", await dueForCollection(db, opts.now, opts.batchSize), async (inv) => {
		const outcome = await collectInvoice(db, inv, collection);
		if (outcome === "paid") report.paymentsSucceeded++;
		else if (outcome !== "already_settled") report.paymentsFailed++;
		return true;
	});

	const refund = opts.refund;
	if (refund) {
		const pending = (await pendingCreditNotes(db, opts.now, opts.batchSize)).map((_id) => ({ _id }));
		report.creditNotesCompleted = await each("complete_credit_note", pending, async ({ _id }) => (await completeCreditNote(db, refund, _id, ctx)).status !== "pending");
	}

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

/** The statuses of subscriptions whose periods we renew (Stripe renews the ones it bills). */
const BILLED_STATUSES = ["active", "past_due", "unpaid"] as const;

/** Subscriptions we bill whose period has ended (of one status, or of any billed status). */
const periodDue = (now: Date, status: Filter<Subscription>["status"] = { $in: [...BILLED_STATUSES] }): Filter<Subscription> => ({ status, currentPeriodEnd: { $lte: now }, stripeSubscriptionId: null });

/**
 * Renews one subscription now if its period has ended, as the next sweep would: a resumed
 * subscription's new period is invoiced at once rather than after the sweep interval.
 */
export async function renewIfDue(db: Db, subscriptionId: string, opts: LifecycleOptions): Promise<boolean> {
	const sub = await subscriptions(db).findOne({ _id: subscriptionId, ...periodDue(opts.now) }, { projection: WITHOUT_OUTBOX });
	return sub ? endPeriod(db, sub, opts) : false;
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
	if (invoiceId) await finalizePeriodInvoice(db, invoiceId, opts);
	return true;
}

/** One log line for a sweep, and whether it changed anything. */
export function describeSweep(report: SweepReport, ms: number): { changed: number; line: string } {
	const changed = report.trialWillEnd + report.trialEnded + report.periodsEnded + report.draftsFinalized + report.paymentsSucceeded + report.paymentsFailed + report.creditNotesCompleted;
	const line = `lifecycle sweep: ${report.trialWillEnd} trial_will_end, ${report.trialEnded} trials ended, ${report.periodsEnded} periods ended, ${report.draftsFinalized} drafts finalized, ${report.paymentsSucceeded} payments collected, ${report.paymentsFailed} failed charges, ${report.creditNotesCompleted} credit notes completed, ${report.failures.length} failed in ${Math.round(ms)} ms`;
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

