/**
 * billing: plans, trials, subscriptions, invoices and Stripe on MongoDB (or any MongoDB-wire
 * server). Thin: params, the caller, a call into services/billing/*, the result. Publishes
 * through the outbox on its own documents; runs the lifecycle scheduler on every node.
 */
import type { Context, ServiceSchema } from "moleculer";
import type { CallerMeta } from "../lib/caller.ts";
import type { Config } from "../lib/config.ts";
import type { UserCreated, UserDeleted, UserRef } from "../lib/events/catalog.ts";
import { MalformedEventError } from "../lib/events/cloudevents.ts";
import type { CloudEvent } from "../lib/events/cloudevents.ts";
import { markLegacyPending, mongoOutboxStore } from "../lib/events/mongo-outbox.ts";
import { AppError, badRequest, notFound, unauthorized } from "../lib/errors.ts";
import { createMongoClient, watchMongoClient } from "../lib/mongo.ts";
import { eventHandlersMixin, outboxMixin } from "../mixins/events.mixin.ts";
import type { OutboxMethods } from "../mixins/events.mixin.ts";
import { healthMixin } from "../mixins/health.mixin.ts";
import { payInvoiceNow } from "./billing/collection.ts";
import { amountCredited, CREDIT_NOTE_REASONS, creditedAmounts, creditTotals, creditNoteAdminView, creditNotesOf, creditNoteView, issuedCredits, issueCreditNote } from "./billing/credit-notes.ts";
import type { CreditNoteReason, Refund } from "./billing/credit-notes.ts";
import { customers, eraseCustomer, updateCustomerContact } from "./billing/customers.ts";
import { renderInvoiceHtml, renderInvoicePdf } from "./billing/invoice-render.ts";
import { getUserInvoice, invoiceView, listInvoices } from "./billing/invoices.ts";
import { describeSweep, pollEvery, renewIfDue, runLifecycle } from "./billing/lifecycle.ts";
import { BILLING_COUNTERS, BILLING_HISTOGRAMS, onRevenue, SWEEP_STEPS } from "./billing/metrics.ts";
import { archivePlan, getPlan, listPlans, planCache, planSchema, planView, seedPlans, upsertPlan } from "./billing/plans.ts";
import { ensureIndexes, OUTBOX_COLLECTIONS } from "./billing/store.ts";
import type { Clock } from "./billing/store.ts";
import { chargeInvoice, createPortalSession, createStripeClient, refundPayment, syncStripeCustomer } from "./billing/stripe.ts";
import type { ChargeInput, ChargeResult, StripeClient } from "./billing/stripe.ts";
import { cancelSubscription, changePlan, findSubscription, onboardUser, pauseSubscription, resumeSubscription, startCheckout, subscriptionView } from "./billing/subscriptions.ts";
import { currentUsage, recordUsage } from "./billing/usage.ts";
import { handleStripeWebhook } from "./billing/webhooks.ts";
import type { WebhookInput } from "./billing/webhooks.ts";

/** What tests (or an embedding) may replace: the clock and the Stripe client. */
export interface BillingDeps {
	now?: Clock;
	stripe?: StripeClient;
	/** Documents per lifecycle step and sweep. */
	sweepBatchSize?: number;
	/** How our invoices are charged (Stripe PaymentIntents by default). */
	charge?: (input: ChargeInput) => Promise<ChargeResult>;
	/** How credit notes are refunded (Stripe Refunds or credit notes by default). */
	refund?: Refund;
}

type Ctx<P = Record<string, never>> = Context<P, CallerMeta & { $responseType?: string; $responseHeaders?: Record<string, string>; $statusCode?: number }>;

const SLUG = { type: "string", pattern: /^[a-z0-9][a-z0-9_-]{0,63}$/ } as const;
const INTERVAL = { type: "enum", values: ["month", "year"], optional: true } as const;
const QUANTITY = { type: "number", integer: true, min: 1, max: 100_000, convert: true, optional: true } as const;
const INVOICE_ID = { id: { type: "string", min: 1, max: 200 } } as const;
/** Old processed-event keys are pruned every this many sweeps. */
const PRUNE_EVERY_SWEEPS = 100;
/** A ping every 5 s; the client is reopened after about 15 s of failures the server is not the cause of. */
const MONGO_WATCHDOG = { everyMs: 5_000, failures: 3, timeoutMs: 3_000 };

