/**
 * notification: e-mail, web push and in-app alerts produced from events, queued in Redis.
 */
import type { Context, ServiceSchema } from "moleculer";
import nodemailer from "nodemailer";
import type { Config } from "../lib/config.ts";
import type { CloudEvent } from "../lib/events/cloudevents.ts";
import type { UserCreated } from "../lib/events/catalog.ts";
import { closeRedis, createRedis } from "../lib/redis.ts";
import { eventHandlersMixin } from "../mixins/events.mixin.ts";
import { healthMixin } from "../mixins/health.mixin.ts";
import { addAlert, listAlerts } from "./notification/inbox.ts";

export default function notificationService(config: Config): ServiceSchema {
	const redis = createRedis(config.redisUrl!, `${config.nodeId}/notification`);
	const smtp = nodemailer.createTransport({ url: config.smtpUrl!, connectionTimeout: 3_000, greetingTimeout: 3_000, socketTimeout: 10_000 });

	return {
		name: "notification",
		mixins: [healthMixin(), eventHandlersMixin({ handlers: { "user.created": "onUserCreated" } })],

		actions: {
			listAlerts: {
				params: { userId: { type: "string", max: 100 }, limit: { type: "number", integer: true, min: 1, max: 100, default: 50, convert: true } },
				async handler(ctx: Context<{ userId: string; limit: number }>) {
					return listAlerts(redis, ctx.params.userId, ctx.params.limit);
				},
			},
		},

		methods: {
			healthChecks() {
				return { redis: () => redis.ping(), smtp: () => smtp.verify() };
			},
			async onUserCreated(event: CloudEvent<UserCreated>) {
				const { userId, name } = event.data;
				await addAlert(redis, userId, {
					id: `${event.id}:welcome`,
					category: "account",
					title: "Welcome to Backplane",
					body: name ? `Hi ${name}, your account is ready.` : "Your account is ready.",
					createdAt: event.time,
				});
			},
		},

		async started() {
			await redis.connect();
		},
		async stopped() {
			smtp.close();
			await closeRedis(redis);
		},
	};
}
