/**
 * The use cases: an event comes in and becomes notifications (handleEvent); a queued e-mail or
 * push job is delivered (deliverEmail, deliverPush). Everything they need arrives as arguments,
 * so tests run them against a real Redis and SMTP server without a broker.
 *
 * Idempotency: the in-app alert id and the job ids derive from the event id, so an event
 * delivered again stores and queues nothing new. Preferences are checked when the event arrives
 * and again when a job is delivered (a user may switch a category off while a job waits).
 */
import type { Redis } from "ioredis";
import type { CloudEvent } from "../../lib/events/cloudevents.ts";
import { getContact, isDeleted, markDeleted, upsertContact } from "./contacts.ts";
import { messageIdFor, sendEmail } from "./email.ts";
import type { MailTransport } from "./email.ts";
import { addAlert, deleteInbox } from "./inbox.ts";
import type { Alert } from "./inbox.ts";
import { safeId } from "./keys.ts";
import type { Keys } from "./keys.ts";
import { getPreferences, toSwitch } from "./preferences.ts";
import type { Preferences } from "./preferences.ts";
import { getSubscription, listSubscriptions, removeAllSubscriptions, removeSubscription } from "./push.ts";
import type { PushProvider } from "./push.ts";
import { PermanentDeliveryError } from "./queues.ts";
import type { Outcome } from "./queues.ts";
import type { Templates } from "./templates.ts";
import { InvalidEventDataError, LOCKED_CATEGORIES, link, plannedChannels, workflowById, workflowFor } from "./workflows.ts";
import type { Channel, Workflow } from "./workflows.ts";

/** What every delivery job carries: its event, for idempotency, logs and latency. */
export interface JobBase {
	eventId: string;
	eventType: string;
	eventTime: string;
	requestId: string | null;
	workflow: string;
	userId: string;
	vars: Record<string, unknown>;
}

export interface EmailJob extends JobBase {
	/** The address the event named; null means the user's contact record, read at send time. */
	to: { email: string; name: string | null } | null;
}

export interface PushJob extends JobBase {
	subscriptionId: string;
	alertId: string;
}

export interface Enqueue<T> {
	enqueue(jobId: string, data: T): Promise<boolean>;
}

export interface NotifierDeps {
	redis: Redis;
	keys: Keys;
	templates: Templates;
	publicUrl: string;
	clock: () => Date;
	email: Enqueue<EmailJob>;
	/** Null when push is not configured (no VAPID keys). */
	push: Enqueue<PushJob> | null;
	/** Called once per newly stored in-app alert. */
	onAlert(userId: string, alert: Alert, unreadCount: number): Promise<void> | void;
}

export type ChannelOutcome = "stored" | "queued" | "duplicate" | "skipped";

export interface HandledEvent {
	workflow: string | null;
	channels: { channel: Channel; outcome: ChannelOutcome; reason?: string; count?: number }[];
}

export const jobIdFor = (eventId: string, channel: Channel, device?: string) => [safeId(eventId), channel, device].filter(Boolean).join(".");
export const alertIdFor = (eventId: string, workflow: string) => `${safeId(eventId)}.${workflow}`;
export const preferencesUrl = (publicUrl: string) => link(publicUrl, "settings", "notifications");

export async function handleEvent(deps: NotifierDeps, event: CloudEvent, requestId: string | null = null): Promise<HandledEvent> {
	const { redis, keys } = deps;
	const data = event.data as { userId?: unknown; email?: unknown; name?: unknown };
	if (typeof data.userId !== "string" || !data.userId) throw new InvalidEventDataError(`${event.type} ${event.id}: data.userId is missing`);
	const userId = data.userId;

	if (event.type === "user.deleted") {
		await purgeUser(redis, keys, userId);
		return { workflow: null, channels: [] };
	}
	const { deleted, preferences, contact } = await readUser(redis, keys, userId);
	if (deleted) return { workflow: null, channels: [] };
	if (typeof data.email === "string") {
		await upsertContact(redis, keys, { userId, email: data.email, name: typeof data.name === "string" ? data.name : null, locale: null, updatedAt: event.time });
	}

	const workflow = workflowFor(event.type);
	if (!workflow) return { workflow: null, channels: [] };
	const planned = plannedChannels(workflow, toSwitch(preferences));
	const skipped = workflow.channels.filter((c) => !planned.includes(c)).map((channel) => ({ channel, outcome: "skipped" as const, reason: "preference" }));
	const vars = workflow.variables(event.data as never, deps.publicUrl);
	const base: JobBase = { eventId: event.id, eventType: event.type, eventTime: event.time, requestId, workflow: workflow.id, userId, vars };
	const alertId = alertIdFor(event.id, workflow.id);

	// The channels do not depend on one another: their round trips overlap.
	const delivered = await Promise.all(planned.map(async (channel): Promise<HandledEvent["channels"][number]> => {
		if (channel === "in_app") {
			const text = deps.templates.alert(workflow.id, vars, contact?.locale);
			const alert: Alert = { id: alertId, workflow: workflow.id, category: workflow.category, title: text.title, body: text.body, url: actionUrl(vars), createdAt: event.time, readAt: null };
			const { added, unreadCount } = await addAlert(redis, keys, userId, alert);
			if (added) await deps.onAlert(userId, alert, unreadCount);
			return { channel, outcome: added ? "stored" : "duplicate" };
		}
		if (channel === "email") {
			const recipient = workflow.recipient(event.data as never);
			const to = recipient.email ? { email: recipient.email, name: recipient.name ?? null } : null;
			const queued = await deps.email.enqueue(jobIdFor(event.id, "email"), { ...base, to });
			return { channel, outcome: queued ? "queued" : "duplicate" };
		}
		if (!deps.push) return { channel, outcome: "skipped", reason: "push not configured" };
		const devices = await listSubscriptions(redis, keys, userId);
		const queued = (await Promise.all(devices.map((sub) => deps.push!.enqueue(jobIdFor(event.id, "push", sub.id), { ...base, subscriptionId: sub.id, alertId })))).filter(Boolean).length;
		return devices.length === 0 ? { channel, outcome: "skipped", reason: "no device" } : { channel, outcome: queued ? "queued" : "duplicate", count: queued };
	}));
	return { workflow: workflow.id, channels: [...skipped, ...delivered] };
}

