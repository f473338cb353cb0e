/**
 * billing: plans, subscriptions, invoices and Stripe on MongoDB (or any MongoDB-wire server).
 */
import type { Context, ServiceSchema } from "moleculer";
import type { Config } from "../lib/config.ts";
import type { CloudEvent } from "../lib/events/cloudevents.ts";
import type { UserCreated } from "../lib/events/catalog.ts";
import { createMongoClient } from "../lib/mongo.ts";
import { eventHandlersMixin } from "../mixins/events.mixin.ts";
import { healthMixin } from "../mixins/health.mixin.ts";
import { customers, ensureCustomer } from "./billing/customers.ts";

export default function billingService(config: Config): ServiceSchema {
	const mongo = createMongoClient(config.mongoUrl!, `${config.nodeId}/billing`);
	const db = mongo.db();

	return {
		name: "billing",
		mixins: [healthMixin(), eventHandlersMixin({ handlers: { "user.created": "onUserCreated" } })],

		actions: {
			getCustomer: {
				params: { userId: { type: "string", max: 100 } },
				async handler(ctx: Context<{ userId: string }>) {
					return customers(db).findOne({ _id: ctx.params.userId });
				},
			},
		},

		methods: {
			healthChecks() {
				return { mongodb: () => db.command({ ping: 1 }) };
			},
			async onUserCreated(event: CloudEvent<UserCreated>) {
				const created = await ensureCustomer(db, event.data, event.id, new Date());
				this.logger.info(created ? `customer created for user ${event.data.userId}` : `customer for user ${event.data.userId} already exists`);
			},
		},

		async started() {
			// Connecting eagerly surfaces a wrong URL at start-up, not at the first request.
			await mongo.connect();
		},
		async stopped() {
			await mongo.close();
		},
	};
}
