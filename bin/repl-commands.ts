/**
 * The operator's REPL commands (`npm run repl`, then `help`). Each one calls an action of the
 * running cluster as an operator holding every admin permission: whoever can reach the
 * transporter can call any action anyway, so the REPL adds convenience, not power.
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import type { ServiceBroker } from "moleculer";
import type { Caller } from "../lib/caller.ts";
import { peekDeadLetters, replayDeadLetters } from "../lib/events/dead-letters.ts";
import { queueDepths } from "../lib/events/queue-depths.ts";
import { eventQueueNames } from "../mixins/events.mixin.ts";

interface Args {
	options?: Record<string, unknown>;
	[positional: string]: unknown;
}

export interface ReplCommand {
	command: string;
	description: string;
	options?: { option: string; description: string }[];
	action(broker: ServiceBroker, args: Args): Promise<void>;
}

const OPERATOR: Caller = { userId: `repl@${os.hostname()}`, sessionId: "repl", roles: ["admin"], permissions: ["users:read", "users:write", "roles:write", "billing:admin", "notifications:admin"] };
const asOperator = { meta: { caller: OPERATOR } };
const print = (line: string) => process.stdout.write(`${line}\n`);
const json = (value: unknown) => print(JSON.stringify(value, null, 2));

interface Report {
	id: string;
	email: string;
	roles: string[];
	emailVerified: boolean;
	activeSessions: number;
	createdAt: string;
}

async function userOf(broker: ServiceBroker, user: string): Promise<Report> {
	return broker.call<Report, object>("auth.findUser", { user }, asOperator);
}

/** Who consumes which event type, as consumers advertise it in the registry (one entry per service). */
function consumers(broker: ServiceBroker): { service: string; type: string }[] {
	const seen = new Map<string, { service: string; type: string }>();
	for (const svc of broker.registry.getServiceList({ onlyAvailable: true }) as { name: string; metadata?: { eventTypes?: string[] } }[]) {
		for (const type of svc.metadata?.eventTypes ?? []) seen.set(`${svc.name} ${type}`, { service: svc.name, type });
	}
	return [...seen.values()];
}

/** Each event queue and its dead-letter queue (one per event type). */
function eventQueues(broker: ServiceBroker): string[] {
	const names = consumers(broker).flatMap(({ service, type }) => Object.values(eventQueueNames(broker.namespace, service, type)));
	return [...new Set(names)].sort();
}

/** The dead-letter queue of each consumed event type. */
function deadLetterQueues(broker: ServiceBroker): { type: string; queue: string }[] {
	const byType = new Map(consumers(broker).map(({ service, type }) => [type, eventQueueNames(broker.namespace, service, type).deadLetter]));
	return [...byType].sort().map(([type, queue]) => ({ type, queue }));
}

