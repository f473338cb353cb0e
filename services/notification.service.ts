/**
 * notification: e-mail, web push and in-app alerts produced from events by declared workflows
 * (services/notification/workflows.ts), delivered through one BullMQ queue per channel in Redis.
 * The in-app inbox, preferences and push subscriptions are the caller's own (ctx.meta.caller,
 * set by the gateway); dead letters are for admins. See docs/notifications.md.
 */
import type { Context, ServiceSchema } from "moleculer";
import type { Caller, CallerMeta } from "../lib/caller.ts";
import type { Config } from "../lib/config.ts";
import type { CloudEvent } from "../lib/events/cloudevents.ts";
import { AppError, badRequest, forbidden, notFound, unauthorized } from "../lib/errors.ts";
import { closeRedis, createRedis } from "../lib/redis.ts";
import { eventHandlersMixin } from "../mixins/events.mixin.ts";
import { healthMixin } from "../mixins/health.mixin.ts";
import { createSmtpTransport } from "./notification/email.ts";
import { listAlerts, markAllRead, markRead } from "./notification/inbox.ts";
import type { Alert } from "./notification/inbox.ts";
import { createKeys } from "./notification/keys.ts";
import { deliverEmail, deliverPush, handleEvent } from "./notification/notifier.ts";
import type { EmailJob, PushJob } from "./notification/notifier.ts";
import { getPreferences, updatePreferences } from "./notification/preferences.ts";
import type { PreferencesPatch } from "./notification/preferences.ts";
import { optionalBoolean, pageLimit, preferencesParams, pushSubscriptionId, pushSubscriptionParams, queueChannel } from "./notification/params.ts";
import { WebPushProvider, addSubscription, deviceOf, getSubscription, listSubscriptions, removeSubscription, subscriptionIdOf } from "./notification/push.ts";
import type { PushSubscriptionInput } from "./notification/push.ts";
import { ChannelQueue } from "./notification/queues.ts";
import { createTemplates, loadTemplateSources } from "./notification/templates.ts";
import { pollJobCounts, queueObserver, recordHandled, registerMetrics } from "./notification/telemetry.ts";
import { WORKFLOWS } from "./notification/workflows.ts";

const ADMIN = "notifications:admin";
const PUSH_CONCURRENCY = 20;
const SHUTDOWN_GRACE_MS = 10_000;
const JOB_COUNTS_EVERY_MS = 15_000;
const ALERT_ID = /^[A-Za-z0-9_.-]{1,200}$/;

type Ctx<P = Record<string, never>> = Context<P, CallerMeta & { $statusCode?: number; $location?: string }>;

function callerOf(ctx: Ctx<unknown>, permission?: string): Caller {
	const caller = ctx.meta.caller;
	if (!caller?.userId) throw unauthorized();
	if (permission && !caller.permissions?.includes(permission)) throw forbidden();
	return caller;
}

const pushOff = () => new AppError(503, "PUSH_NOT_CONFIGURED", "Push notifications are not enabled on this server.", undefined, false);

interface NotificationMethods {
	healthChecks(): Record<string, () => Promise<unknown>>;
	onEvent(event: CloudEvent, ctx: Context): Promise<void>;
}

