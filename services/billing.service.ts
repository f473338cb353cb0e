/**
 * billing: plans, subscriptions, invoices and Stripe on MongoDB (or any MongoDB-wire server).
 */
import type { ServiceSchema } from "moleculer";
import type { Config } from "../lib/config.ts";
import { createMongoClient } from "../lib/mongo.ts";
import { healthMixin } from "../mixins/health.mixin.ts";

export default function billingService(config: Config): ServiceSchema {
	const mongo = createMongoClient(config.mongoUrl!, `${config.nodeId}/billing`);

	return {
		name: "billing",
		mixins: [healthMixin()],

		methods: {
			healthChecks() {
				return { mongodb: () => mongo.db().command({ ping: 1 }) };
			},
		},

		async started() {
			// Connecting lazily would hide a wrong URL until the first request.
			await mongo.connect();
		},
		async stopped() {
			await mongo.close();
		},
	};
}
