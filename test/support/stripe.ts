/**
 * Test support for billing: stripe-mock's address, signed Stripe webhook payloads, a clock the
 * test moves, a billing node with that clock injected, and a tap that counts the events billing
 * publishes to RabbitMQ.
 */
import { randomBytes } from "node:crypto";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import amqp from "amqplib";
import { ServiceBroker } from "moleculer";
import Stripe from "stripe";
import type { CloudEvent } from "../../lib/events/cloudevents.ts";
import { brokerOptions } from "../../moleculer.config.ts";
import billingService from "../../services/billing.service.ts";
import { infra, testConfig, testEnv, uniqueId } from "./infra.ts";

export const STRIPE_API_BASE = process.env.STRIPE_API_BASE ?? "http://127.0.0.1:52111";
export const WEBHOOK_SECRET = "whsec_backplane_test_secret";

/** The environment of a billing test node: stripe-mock, a webhook secret, a fast scheduler. */
export function billingEnv(namespace: string, extra: Record<string, string> = {}): Record<string, string> {
	return testEnv(namespace, { STRIPE_API_BASE, STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET, BILLING_SWEEP_INTERVAL_MS: "100", ...extra });
}

/** A clock tests move forward; every node of a test shares one. */
export class TestClock {
	private ms: number;
	constructor(start = Date.now()) {
		this.ms = start;
	}
	readonly now = () => new Date(this.ms);
	advance(ms: number): void {
		this.ms += ms;
	}
	seconds(): number {
		return Math.floor(this.ms / 1000);
	}
}

/** An in-process node hosting billing with the test's clock. */
export async function startBillingNode(env: Record<string, string>, clock: TestClock, nodeId = uniqueId("billing-")): Promise<ServiceBroker> {
	const config = testConfig({ ...env, SERVICES: "billing", NODE_ID: nodeId });
	const broker = new ServiceBroker(brokerOptions(config, process.env.TEST_LOG_LEVEL ? {} : { logger: false }));
	broker.createService(billingService(config, { now: clock.now }));
	await broker.start();
	return broker;
}

export type StripeTestEvent = { id: string; type: string; created: number; data: { object: Record<string, unknown> } };

export function stripeEvent(type: string, object: Record<string, unknown>, created: number, id = `evt_${randomBytes(8).toString("hex")}`): StripeTestEvent {
	return { id, type, created, data: { object }, ...{ object: "event", api_version: "2026-10-28.endive", livemode: false, pending_webhooks: 1, request: { id: null, idempotency_key: null } } };
}

/** The payload and `Stripe-Signature` header Stripe would send, signed at `timestamp`. */
export function signed(event: StripeTestEvent, timestamp: number, secret = WEBHOOK_SECRET): { rawBody: string; signature: string } {
	const rawBody = JSON.stringify(event);
	return { rawBody, signature: Stripe.webhooks.generateTestHeaderString({ payload: rawBody, secret, timestamp }) };
}

/** Counts the CloudEvents published to `<namespace>.<type>` exchanges from now on. */
export async function tapEvents(namespace: string, types: string[]) {
	const connection = await amqp.connect(infra.rabbitmqUrl);
	const channel = await connection.createChannel();
	const seen: CloudEvent<Record<string, unknown>>[] = [];
	for (const type of types) {
		const exchange = `${namespace}.${type}`;
		await channel.assertExchange(exchange, "fanout", { durable: true });
		const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
		await channel.bindQueue(queue, exchange, "");
		await channel.consume(queue, (msg) => msg && seen.push(JSON.parse(msg.content.toString()) as CloudEvent<Record<string, unknown>>), { noAck: true });
	}
	return {
		seen,
		of: (type: string, subject?: string) => seen.filter((e) => e.type === type && (!subject || e.subject === subject || e.data.userId === subject)),
		close: async () => {
			await channel.close().catch(() => undefined);
			await connection.close().catch(() => undefined);
		},
	};
}

/**
 * Stripe as a card network that answers: stripe-mock always answers a PaymentIntent with
 * `requires_payment_method`, so charges that succeed or are declined come from here. Every
 * other request is passed to stripe-mock unchanged (real shapes for customers and payment
 * methods); a PaymentIntent is answered with the next scripted outcome (`succeeded` when the
 * script is empty), and a repeated idempotency key gets its first answer again, as Stripe does.
 * Refunds and Stripe credit notes are answered here too (and recorded), so a test can count them.
 */