export default function notificationService(config: Config): ServiceSchema<{ rest: string }, NotificationMethods> {
	const n = config.notification;
	const keys = createKeys(config.namespace);
	// Auto-pipelining: commands issued in the same tick (the reads of one event, many events at
	// once) go to Redis in one write, which counts when the cores are busy.
	const redis = createRedis(config.redisUrl!, `${config.nodeId}/notification`, { enableAutoPipelining: true });
	// BullMQ's workers block on Redis reads: no per-command timeout, unlimited retries.
	const workerRedis = createRedis(config.redisUrl!, `${config.nodeId}/notification-worker`, { maxRetriesPerRequest: null, commandTimeout: undefined });
	const smtp = createSmtpTransport(config.smtpUrl!, { maxConnections: n.emailConcurrency });
	const templates = createTemplates(loadTemplateSources());
	const { publicKey, privateKey, subject } = n.vapid;
	// The provider is made in started(): it loads web-push, which a node without VAPID keys never needs.
	const vapid = publicKey && privateKey && subject ? { publicKey, privateKey, subject } : null;
	const clock = () => new Date();
	let email: ChannelQueue<EmailJob>;
	let push: ChannelQueue<PushJob> | null = null;
	let stopGauge: (() => void) | undefined;
	const queueOf = (channel: "email" | "push"): ChannelQueue<EmailJob | PushJob> => {
		const queue = channel === "email" ? email : push;
		if (!queue) throw pushOff();
		return queue as ChannelQueue<EmailJob | PushJob>;
	};
	/** Unregisters one of the user's devices, by id or by endpoint; 404 when it is not theirs. */
	const removeDevice = async (userId: string, subscriptionId: string) => {
		if (!(await removeSubscription(redis, keys, userId, subscriptionId))) throw notFound("Push subscription");
		return { removed: true };
	};

	return {
		name: "notification",
		mixins: [healthMixin(), eventHandlersMixin({ handlers: Object.fromEntries(["user.deleted", "user.updated", ...WORKFLOWS.map((w) => w.event)].map((type) => [type, "onEvent"])) })],
		settings: { rest: "notifications" },

		actions: {
			list: {
				rest: "GET /",
				openapi: { summary: "The caller's in-app notifications, newest first", tags: ["notifications"] },
				params: { $$strict: "remove", cursor: { type: "string", optional: true, max: 300 }, limit: pageLimit, unreadOnly: optionalBoolean },
				handler: (ctx: Ctx<{ cursor?: string; limit: number; unreadOnly?: boolean }>) => listAlerts(redis, keys, callerOf(ctx).userId, ctx.params),
			},
			markRead: {
				rest: "POST /:id/read",
				openapi: { summary: "Marks one notification read", tags: ["notifications"] },
				params: { $$strict: "remove", id: { type: "string", pattern: ALERT_ID } },
				async handler(ctx: Ctx<{ id: string }>) {
					const userId = callerOf(ctx).userId;
					const unreadCount = await markRead(redis, keys, userId, ctx.params.id, clock());
					void ctx.broadcast("notification.alerts.read", { userId, ids: [ctx.params.id], unreadCount });
					return { id: ctx.params.id, unreadCount };
				},
			},
			markAllRead: {
				rest: "POST /read-all",
				openapi: { summary: "Marks every notification read", tags: ["notifications"] },
				params: { $$strict: "remove" },
				async handler(ctx: Ctx) {
					const userId = callerOf(ctx).userId;
					const marked = await markAllRead(redis, keys, userId, clock());
					void ctx.broadcast("notification.alerts.read", { userId, ids: "all", unreadCount: 0 });
					return { marked, unreadCount: 0 };
				},
			},
			getPreferences: {
				rest: "GET /preferences",
				openapi: { summary: "The caller's notification preferences per channel and category", tags: ["notifications"] },
				params: { $$strict: "remove" },
				handler: (ctx: Ctx) => getPreferences(redis, keys, callerOf(ctx).userId),
			},
			updatePreferences: {
				rest: "PUT /preferences",
				openapi: { summary: "Changes preferences; security notifications cannot be switched off (422 PREFERENCE_LOCKED)", tags: ["notifications"] },
				params: preferencesParams,
				handler: (ctx: Ctx<PreferencesPatch>) => updatePreferences(redis, keys, callerOf(ctx).userId, ctx.params),
			},
			listPushSubscriptions: {
				rest: "GET /push-subscriptions",
				openapi: { summary: "The caller's devices registered for push", tags: ["notifications"] },
				params: { $$strict: "remove" },
				async handler(ctx: Ctx) {
					const subs = await listSubscriptions(redis, keys, callerOf(ctx).userId);
					return { items: subs.map(deviceOf) };
				},
			},
			addPushSubscription: {
				rest: "POST /push-subscriptions",
				openapi: { summary: "Registers a device's Web Push subscription (PushSubscription.toJSON())", tags: ["notifications"], created: true },
				params: pushSubscriptionParams,
				async handler(ctx: Ctx<PushSubscriptionInput>) {
					const userId = callerOf(ctx).userId;
					if (!vapid) throw pushOff();
					const sub = await addSubscription(redis, keys, userId, ctx.params, n.pushEndpointOrigins, clock());
					ctx.meta.$statusCode = 201;
					ctx.meta.$location = `/api/v1/notifications/push-subscriptions/${sub.id}`;
					return deviceOf(sub);
				},
			},
			getPushSubscription: {
				rest: "GET /push-subscriptions/:id",
				openapi: { summary: "One of the caller's devices registered for push", tags: ["notifications"] },
				params: { $$strict: "remove", id: pushSubscriptionId },
				async handler(ctx: Ctx<{ id: string }>) {
					const sub = await getSubscription(redis, keys, callerOf(ctx).userId, ctx.params.id);
					if (!sub) throw notFound("Push subscription");
					return deviceOf(sub);
				},
			},
			removePushSubscriptionById: {
				rest: "DELETE /push-subscriptions/:id",
				openapi: { summary: "Unregisters one of the caller's devices by its id (as listed), e.g. a lost phone", tags: ["notifications"] },
				params: { $$strict: "remove", id: pushSubscriptionId },
				handler: (ctx: Ctx<{ id: string }>) => removeDevice(callerOf(ctx).userId, ctx.params.id),
			},
			removePushSubscription: {
				rest: "DELETE /push-subscriptions",
				openapi: { summary: "Unregisters a device by its subscription endpoint (the browser's own, as PushManager knows it)", tags: ["notifications"] },
				params: { $$strict: "remove", endpoint: { type: "string", min: 10, max: 2_048 } },
				handler: (ctx: Ctx<{ endpoint: string }>) => removeDevice(callerOf(ctx).userId, subscriptionIdOf(ctx.params.endpoint)),
			},
			vapidPublicKey: {
				rest: "GET /push/vapid-public-key",
				auth: "none",
				openapi: { summary: "The application server key for PushManager.subscribe(); null when push is off", tags: ["notifications"] },
				params: { $$strict: "remove" },
				handler: () => ({ publicKey: vapid ? publicKey : null }),
			},
			failedJobs: {
				rest: "GET /admin/failed",
				permissions: [ADMIN],
				openapi: { summary: "Dead letters: deliveries that failed for good, newest first", tags: ["notifications-admin"] },
				params: { $$strict: "remove", channel: queueChannel, offset: { type: "number", integer: true, min: 0, default: 0, convert: true }, limit: pageLimit },
				async handler(ctx: Ctx<{ channel: "email" | "push"; offset: number; limit: number }>) {
					callerOf(ctx, ADMIN);
					return queueOf(ctx.params.channel).listFailed(ctx.params.offset, ctx.params.limit);
				},
			},
			retryFailed: {
				rest: "POST /admin/failed/retry",
				permissions: [ADMIN],
				openapi: { summary: "Re-queues one failed job (jobId) or all of them (all: true), attempts reset", tags: ["notifications-admin"] },
				params: { $$strict: "remove", channel: queueChannel, jobId: { type: "string", optional: true, max: 300 }, all: optionalBoolean, max: { type: "number", integer: true, min: 1, max: 10_000, default: 1_000, convert: true } },
				async handler(ctx: Ctx<{ channel: "email" | "push"; jobId?: string; all?: boolean; max: number }>) {
					const admin = callerOf(ctx, ADMIN);
					const queue = queueOf(ctx.params.channel);
					if (!ctx.params.jobId && !ctx.params.all) throw badRequest("Name a failed job (jobId) or ask for all of them (all: true).", [{ field: "jobId", message: "required unless all is true" }]);
					const retried = ctx.params.jobId ? Number(await queue.retry(ctx.params.jobId)) : await queue.retryAll(ctx.params.max);
					if (ctx.params.jobId && !retried) throw notFound("Failed job");
					this.logger.info(`${ctx.params.channel}: ${retried} failed job(s) re-queued by ${admin.userId}`);
					return { retried };
				},
			},
			/** Operator view (REPL): jobs per state in each channel's queue; push is null when off. */
			queueCounts: {
				visibility: "public",
				async handler() {
					return { email: await email.counts(), push: push ? await push.counts() : null };
				},
			},
			/** Internal (other services, REPL, tests): a user's newest alerts. */
			listAlerts: {
				visibility: "public",
				params: { userId: { type: "string", max: 100 }, limit: { type: "number", integer: true, min: 1, max: 100, default: 50, convert: true } },
				async handler(ctx: Context<{ userId: string; limit: number }>) {
					return (await listAlerts(redis, keys, ctx.params.userId, { limit: ctx.params.limit })).items;
				},
			},
		},

		methods: {
			healthChecks() {
				return { redis: () => redis.ping(), smtp: () => smtp.verify() };
			},
			async onEvent(event: CloudEvent, ctx: Context) {
				const result = await handleEvent(
					{
						redis, keys, templates, clock, publicUrl: n.publicUrl, email, push,
						onAlert: (userId: string, alert: Alert, unreadCount: number) => this.broker.broadcast("notification.alert.created", { userId, alert, unreadCount }),
					},
					event,
					ctx.requestID ?? null,
				);
				recordHandled(this.broker.metrics, this.logger, event, result, clock);
			},
		},

		created() {
			if (this.broker.isMetricsEnabled()) registerMetrics(this.broker.metrics);
		},

		async started() {
			// Fails here, before connecting, with web-push's own message when a key or the subject is malformed.
			const webPush = vapid ? await WebPushProvider.create(vapid) : null;
			await Promise.all([redis.connect(), workerRedis.connect()]);
			const common = { prefix: keys.queuePrefix, connection: redis, workerConnection: workerRedis, deliveredKey: keys.delivered, enqueuedKey: keys.enqueued, retry: n.retry };
			email = new ChannelQueue<EmailJob>({
				...common, channel: "email", concurrency: n.emailConcurrency, ratePerSecond: n.emailRatePerSecond,
				process: (job, { id }) => deliverEmail({ redis, keys, templates, transport: smtp, from: n.smtpFrom, publicUrl: n.publicUrl }, job, id),
				observer: queueObserver("email", this.broker.metrics, this.logger, clock),
			});
			email.start();
			if (webPush) {
				push = new ChannelQueue<PushJob>({
					...common, channel: "push", concurrency: PUSH_CONCURRENCY, ratePerSecond: n.pushRatePerSecond,
					process: (job, { signal }) => deliverPush({ redis, keys, templates, providers: [webPush] }, job, signal),
					observer: queueObserver("push", this.broker.metrics, this.logger, clock),
				});
				push.start();
			} else {
				const missing = Object.entries({ VAPID_PUBLIC_KEY: publicKey, VAPID_PRIVATE_KEY: privateKey, VAPID_SUBJECT: subject }).filter(([, v]) => !v).map(([name]) => name);
				if (missing.length < 3) this.logger.error(`web push is OFF: ${missing.join(", ")} unset (all three VAPID variables are needed)`);
				else this.logger.info("web push is off (VAPID_PUBLIC_KEY / VAPID_PRIVATE_KEY / VAPID_SUBJECT unset); e-mail and in-app only");
			}
			stopGauge = pollJobCounts([email, push], this.broker.metrics, JOB_COUNTS_EVERY_MS);
			this.logger.info(`notification queues started (e-mail${push ? ", push" : ""}); links point to ${n.publicUrl}`);
		},

		async stopped() {
			stopGauge?.();
			const results = await Promise.all([email?.close(SHUTDOWN_GRACE_MS), push?.close(SHUTDOWN_GRACE_MS)]);
			if (results.some((r) => r?.cancelled)) this.logger.warn("notification queues: jobs still running after the grace period go back to the queue and are retried");
			smtp.close();
			await Promise.all([closeRedis(redis), closeRedis(workerRedis)]);
		},
	};
}