export function operatorReplCommands(opts: { rabbitmqUrl: string }): ReplCommand[] {
	return [
		{
			command: "user-find <user>",
			description: "Show a user (by e-mail or id): roles, verification, live sessions",
			async action(broker, args) {
				json(await userOf(broker, String(args.user)));
			},
		},
		{
			command: "user-roles <user> <roles...>",
			description: "Replace a user's roles, e.g. user-roles ada@example.com user admin",
			async action(broker, args) {
				const { id } = await userOf(broker, String(args.user));
				json(await broker.call("auth.setUserRoles", { userId: id, roles: args.roles as string[] }, asOperator));
			},
		},
		{
			command: "user-sessions-revoke <user>",
			description: "End every session of a user (their tokens stop working at every gateway)",
			async action(broker, args) {
				const { id } = await userOf(broker, String(args.user));
				const { revokedSessions } = await broker.call<{ revokedSessions: number }, object>("auth.revokeUserSessions", { userId: id }, asOperator);
				print(`${revokedSessions} session(s) ended`);
			},
		},
		{
			command: "user-mfa-reset <user>",
			description: "Turn off a user's two-step login, for one who lost the phone and the recovery codes (prove who they are first); they are told by e-mail",
			async action(broker, args) {
				const { id } = await userOf(broker, String(args.user));
				await broker.call("auth.resetUserMfa", { userId: id }, asOperator);
				print("two-step login turned off; the user was told by e-mail");
			},
		},
		{
			command: "invoice-credit <invoiceId> <reason>",
			description: "Give money back on a paid invoice: a credit note refunded to the card (reason: duplicate, fraudulent, order_change or product_unsatisfactory)",
			options: [
				{ option: "--amount <n>", description: "minor units (cents); default: all that is left" },
				{ option: "--memo <text>", description: "why, for the records (the customer does not see it)" },
				{ option: "--key <key>", description: "the idempotency key of an earlier run to retry it (printed by every run)" },
			],
			async action(broker, args) {
				const text = (v: unknown) => (typeof v === "string" || typeof v === "number" ? String(v) : undefined);
				const key = text(args.options?.key) ?? `repl-${randomUUID()}`;
				const memo = text(args.options?.memo);
				const amount = args.options?.amount === undefined ? undefined : Number(args.options.amount);
				// A typo must not become "all that is left": minor units, a positive whole number.
				if (amount !== undefined && !(Number.isSafeInteger(amount) && amount > 0)) {
					print("--amount takes minor units (cents), a positive whole number, e.g. --amount 1250");
					return;
				}
				// Printed first: if the call times out, a rerun with --key cannot refund twice.
				print(`idempotency key ${key}`);
				const note = await broker.call<{ number: string; status: string; amount: number; currency: string; failure: string | null }, object>(
					"billing.issueCreditNote",
					{ id: args.invoiceId, reason: args.reason, idempotencyKey: key, ...(amount === undefined ? {} : { amount }), ...(memo ? { memo } : {}) },
					asOperator,
				);
				print(`credit note ${note.number}: ${note.status}, ${note.amount} ${note.currency}${note.failure ? ` (${note.failure})` : ""}`);
			},
		},
		{
			command: "keys-rotate",
			description: "Start signing access tokens with a new key (old keys stay published until their tokens expire)",
			async action(broker) {
				const { kid } = await broker.call<{ kid: string }, object>("auth.rotateSigningKey", {}, asOperator);
				print(`now signing with key ${kid}`);
			},
		},
		{
			command: "outbox",
			description: "Auth's event outbox: how many events wait to be relayed, and the newest rows",
			options: [
				{ option: "--pending", description: "only the events not yet relayed" },
				{ option: "--limit <n>", description: "how many rows (default 20)" },
			],
			async action(broker, args) {
				const res = await broker.call<{ pending: number; rows: { id: string; type: string; createdAt: string; publishedAt: string | null }[] }, object>(
					"auth.outbox",
					{ pendingOnly: args.options?.pending === true, limit: Number(args.options?.limit ?? 20) },
					asOperator,
				);
				print(`${res.pending} event(s) waiting to be relayed`);
				for (const r of res.rows) print(`${r.id}  ${r.type}  created ${r.createdAt}  ${r.publishedAt ? `relayed ${r.publishedAt}` : "PENDING"}`);
			},
		},
		{
			command: "event-replay <eventId>",
			description: "Relay one of auth's events again (consumers apply it once: they deduplicate by id)",
			async action(broker, args) {
				const { id, type } = await broker.call<{ id: string; type: string }, object>("auth.replayEvent", { eventId: String(args.eventId) }, asOperator);
				print(`${type} ${id} queued for relaying again`);
			},
		},
		{
			command: "breakers",
			description: "Endpoints each gateway's circuit breaker has taken out of rotation",
			async action(broker) {
				const gateways = (broker.registry.getServiceList({ onlyAvailable: true }) as { name: string; nodeID: string }[]).filter((s) => s.name === "gateway");
				for (const { nodeID } of gateways) {
					const { open } = await broker.call<{ open: { action: string; nodeId: string }[] }, object>("gateway.circuitBreakers", {}, { nodeID });
					print(`${nodeID}: ${open.length ? open.map((o) => `${o.action}@${o.nodeId}`).join(", ") : "all circuits closed"}`);
				}
			},
		},
		{
			command: "queues",
			description: "Queue depths: each event queue and dead-letter queue in RabbitMQ, and the notification jobs per state in BullMQ",
			async action(broker) {
				for (const q of await queueDepths(opts.rabbitmqUrl, eventQueues(broker))) {
					print("missing" in q ? `${q.name}  (no such queue)` : `${q.name}  ${q.messages} message(s)  ${q.consumers} consumer(s)`);
				}
				const counts = await broker.call<Record<string, Record<string, number> | null>, object>("notification.queueCounts", {}, asOperator);
				for (const [channel, states] of Object.entries(counts)) {
					print(`notification ${channel}: ${states ? Object.entries(states).map(([state, n]) => `${state} ${n}`).join("  ") : "off"}`);
				}
			},
		},
		{
			command: "events-dead-letters",
			description: "Events a consumer failed on every attempt, per type: how many, and the first few (event id, the consumer that failed)",
			options: [{ option: "--limit <n>", description: "messages shown per type (default 10)" }],
			async action(broker, args) {
				for (const { type, queue } of deadLetterQueues(broker)) {
					const { total, items } = await peekDeadLetters(opts.rabbitmqUrl, queue, Number(args.options?.limit ?? 10));
					print(`${type}: ${total} dead letter(s)`);
					for (const d of items) print(`  ${d.eventId}  failed in ${d.consumer || "?"}`);
				}
			},
		},
		{
			command: "events-replay <type>",
			description: "Send an event type's dead letters back to the consumer that failed on them (after fixing the cause); handlers deduplicate by event id",
			options: [{ option: "--max <n>", description: "at most this many (default 1000)" }],
			async action(broker, args) {
				const target = deadLetterQueues(broker).find((d) => d.type === String(args.type));
				if (!target) {
					print(`no running service consumes ${String(args.type)}`);
					return;
				}
				const { replayed, kept } = await replayDeadLetters(opts.rabbitmqUrl, target.queue, Number(args.options?.max ?? 1_000));
				print(`${replayed} ${String(args.type)} event(s) replayed${kept ? `; ${kept} kept (their consumer's queue is gone)` : ""}`);
			},
		},
		{
			command: "health",
			description: "Every service and node with its dependency checks, as the gateway sees them",
			async action(broker) {
				json(await broker.call("gateway.liveness", {}, asOperator));
			},
		},
		{
			command: "notifications-failed <channel>",
			description: "List failed notification jobs (dead letters) of a channel: email or push",
			options: [
				{ option: "--offset <n>", description: "skip the newest n" },
				{ option: "--limit <n>", description: "how many (default 20, at most 100)" },
			],
			async action(broker, args) {
				const page = await broker.call<FailedJobsPage, object>("notification.failedJobs", { channel: args.channel, offset: args.options?.offset ?? 0, limit: args.options?.limit ?? 20 }, asOperator);
				print(`${page.total} failed ${typeof args.channel === "string" ? args.channel : ""} job(s)`);
				for (const job of page.items) {
					print(`${job.id}  ${job.data.eventType}  user ${job.data.userId}  ${job.attempts} attempt(s)  ${job.failedAt ? new Date(job.failedAt).toISOString() : "-"}  ${job.failedReason}`);
				}
			},
		},
		{
			command: "notifications-retry <channel> [jobId]",
			description: "Re-queue one failed notification job, or all of them with --all",
			options: [{ option: "--all", description: "re-queue every failed job of the channel" }],
			async action(broker, args) {
				const all = args.options?.all === true;
				if (!args.jobId && !all) {
					print("name a job id or pass --all");
					return;
				}
				const { retried } = await broker.call<{ retried: number }, object>("notification.retryFailed", { channel: args.channel, ...(args.jobId ? { jobId: args.jobId } : { all }) }, asOperator);
				print(`${retried} job(s) re-queued`);
			},
		},
	];
}

interface FailedJobsPage {
	total: number;
	items: { id: string; attempts: number; failedAt: number | null; failedReason: string; data: { eventType: string; userId: string } }[];
}
