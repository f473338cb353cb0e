/**
 * notification: e-mail, web push and in-app alerts produced from events, queued in Redis.
 */
import type { ServiceSchema } from "moleculer";
import nodemailer from "nodemailer";
import type { Config } from "../lib/config.ts";
import { createRedis } from "../lib/redis.ts";
import { healthMixin } from "../mixins/health.mixin.ts";

export default function notificationService(config: Config): ServiceSchema {
	const redis = createRedis(config.redisUrl!, `${config.nodeId}/notification`);
	const smtp = nodemailer.createTransport(config.smtpUrl!, { connectionTimeout: 3_000, greetingTimeout: 3_000, socketTimeout: 10_000 });

	return {
		name: "notification",
		mixins: [healthMixin()],

		methods: {
			healthChecks() {
				return { redis: () => redis.ping(), smtp: () => smtp.verify() };
			},
		},

		async started() {
			await redis.connect();
		},
		async stopped() {
			smtp.close();
			await redis.quit();
		},
	};
}