export async function startCardNetwork() {
	const script: ("succeeded" | "declined")[] = [];
	const answers = new Map<string, { status: number; body: string }>();
	const charges: { amount: number; idempotencyKey: string; outcome: string }[] = [];
	// Refunds by idempotency key, answered again unchanged for a repeated key (as Stripe does).
	const refunds: { amount: number; idempotencyKey: string; paymentIntent: string }[] = [];
	// Stripe credit notes (on invoices Stripe billed), likewise.
	const creditNotes: { amount: number; refundAmount: number; idempotencyKey: string; invoice: string }[] = [];
	const upstream = new URL(STRIPE_API_BASE);
	const server = createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on("data", (c: Buffer) => chunks.push(c));
		req.on("end", () => {
			const body = Buffer.concat(chunks);
			if (req.method === "POST" && req.url === "/v1/payment_intents") {
				const key = String(req.headers["idempotency-key"] ?? randomBytes(8).toString("hex"));
				let answer = answers.get(key);
				if (!answer) {
					const form = new URLSearchParams(body.toString());
					const outcome = script.shift() ?? "succeeded";
					const id = `pi_${randomBytes(6).toString("hex")}`;
					const amount = Number(form.get("amount"));
					charges.push({ amount, idempotencyKey: key, outcome });
					answer = outcome === "succeeded"
						? { status: 200, body: JSON.stringify({ id, object: "payment_intent", status: "succeeded", amount, currency: form.get("currency"), last_payment_error: null }) }
						: { status: 402, body: JSON.stringify({ error: { type: "card_error", code: "card_declined", decline_code: "insufficient_funds", message: "Your card has insufficient funds.", payment_intent: { id, object: "payment_intent", status: "requires_payment_method" } } }) };
					answers.set(key, answer);
				}
				res.writeHead(answer.status, { "content-type": "application/json" }).end(answer.body);
				return;
			}
			if (req.method === "POST" && req.url === "/v1/credit_notes") {
				const key = String(req.headers["idempotency-key"] ?? randomBytes(8).toString("hex"));
				let answer = answers.get(key);
				if (!answer) {
					const form = new URLSearchParams(body.toString());
					const invoice = form.get("invoice") ?? "";
					creditNotes.push({ amount: Number(form.get("amount")), refundAmount: Number(form.get("refund_amount")), idempotencyKey: key, invoice });
					const refund = `re_${randomBytes(6).toString("hex")}`;
					answer = { status: 200, body: JSON.stringify({ id: `cn_${randomBytes(6).toString("hex")}`, object: "credit_note", invoice, amount: Number(form.get("amount")), refunds: [{ amount_refunded: Number(form.get("refund_amount")), refund, type: "refund" }] }) };
					answers.set(key, answer);
				}
				res.writeHead(answer.status, { "content-type": "application/json" }).end(answer.body);
				return;
			}
			if (req.method === "POST" && req.url === "/v1/refunds") {
				const key = String(req.headers["idempotency-key"] ?? randomBytes(8).toString("hex"));
				let answer = answers.get(key);
				if (!answer) {
					const form = new URLSearchParams(body.toString());
					const paymentIntent = form.get("payment_intent") ?? "";
					const amount = Number(form.get("amount"));
					refunds.push({ amount, idempotencyKey: key, paymentIntent });
					answer = { status: 200, body: JSON.stringify({ id: `re_${randomBytes(6).toString("hex")}`, object: "refund", status: "succeeded", amount, currency: "usd", payment_intent: paymentIntent, failure_reason: null }) };
					answers.set(key, answer);
				}
				res.writeHead(answer.status, { "content-type": "application/json" }).end(answer.body);
				return;
			}
			const proxied = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
				res.writeHead(up.statusCode ?? 502, up.headers);
				up.pipe(res);
			});
			proxied.on("error", () => res.writeHead(502).end());
			proxied.end(body);
		});
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	return {
		url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
		/** The next charges' outcomes, in order. */
		script,
		charges,
		refunds,
		creditNotes,
		close: () => new Promise<void>((resolve) => server.close(() => resolve())),
	};
}