/** What every delivery decision reads about a user, sent together: one round trip of waiting instead of three. */
async function readUser(redis: Redis, keys: Keys, userId: string) {
	const [deleted, preferences, contact] = await Promise.all([isDeleted(redis, keys, userId), getPreferences(redis, keys, userId), getContact(redis, keys, userId)]);
	return { deleted, preferences, contact };
}

/** user.deleted: everything this service keeps about the user goes, and stays gone. */
export async function purgeUser(redis: Redis, keys: Keys, userId: string): Promise<void> {
	await markDeleted(redis, keys, userId);
	await Promise.all([deleteInbox(redis, keys, userId), removeAllSubscriptions(redis, keys, userId), redis.del(keys.contact(userId), keys.preferences(userId))]);
}

export interface EmailDeps {
	redis: Redis;
	keys: Keys;
	templates: Templates;
	transport: MailTransport;
	from: string;
	publicUrl: string;
}

export async function deliverEmail(deps: EmailDeps, job: EmailJob, jobId: string): Promise<Outcome> {
	const { redis, keys } = deps;
	const workflow = knownWorkflow(job.workflow);
	const { deleted, preferences, contact } = await readUser(redis, keys, job.userId);
	if (deleted || !wants(workflow, preferences, "email")) return "skipped";
	const to = job.to ?? (contact ? { email: contact.email, name: contact.name } : null);
	// Billing may publish before user.created reached us: retry until the contact is known.
	if (!to) throw new Error(`no e-mail address known yet for user ${job.userId}`);
	const rendered = deps.templates.email(workflow.id, { name: to.name, ...job.vars }, { locale: contact?.locale, locked: LOCKED_CATEGORIES.has(workflow.category), preferencesUrl: preferencesUrl(deps.publicUrl) });
	await sendEmail(deps.transport, deps.from, {
		to: { address: to.email, name: to.name },
		...rendered,
		messageId: messageIdFor(jobId, deps.publicUrl),
		headers: { "X-Backplane-Event-Id": job.eventId, "X-Backplane-Workflow": workflow.id, "X-Entity-Ref-ID": jobId },
	});
	return "sent";
}

export interface PushDeps {
	redis: Redis;
	keys: Keys;
	templates: Templates;
	providers: readonly PushProvider[];
}

export async function deliverPush(deps: PushDeps, job: PushJob, signal?: AbortSignal): Promise<Outcome> {
	const { redis, keys } = deps;
	const workflow = knownWorkflow(job.workflow);
	const [sub, { deleted, preferences, contact }] = await Promise.all([getSubscription(redis, keys, job.userId, job.subscriptionId), readUser(redis, keys, job.userId)]);
	if (!sub || deleted || !wants(workflow, preferences, "push")) return "skipped";
	const provider = deps.providers.find((p) => p.kind === sub.kind);
	if (!provider) throw new PermanentDeliveryError(`no push provider for subscriptions of kind ${sub.kind}`);
	const text = deps.templates.alert(workflow.id, job.vars, contact?.locale);
	const message = { ...text, url: actionUrl(job.vars), tag: workflow.id, category: workflow.category, alertId: job.alertId };
	const push = workflow.push ?? { ttlSeconds: 86_400, urgency: "normal" as const };
	const result = await provider.send(sub, message, { ...push, topic: workflow.id, signal });
	if (result === "gone") {
		await removeSubscription(redis, keys, job.userId, sub.id);
		return "expired";
	}
	return "sent";
}

function knownWorkflow(id: string): Workflow {
	const workflow = workflowById(id);
	if (!workflow) throw new PermanentDeliveryError(`unknown workflow ${id}`);
	return workflow;
}

const wants = (workflow: Workflow, preferences: Preferences, channel: Channel) => plannedChannels(workflow, toSwitch(preferences)).includes(channel);

const actionUrl = (vars: Record<string, unknown>) => (typeof vars.actionUrl === "string" ? vars.actionUrl : null);