/** The authenticated user (set by the gateway); 401 without one. */
function userOf(ctx: Ctx<unknown>): string {
	const userId = ctx.meta.caller?.userId;
	if (!userId) throw unauthorized();
	return userId;
}

interface BillingMethods extends OutboxMethods {
	sweep(): Promise<void>;
}

export default function billingService(config: Config, deps: BillingDeps = {}): ServiceSchema<{ rest: string }, BillingMethods> {
	const settings = config.billing;
	const now = deps.now ?? (() => new Date());
	const mongo = createMongoClient(config.mongoUrl!, `${config.nodeId}/billing`);
	const db = mongo.db();
	const stripe = deps.stripe ?? createStripeClient({ apiKey: settings.stripeApiKey, apiBase: settings.stripeApiBase });
	const taxRates = [settings.tax];
	const collection = { dunning: settings.dunning, charge: deps.charge ?? ((input: ChargeInput) => chargeInvoice(stripe, input)) };
	const refund: Refund = deps.refund ?? ((input) => refundPayment(stripe, input));
	const lifecycleOptions = () => ({ now: now(), batchSize: deps.sweepBatchSize ?? 100, seller: settings.seller, taxRates, collection, refund });
	const op = (ctx: Ctx<unknown>) => ({ now: now(), requestId: ctx.requestID });
	// Every sign-up reads the default plan: from memory for a few seconds (plan changes are rare).
	const signupPlans = planCache(db, 5_000);
	let scheduler: { stop(): Promise<void> } | undefined;
	let watchdog: { stop(): void } | undefined;
	let sweeps = 0;

	return {
		name: "billing",
		mixins: [
			healthMixin(),
			// Leases use the wall clock, not the injectable one: they are about processes, not billing time.
			outboxMixin({ rabbitmqUrl: config.rabbitmqUrl, store: () => mongoOutboxStore(db, { collections: OUTBOX_COLLECTIONS }) }),
			// 10 at a time per node, not the default 50: a user.deleted calls Stripe (the cancellation),
			// whose rate limit is 25 requests/s in test mode; a user.created is a few MongoDB writes under
			// document locks, which more at once would only queue inside the database.
			eventHandlersMixin({ handlers: { "user.created": "onUserCreated", "user.deleted": "onUserDeleted", "user.email_changed": "onUserContact", "user.updated": "onUserContact" }, maxInFlight: 10 }),
		],
		settings: { rest: "billing" },

		actions: {
			listPlans: {
				rest: "GET /plans", auth: "none", openapi: { summary: "The plan catalog" },
				params: { $$strict: "remove", currency: { type: "string", pattern: /^[a-z]{3}$/, optional: true } },
				async handler(ctx: Ctx<{ currency?: string }>) {
					return { plans: (await listPlans(db, { currency: ctx.params.currency })).map(planView) };
				},
			},
			getSubscription: {
				rest: "GET /subscription", openapi: { summary: "The caller's subscription" }, params: {},
				async handler(ctx: Ctx) {
					const sub = await findSubscription(db, userOf(ctx));
					if (!sub) throw notFound("Subscription");
					return subscriptionView(sub);
				},
			},
			changePlan: {
				rest: "POST /subscription/change", openapi: { summary: "Move to another plan (prorated)" },
				params: { $$strict: "remove", planId: SLUG, interval: INTERVAL, quantity: QUANTITY },
				async handler(ctx: Ctx<{ planId: string; interval?: "month" | "year"; quantity?: number }>) {
					const { subscription, proration } = await changePlan(db, stripe, { userId: userOf(ctx), ...ctx.params }, op(ctx));
					this.relayOutbox();
					return { subscription: subscriptionView(subscription), proration: proration && { credit: proration.credit, charge: proration.charge, net: proration.net, currency: subscription.currency } };
				},
			},
			cancel: {
				rest: "POST /subscription/cancel", openapi: { summary: "Cancel now or at the end of the period" },
				params: { $$strict: "remove", atPeriodEnd: { type: "boolean", convert: true, default: true } },
				async handler(ctx: Ctx<{ atPeriodEnd: boolean }>) {
					const sub = await cancelSubscription(db, stripe, { userId: userOf(ctx), atPeriodEnd: ctx.params.atPeriodEnd }, op(ctx));
					this.relayOutbox();
					return subscriptionView(sub);
				},
			},
			pause: {
				rest: "POST /subscription/pause", openapi: { summary: "Pause collection" }, params: {},
				async handler(ctx: Ctx) {
					const sub = await pauseSubscription(db, stripe, { userId: userOf(ctx) }, op(ctx));
					this.relayOutbox();
					return subscriptionView(sub);
				},
			},
			resume: {
				rest: "POST /subscription/resume", openapi: { summary: "Resume a paused subscription or take back a cancellation" }, params: {},
				async handler(ctx: Ctx) {
					const resumed = await resumeSubscription(db, stripe, { userId: userOf(ctx) }, op(ctx));
					// A resumed subscription we bill starts a new period: invoiced now, not at the next sweep.
					const renewed = await renewIfDue(db, resumed._id, lifecycleOptions());
					this.relayOutbox();
					return subscriptionView(renewed ? ((await findSubscription(db, resumed.userId)) ?? resumed) : resumed);
				},
			},
			checkout: {
				rest: "POST /checkout", openapi: { summary: "A Stripe Checkout Session for a plan" },
				params: { $$strict: "remove", planId: SLUG, interval: INTERVAL, quantity: QUANTITY },
				async handler(ctx: Ctx<{ planId: string; interval?: "month" | "year"; quantity?: number }>) {
					const { url } = await startCheckout(db, stripe, { userId: userOf(ctx), ...ctx.params, returnUrl: settings.returnUrl }, op(ctx));
					return { url };
				},
			},
			portal: {
				rest: "POST /portal", openapi: { summary: "A Stripe Customer Portal link" }, params: {},
				async handler(ctx: Ctx) {
					return createPortalSession(db, stripe, userOf(ctx), settings.returnUrl, now());
				},
			},
			listInvoices: {
				rest: "GET /invoices", openapi: { summary: "The caller's invoices, newest first" },
				params: { $$strict: "remove", limit: { type: "number", integer: true, min: 1, max: 100, convert: true, default: 20 }, cursor: { type: "string", max: 200, optional: true } },
				async handler(ctx: Ctx<{ limit: number; cursor?: string }>) {
					const page = await listInvoices(db, userOf(ctx), ctx.params);
					const credited = await creditedAmounts(db, page.invoices.map((i) => i._id));
					// The one page shape of the API: { items, nextCursor }.
					return { items: page.invoices.map((i) => ({ ...invoiceView(i), amountCredited: credited.get(i._id) ?? 0 })), nextCursor: page.nextCursor };
				},
			},
			getInvoice: {
				rest: "GET /invoices/:id", openapi: { summary: "One of the caller's invoices" }, params: INVOICE_ID,
				async handler(ctx: Ctx<{ id: string }>) {
					const invoice = await getUserInvoice(db, userOf(ctx), ctx.params.id);
					// With the money given back on it: what was credited, and each note.
					const notes = await creditNotesOf(db, invoice._id);
					return { ...invoiceView(invoice), amountCredited: amountCredited(notes), creditNotes: notes.map(creditNoteView) };
				},
			},
			invoicePdf: {
				rest: "GET /invoices/:id/pdf", openapi: { summary: "The invoice as PDF" }, params: INVOICE_ID,
				async handler(ctx: Ctx<{ id: string }>) {
					const invoice = await getUserInvoice(db, userOf(ctx), ctx.params.id);
					ctx.meta.$responseType = "application/pdf";
					ctx.meta.$responseHeaders = { "Content-Disposition": `inline; filename="invoice-${invoice.number ?? invoice._id}.pdf"` };
					return renderInvoicePdf(invoice, await issuedCredits(db, invoice._id));
				},
			},
			payInvoice: {
				rest: "POST /invoices/:id/pay", openapi: { summary: "Charge an open invoice now (after updating the card); 402 when declined" }, params: INVOICE_ID,
				async handler(ctx: Ctx<{ id: string }>) {
					try {
						return invoiceView(await payInvoiceNow(db, userOf(ctx), ctx.params.id, { ...collection, ...op(ctx) }));
					} finally {
						this.relayOutbox();
					}
				},
			},
			recordUsage: {
				rest: "POST /usage", openapi: { summary: "Report units used on a metered plan (once per idempotency key)" },
				params: {
					$$strict: "remove",
					quantity: { type: "number", integer: true, min: 0, max: 1_000_000_000, convert: true },
					idempotencyKey: { type: "string", pattern: /^[A-Za-z0-9._:-]{1,100}$/ },
					timestamp: { type: "date", convert: true, optional: true },
				},
				async handler(ctx: Ctx<{ quantity: number; idempotencyKey: string; timestamp?: Date }>) {
					const { record, duplicate } = await recordUsage(db, { userId: userOf(ctx), ...ctx.params }, now());
					return { id: record._id, quantity: record.quantity, timestamp: record.timestamp.toISOString(), duplicate };
				},
			},
			getUsage: {
				rest: "GET /usage", openapi: { summary: "Usage of the current period and its cost so far" }, params: {},
				async handler(ctx: Ctx) {
					return currentUsage(db, userOf(ctx), now());
				},
			},
			invoiceHtml: {
				rest: "GET /invoices/:id/html", openapi: { summary: "The invoice as HTML" }, params: INVOICE_ID,
				async handler(ctx: Ctx<{ id: string }>) {
					const invoice = await getUserInvoice(db, userOf(ctx), ctx.params.id);
					ctx.meta.$responseType = "text/html; charset=utf-8";
					return renderInvoiceHtml(invoice, await issuedCredits(db, invoice._id));
				},
			},
			/** Called by the gateway's raw-body route POST /api/v1/billing/webhooks/stripe. */
			handleStripeWebhook: {
				visibility: "public", auth: "none",
				params: { rawBody: { type: "string", min: 2, max: 2_000_000 }, signature: { type: "string", min: 1, max: 4_000 }, encoding: { type: "enum", values: ["base64", "utf8"], optional: true } },
				async handler(ctx: Ctx<WebhookInput>) {
					const result = await handleStripeWebhook({ db, stripe, secret: settings.stripeWebhookSecret, seller: settings.seller, now: now(), requestId: ctx.requestID }, ctx.params);
					this.broker.metrics.increment("billing.webhooks.total", { type: result.type, outcome: result.outcome });
					if (result.outcome === "ignored") this.logger.info(`stripe webhook ${result.eventId} (${result.type}) acknowledged without effect`);
					else this.logger.debug(`stripe webhook ${result.eventId} (${result.type}): ${result.outcome}`);
					if (result.outcome === "applied") this.relayOutbox();
					return { received: true, ...result };
				},
			},
			adminListPlans: {
				rest: "GET /admin/plans", permissions: ["billing:admin"], openapi: { summary: "Every plan, archived ones too" }, params: {},
				async handler() {
					return { plans: (await listPlans(db, { includeInactive: true })).map(planView) };
				},
			},
			upsertPlan: {
				rest: "PUT /admin/plans/:id", permissions: ["billing:admin"], openapi: { summary: "Create or replace a plan" }, params: planSchema,
				async handler(ctx: Ctx<Record<string, unknown>>) {
					const plan = await upsertPlan(db, ctx.params, now());
					signupPlans.forget(plan._id);
					return planView(plan);
				},
			},
			archivePlan: {
				rest: "DELETE /admin/plans/:id", permissions: ["billing:admin"], openapi: { summary: "Stop offering a plan" }, params: { id: SLUG },
				async handler(ctx: Ctx<{ id: string }>) {
					signupPlans.forget(ctx.params.id);
					return planView(await archivePlan(db, ctx.params.id, now()));
				},
			},
			adminListInvoices: {
				rest: "GET /admin/invoices", permissions: ["billing:admin"],
				openapi: { summary: "A user's invoices, newest first, with what was credited, what can still be (for credit notes) and what refunds the bank returned (amountReturned)" },
				params: { $$strict: "remove", userId: { type: "string", min: 1, max: 100 }, limit: { type: "number", integer: true, min: 1, max: 100, convert: true, default: 20 }, cursor: { type: "string", max: 200, optional: true } },
				async handler(ctx: Ctx<{ userId: string; limit: number; cursor?: string }>) {
					const page = await listInvoices(db, ctx.params.userId, ctx.params);
					const items = await Promise.all(page.invoices.map(async (i) => ({ ...invoiceView(i), ...(await creditTotals(db, i)) })));
					return { items, nextCursor: page.nextCursor };
				},
			},
			issueCreditNote: {
				rest: "POST /admin/invoices/:id/credit-notes", permissions: ["billing:admin"],
				openapi: { summary: "Give money back on a paid invoice (all that is left, or `amount`): a numbered credit note, refunded to the card; the user is told. The same idempotencyKey answers the same note" },
				params: {
					$$strict: "remove",
					...INVOICE_ID,
					amount: { type: "number", integer: true, min: 1, max: 100_000_000_000, convert: true, optional: true },
					reason: { type: "enum", values: [...CREDIT_NOTE_REASONS] },
					memo: { type: "string", max: 500, trim: true, optional: true },
					// Required: a retry after a timeout must find the note, not refund again.
					idempotencyKey: { type: "string", pattern: /^[A-Za-z0-9._:-]{8,100}$/ },
				},
				async handler(ctx: Ctx<{ id: string; amount?: number | null; reason: CreditNoteReason; memo?: string; idempotencyKey: string }>) {
					// "No amount" means all that is left: only when the field is absent, never a null that slipped through.
					if (ctx.params.amount === null) throw badRequest("The amount must be a positive number of minor units, or absent for all that is left.", [{ field: "amount", message: "must not be null", type: "number" }]);
					try {
						const { id, amount, reason, memo, idempotencyKey } = ctx.params;
						const note = await issueCreditNote(db, refund, { invoiceId: id, amount: amount ?? undefined, reason, memo: memo || undefined, idempotencyKey, issuedBy: userOf(ctx) }, op(ctx));
						this.logger.info(`credit note ${note.number} on invoice ${note.invoiceId}: ${note.status}${note.failure ? ` (${note.failure})` : ""}`);
						// Pending: Stripe could not be reached; the scheduler finishes the refund.
						ctx.meta.$statusCode = note.status === "pending" ? 202 : 201;
						return creditNoteAdminView(note);
					} finally {
						this.relayOutbox();
					}
				},
			},
			/** Internal: the cluster test and operators read a customer record. */
			getCustomer: {
				visibility: "public",
				params: { userId: { type: "string", max: 100 } },
				async handler(ctx: Ctx<{ userId: string }>) {
					return customers(db).findOne({ _id: ctx.params.userId });
				},
			},
		},

		methods: {
			healthChecks() {
				return { mongodb: () => db.command({ ping: 1 }) };
			},
			async onUserCreated(event: CloudEvent<UserCreated>, ctx: Context) {
				const result = await onboardUser(db, event, { ...settings, plan: (id: string) => signupPlans.get(id) }, { now: now(), requestId: ctx.requestID });
				if (result.created) this.relayOutbox();
				this.logger.info(`user ${event.data.userId}: customer ${result.newCustomer ? "created" : "exists"}, subscription ${result.subscription._id} ${result.created ? `started (${result.subscription.status})` : "exists"}`);
			},
			/** A new e-mail address or name: on the customer (future invoices) and its Stripe customer. */
			async onUserContact(event: CloudEvent<UserRef>) {
				const { userId, email, name } = event.data;
				if (typeof userId !== "string" || !userId || userId.length > 100 || typeof email !== "string" || !email) throw new MalformedEventError(`${event.type} needs data.userId and data.email`);
				const result = await updateCustomerContact(db, { userId, email, name: typeof name === "string" ? name : null }, new Date(event.time), now());
				if (result.outcome === "updated") await syncStripeCustomer(stripe, result.customer);
				this.logger.info(`user ${userId}: customer contact ${result.outcome} (${event.type})`);
			},
			/** The account is gone: end the subscription now (no more charges) and erase contact details. */
			async onUserDeleted(event: CloudEvent<UserDeleted>, ctx: Context) {
				const { userId } = event.data;
				try {
					await cancelSubscription(db, stripe, { userId, atPeriodEnd: false }, { now: now(), requestId: ctx.requestID });
					this.relayOutbox();
				} catch (err) {
					// No live subscription (already canceled, or never created): nothing to end.
					if (!(err instanceof AppError && (err.code === 404 || err.code === 409))) throw err;
				}
				const erased = await eraseCustomer(db, userId, now());
				this.logger.info(`user ${userId} deleted: subscription ended, customer ${erased ? "erased" : "already erased or absent"}`);
			},
			async sweep() {
				const started = performance.now();
				const report = await runLifecycle(db, { ...lifecycleOptions(), prune: ++sweeps % PRUNE_EVERY_SWEEPS === 0 });
				const ms = performance.now() - started;
				const { changed, line } = describeSweep(report, ms);
				this.broker.metrics.increment("billing.lifecycle.sweeps.total");
				this.broker.metrics.observe("billing.lifecycle.sweep.duration", ms);
				for (const step of SWEEP_STEPS) if (report[step]) this.broker.metrics.increment("billing.lifecycle.changes.total", { step }, report[step]);
				for (const f of report.failures) {
					this.broker.metrics.increment("billing.lifecycle.failures.total", { step: f.step });
					this.logger.warn(`lifecycle ${f.step} failed for ${f.id}, retried next sweep`, f.error instanceof Error ? f.error.message : String(f.error));
				}
				if (changed || report.failures.length) this.logger.info(line);
				else this.logger.debug(line);
				if (changed) this.relayOutbox();
			},
		},

		created() {
			if (!this.broker.isMetricsEnabled()) return;
			for (const metric of BILLING_COUNTERS) this.broker.metrics.register({ type: "counter", ...metric });
			for (const metric of BILLING_HISTOGRAMS) this.broker.metrics.register({ type: "histogram", ...metric });
			onRevenue(db, (amountMinor, currency) => this.broker.metrics.increment("billing.revenue.minor_units.total", { currency }, amountMinor));
		},
		async started() {
			if (config.nodeEnv === "production" && settings.stripeApiKey === "sk_test_123") throw new Error("STRIPE_API_KEY must be set in production (the default is stripe-mock's test key)");
			if (!settings.stripeWebhookSecret) this.logger.warn("STRIPE_WEBHOOK_SECRET is not set: Stripe webhooks will be refused");
			// Connecting eagerly surfaces a wrong URL at start-up, not at the first request.
			await mongo.connect();
			await ensureIndexes(db);
			const seeded = await seedPlans(db, now());
			if (seeded) this.logger.info(`seeded ${seeded} default plan(s)`);
			await getPlan(db, settings.defaultPlan).catch(() => {
				throw new Error(`BILLING_DEFAULT_PLAN: plan "${settings.defaultPlan}" does not exist in the catalog`);
			});
			// Events an earlier version left pending join the relay's work list; in the background,
			// as it reads whole collections on FerretDB.
			void Promise.all(OUTBOX_COLLECTIONS.map((name) => markLegacyPending(db, name))).then(
				(counts) => {
					const marked = counts.reduce((a, b) => a + b, 0);
					if (marked === 0) return;
					this.logger.info(`outbox: ${marked} document(s) an earlier version left pending are queued for the relay`);
					this.relayOutbox();
				},
				(err: unknown) => this.logger.warn("outbox: looking for documents an earlier version left pending failed (tried again at the next start)", err instanceof Error ? err.message : String(err)),
			);
			scheduler = pollEvery(settings.sweepIntervalMs, () => this.sweep().catch((err: unknown) => this.logger.warn("lifecycle sweep failed", err instanceof Error ? err.message : String(err))));
			watchdog = watchMongoClient(mongo, config.mongoUrl!, {
				...MONGO_WATCHDOG,
				onPingFailed: (err, inARow) => {
					this.broker.metrics.increment("billing.mongo.pings.failed.total");
					this.logger.warn(`MongoDB ping failed (${inARow} in a row)`, err instanceof Error ? err.message : String(err));
				},
				onReset: () => {
					this.broker.metrics.increment("billing.mongo.client.resets.total");
					this.logger.error(`MongoDB client reopened: ${MONGO_WATCHDOG.failures} pings failed in a row while a new connection got through`);
				},
			});
		},
		async stopped() {
			watchdog?.stop();
			await scheduler?.stop();
			await mongo.close();
		},
	};
}
