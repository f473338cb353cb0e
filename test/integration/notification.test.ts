/**
 * The notification service end to end on the real servers: events published to RabbitMQ the way
 * auth's and billing's outbox relays publish them, e-mail read back from Mailpit (through a TCP
 * proxy this test can take down), Web Push received and decrypted by a fake push service, and
 * the live-alert broadcast seen by a second broker node (where a gateway would be).
 */
import { Queue } from "bullmq";
import { ServiceBroker } from "moleculer";
import type { Context } from "moleculer";
import webpush from "web-push";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../lib/caller.ts";
import { loadConfig } from "../../lib/config.ts";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import type { CloudEvent } from "../../lib/events/cloudevents.ts";
import type { EventCatalog, EventType } from "../../lib/events/catalog.ts";
import { AmqpEventPublisher } from "../../lib/events/publisher.ts";
import { closeRedis, createRedis } from "../../lib/redis.ts";
import { brokerOptions } from "../../moleculer.config.ts";
import type { Alert, AlertPage } from "../../services/notification/inbox.ts";
import { createKeys } from "../../services/notification/keys.ts";
import { operatorReplCommands } from "../../bin/repl-commands.ts";
import type { Preferences } from "../../services/notification/preferences.ts";
import { eventually, infra, startNode, testEnv, uniqueId } from "../support/infra.ts";
import { deleteMessages, getMessage, messagesTo } from "../support/mailpit.ts";
import { FakePushService, createBrowserSubscription, verifyVapid } from "../support/push-service.ts";
import { TcpProxy } from "../support/tcp-proxy.ts";

const PUBLIC_URL = "http://console.test:4000";

/** Removes every Redis key of a test namespace (inboxes, markers, BullMQ queues). */
async function dropNamespaceKeys(namespace: string): Promise<void> {
	const redis = createRedis(infra.redisUrl, "notification-test-cleanup");
	try {
		for await (const batch of redis.scanStream({ match: `notification:${namespace}:*`, count: 500 }) as AsyncIterable<string[]>) {
			if (batch.length) await redis.del(...batch);
		}
	} finally {
		await closeRedis(redis);
	}
}

/** What a browser makes of an attribute value (Handlebars escapes &, =, quotes, <, >, backtick). */
const decodeEntities = (html: string) => html.replace(/&(amp|lt|gt|quot|#x27|#x60|#x3D);/g, (_, e: string) => ({ amp: "&", lt: "<", gt: ">", quot: '"', "#x27": "'", "#x60": "`", "#x3D": "=" })[e]!);
const VAPID_SUBJECT = "mailto:ops@backplane.test";

describe("notification service", () => {
	const namespace = uniqueId("notif");
	const vapid = webpush.generateVAPIDKeys();
	const broadcasts: { userId: string; alert: Alert; unreadCount: number }[] = [];
	const addresses: string[] = [];
	let node: ServiceBroker;
	let observer: ServiceBroker;
	let publisher: AmqpEventPublisher;
	let pushService: FakePushService;
	let smtpProxy: TcpProxy;

	beforeAll(async () => {
		pushService = await FakePushService.start();
		const smtp = new URL(infra.smtpUrl);
		smtpProxy = new TcpProxy({ host: smtp.hostname, port: Number(smtp.port) });
		await smtpProxy.up();
		const env = testEnv(namespace, {
			SMTP_URL: `smtp://127.0.0.1:${smtpProxy.port}`,
			PUBLIC_URL,
			SMTP_FROM: "Backplane Test <no-reply@backplane.test>",
			VAPID_PUBLIC_KEY: vapid.publicKey,
			VAPID_PRIVATE_KEY: vapid.privateKey,
			VAPID_SUBJECT,
			PUSH_ENDPOINT_ORIGINS: pushService.origin,
			NOTIFY_BACKOFF_MS: "200",
			NOTIFY_BACKOFF_MAX_MS: "1000",
			NOTIFY_MAX_ATTEMPTS: "40",
		});
		node = await startNode(["notification"], env);
		observer = new ServiceBroker(brokerOptions(loadConfig({ ...env, NODE_ID: uniqueId("observer-") }, { services: [] }), { logger: false }));
		observer.createService({
			name: "alert-probe",
			events: {
				"notification.alert.created"(ctx: Context<{ userId: string; alert: Alert; unreadCount: number }>) {
					broadcasts.push(ctx.params);
				},
			},
		});
		await observer.start();
		await Promise.all([observer.waitForServices(["notification"], 10_000), node.waitForServices(["alert-probe"], 10_000)]);
		publisher = new AmqpEventPublisher(infra.rabbitmqUrl, namespace);
	});

	afterAll(async () => {
		await Promise.allSettled([node?.stop(), observer?.stop(), publisher?.close(), pushService?.close(), smtpProxy?.down()]);
		const ids = (await Promise.all(addresses.map((a) => messagesTo(a).catch(() => [])))).flat().map((m) => m.ID);
		await deleteMessages(ids).catch(() => undefined);
		await dropNamespaceKeys(namespace);
	});

	const newUser = (name: string | null = "Ada") => {
		const email = `${uniqueId("n")}@backplane.test`;
		addresses.push(email);
		return { userId: uniqueId("user-"), email, name };
	};
	const caller = (userId: string, permissions: string[] = []): { meta: { caller: Caller } } => ({ meta: { caller: { userId, sessionId: "s1", roles: [], permissions } } });

	async function publish<T extends EventType>(type: T, data: EventCatalog[T], id?: string): Promise<CloudEvent<EventCatalog[T]>> {
		const event = createCloudEvent({ type, source: "/backplane/test", subject: data.userId, data, id });
		await publisher.publish([{ event, requestId: `req-${event.id}` }]);
		return event;
	}
	const counter = (name: string, labels: Record<string, string>) => (node.metrics.getMetric(name)?.get(labels) as { value?: number } | undefined)?.value ?? 0;
	const inbox = (userId: string, params: object = {}) => node.call<AlertPage, object>("notification.list", params, caller(userId));
	const message = async (id: string) => {
		const mail = await getMessage(id);
		return { ...mail, Text: mail.Text.replaceAll("\r\n", "\n") };
	};
	const mailFor = async (address: string, subject?: RegExp) =>
		eventually(async () => (await messagesTo(address)).find((m) => !subject || subject.test(m.Subject)), 15_000, `an e-mail to ${address}`);

	it("turns user.created into a welcome e-mail, an in-app alert and a broadcast seen by another node", async () => {
		const user = newUser("Ada <Lovelace>");
		await publish("user.created", user);

		const summary = await mailFor(user.email);
		const mail = await message(summary.ID);
		expect(mail.Subject).toBe("Welcome to Backplane");
		expect(mail.To).toEqual([{ Name: "Ada <Lovelace>", Address: user.email }]);
		expect(mail.From.Address).toBe("no-reply@backplane.test");
		expect(mail.HTML).toContain(`href="${PUBLIC_URL}/"`);
		expect(mail.HTML).toContain("Welcome, Ada &lt;Lovelace&gt;!");
		expect(mail.HTML).toContain(`href="${PUBLIC_URL}/settings/notifications"`);
		expect(mail.Text).toContain(`Open Backplane:\n${PUBLIC_URL}/`);
		expect(mail.Text).toContain("Welcome, Ada <Lovelace>!");

		const page = await eventually(async () => ((await inbox(user.userId)).items.length ? inbox(user.userId) : undefined), 10_000, "the welcome alert");
		expect(page.unreadCount).toBe(1);
		expect(page.items).toHaveLength(1);
		expect(page.items[0]).toMatchObject({ workflow: "welcome", category: "account", title: "Welcome to Backplane", url: `${PUBLIC_URL}/`, readAt: null });
		const internal = await observer.call<Alert[], object>("notification.listAlerts", { userId: user.userId });
		expect(internal.map((a) => a.id)).toEqual([page.items[0]!.id]);

		const seen = await eventually(async () => broadcasts.find((b) => b.userId === user.userId), 5_000, "the alert broadcast");
		expect(seen.alert.id).toBe(page.items[0]!.id);
		expect(seen.unreadCount).toBe(1);
	});

	it("mails the password reset link from the event, as a security notice", async () => {
		const user = newUser();
		const resetUrl = `https://auth.backplane.test/password/reset?token=${uniqueId("t")}&u=1`;
		await publish("user.password_reset_requested", { ...user, resetUrl, expiresAt: new Date(Date.now() + 3_600_000).toISOString() });

		const mail = await message((await mailFor(user.email)).ID);
		expect(mail.Subject).toBe("Reset your Backplane password");
		const links = [...mail.HTML.matchAll(/href="([^"]+)"/g)].map((m) => decodeEntities(m[1]!));
		expect(links).toContain(resetUrl);
		expect(mail.Text).toContain(resetUrl);
		expect(mail.Text).toMatch(/security notice/);
		expect(mail.HTML).not.toContain("/settings/notifications");
		// Security mail is e-mail only: nothing in the inbox.
		expect((await inbox(user.userId)).items).toEqual([]);
	});

	it("sends one e-mail for an event delivered three times", async () => {
		const user = newUser();
		const consumed = () => counter("events.consumed.total", { service: "notification", type: "user.created", result: "ok" });
		const queuedBefore = counter("notifications.queued.total", { channel: "email" });
		const consumedBefore = consumed();
		const first = await publish("user.created", user);
		await publish("user.created", user, first.id);
		await publish("user.created", user, first.id);

		await eventually(async () => consumed() - consumedBefore >= 3, 10_000, "three deliveries handled");
		await mailFor(user.email);
		expect(counter("notifications.queued.total", { channel: "email" }) - queuedBefore).toBe(1);
		expect((await inbox(user.userId)).items).toHaveLength(1);
		expect(await messagesTo(user.email)).toHaveLength(1);
	});

	it("mails billing events to the address from the user's contact record, as preferences allow", async () => {
		const user = newUser("Grace");
		await publish("user.created", user);
		await mailFor(user.email, /Welcome/);
		const invoice = (number: string) => ({ invoiceId: uniqueId("in_"), number, userId: user.userId, status: "paid" as const, currency: "eur", total: 4_900 });

		await publish("invoice.paid", invoice("INV-1"));
		const receipt = await message((await mailFor(user.email, /INV-1/)).ID);
		expect(receipt.Subject).toBe("Receipt for invoice INV-1");
		expect(receipt.To).toEqual([{ Name: "Grace", Address: user.email }]);
		expect(receipt.Text).toContain("€49.00");
		expect(receipt.Text).toMatch(new RegExp(`${PUBLIC_URL}/billing/invoices/in_[0-9a-f]+`));

		const prefs = await node.call<Preferences, object>("notification.updatePreferences", { categories: { billing: { channels: { email: false } } } }, caller(user.userId));
		expect(prefs.categories.billing.channels).toEqual({ email: false, push: true, in_app: true });
		const queuedBefore = counter("notifications.queued.total", { channel: "email" });
		await publish("invoice.paid", invoice("INV-2"));
		// The in-app alert still comes (billing/in_app is on), so the event was handled.
		await eventually(async () => (await inbox(user.userId)).items.find((a) => a.title.includes("INV-2")), 10_000, "the INV-2 alert");
		expect(counter("notifications.queued.total", { channel: "email" })).toBe(queuedBefore);

		// Every e-mail switched off: security notices still go out, and cannot be switched off.
		await node.call("notification.updatePreferences", { channels: { email: false } }, caller(user.userId));
		await expect(node.call("notification.updatePreferences", { categories: { security: { channels: { email: false } } } }, caller(user.userId))).rejects.toMatchObject({
			code: 422,
			type: "PREFERENCE_LOCKED",
			data: { errors: [{ field: "categories.security.channels.email" }] },
		});
		await publish("user.password_changed", { ...user, changedAt: new Date().toISOString(), method: "change" });
		await mailFor(user.email, /password was changed/);
		expect((await messagesTo(user.email)).map((m) => m.Subject).sort()).toEqual(["Receipt for invoice INV-1", "Welcome to Backplane", "Your Backplane password was changed"]);
	});

	it("retries while the SMTP server is unreachable and delivers every mail once it is back, none twice", async () => {
		const users = Array.from({ length: 5 }, () => newUser());
		const retried = () => counter("notifications.retried.total", { channel: "email" });
		const retriedBefore = retried();
		await smtpProxy.down();
		try {
			for (const user of users) await publish("user.created", user);
			// Down for at least a second, long enough for every job to fail twice or more.
			await Promise.all([eventually(async () => retried() - retriedBefore >= 2 * users.length, 15_000, "every job to fail twice"), new Promise((r) => setTimeout(r, 1_000))]);
			expect(await Promise.all(users.map((u) => messagesTo(u.email)))).toEqual(users.map(() => []));
		} finally {
			await smtpProxy.up();
		}
		for (const user of users) await mailFor(user.email);
		const failed = await node.call<{ total: number; items: unknown[] }, object>("notification.failedJobs", { channel: "email" }, caller("ops", ["notifications:admin"]));
		expect(failed).toEqual({ total: 0, items: [] });
		for (const user of users) expect(await messagesTo(user.email)).toHaveLength(1);
	});

	it("pushes an encrypted message the device can decrypt, and drops a subscription the push service says is gone", async () => {
		const user = newUser();
		const browser = createBrowserSubscription(pushService.endpoint(`${user.userId}-phone`));
		await expect(node.call("notification.addPushSubscription", { ...browser.subscription, endpoint: "https://push.evil.test/x" }, caller(user.userId))).rejects.toMatchObject({ code: 422, type: "PUSH_ENDPOINT_NOT_ALLOWED" });
		const added = await node.call<{ id: string }, object>("notification.addPushSubscription", { ...browser.subscription, deviceName: "Phone" }, caller(user.userId));
		expect(await node.call("notification.vapidPublicKey", {})).toEqual({ publicKey: vapid.publicKey });

		await publish("user.password_changed", { ...user, changedAt: "2026-11-25T12:00:00.000Z", method: "reset" });
		const [push] = await eventually(async () => (pushService.for(`${user.userId}-phone`).length ? pushService.for(`${user.userId}-phone`) : undefined), 10_000, "the push request");
		expect(push!.headers["content-encoding"]).toBe("aes128gcm");
		expect(push!.headers).toMatchObject({ ttl: "86400", urgency: "high", topic: "password-changed" });
		const claims = verifyVapid(push!.headers.authorization, vapid.publicKey);
		expect(claims).toMatchObject({ aud: pushService.origin, sub: VAPID_SUBJECT });
		const message = JSON.parse(browser.decrypt(push!.body).toString("utf8")) as Record<string, unknown>;
		expect(message).toEqual({
			title: "Password changed",
			body: "Your password was changed on November 25, 2026 at 12:00 PM UTC. Not you? Reset it now.",
			url: `${PUBLIC_URL}/password/forgot`,
			tag: "password-changed",
			category: "security",
			alertId: expect.stringMatching(/\.password-changed$/) as string,
		});
		// The in-app alert has the id the push message points at.
		expect((await inbox(user.userId)).items.map((a) => a.id)).toEqual([message.alertId]);

		pushService.respondWith(`${user.userId}-phone`, 410);
		await publish("subscription.trial_will_end", { subscriptionId: uniqueId("sub_"), userId: user.userId, planId: "pro", status: "trialing", trialEnd: "2026-12-01T00:00:00.000Z", currentPeriodEnd: null, cancelAtPeriodEnd: false });
		await eventually(async () => pushService.for(`${user.userId}-phone`).some((r) => r.status === 410), 10_000, "the 410 answer");
		const left = await eventually(async () => {
			const { items } = await node.call<{ items: { id: string }[] }, object>("notification.listPushSubscriptions", {}, caller(user.userId));
			return items.length === 0 ? items : undefined;
		}, 10_000, "the subscription to be removed");
		expect(left).toEqual([]);
		expect(added.id).toBeTruthy();
	});

	it("keeps a delivery the provider refuses in the failed set, where an admin can list and re-queue it", async () => {
		const user = newUser();
		const device = `${user.userId}-tablet`;
		const browser = createBrowserSubscription(pushService.endpoint(device));
		await node.call("notification.addPushSubscription", browser.subscription, caller(user.userId));
		pushService.respondWith(device, 400);
		const event = await publish("subscription.canceled", { subscriptionId: uniqueId("sub_"), userId: user.userId, planId: "pro", status: "canceled", trialEnd: null, currentPeriodEnd: null, cancelAtPeriodEnd: false });

		const admin = caller("ops", ["notifications:admin"]);
		const failed = await eventually(async () => {
			const page = await node.call<{ items: { id: string; data: { eventId: string }; failedReason: string; attempts: number }[] }, object>("notification.failedJobs", { channel: "push" }, admin);
			return page.items.find((j) => j.data.eventId === event.id);
		}, 10_000, "the failed push job");
		expect(failed.failedReason).toMatch(/refused the message \(400\)/);
		expect(failed.attempts).toBe(1); // a 400 is not retried

		await expect(node.call("notification.failedJobs", { channel: "push" }, caller(user.userId))).rejects.toMatchObject({ code: 403 });
		await expect(node.call("notification.failedJobs", { channel: "push" })).rejects.toMatchObject({ code: 401, type: "UNAUTHORIZED" });

		await expect(node.call("notification.retryFailed", { channel: "push", jobId: "no-such-job" }, admin)).rejects.toMatchObject({ code: 404 });
		pushService.respondWith(device, 201);
		// As an operator would, from the REPL.
		const retry = operatorReplCommands({ rabbitmqUrl: infra.rabbitmqUrl }).find((c) => c.command.startsWith("notifications-retry"))!;
		await retry.action(node, { channel: "push", jobId: failed.id, options: {} });
		await eventually(async () => pushService.for(device).some((r) => r.status === 201), 10_000, "the re-queued push");
		const message = JSON.parse(browser.decrypt(pushService.for(device).find((r) => r.status === 201)!.body).toString()) as { title: string };
		expect(message.title).toBe("Subscription canceled");
	});

	it("serves the caller's inbox: cursor pages, read state and the unread count", async () => {
		const user = newUser();
		for (let i = 1; i <= 3; i++) {
			await publish("invoice.created", { invoiceId: `in_${i}`, number: `N-${i}`, userId: user.userId, status: "open", currency: "usd", total: 100 * i });
		}
		await eventually(async () => (await inbox(user.userId)).items.length === 3, 10_000, "three alerts");
		const first = await inbox(user.userId, { limit: 2 });
		expect(first.items).toHaveLength(2);
		expect(first.nextCursor).toEqual(expect.any(String));
		const second = await inbox(user.userId, { limit: 2, cursor: first.nextCursor });
		expect(second.items).toHaveLength(1);
		expect(second.nextCursor).toBeNull();
		expect(new Set([...first.items, ...second.items].map((a) => a.title))).toEqual(new Set(["New invoice N-1", "New invoice N-2", "New invoice N-3"]));

		const target = first.items[0]!;
		expect(await node.call("notification.markRead", { id: target.id }, caller(user.userId))).toEqual({ id: target.id, unreadCount: 2 });
		expect((await inbox(user.userId, { unreadOnly: true })).items.map((a) => a.id)).not.toContain(target.id);
		await expect(node.call("notification.markRead", { id: target.id }, caller(newUser().userId))).rejects.toMatchObject({ code: 404 });
		expect(await node.call("notification.markAllRead", {}, caller(user.userId))).toEqual({ marked: 2, unreadCount: 0 });
		const after = await inbox(user.userId);
		expect(after.unreadCount).toBe(0);
		expect(after.items.every((a) => typeof a.readAt === "string")).toBe(true);
		await expect(node.call("notification.list", {})).rejects.toMatchObject({ code: 401, type: "UNAUTHORIZED" });
	});
});

describe("notification node shutdown", () => {
	it("finishes the e-mail it is sending before it stops", async () => {
		const namespace = uniqueId("notifstop");
		const smtp = new URL(infra.smtpUrl);
		const slowSmtp = new TcpProxy({ host: smtp.hostname, port: Number(smtp.port) });
		slowSmtp.latencyMs = 1_500;
		await slowSmtp.up();
		const node = await startNode(["notification"], testEnv(namespace, { SMTP_URL: `smtp://127.0.0.1:${slowSmtp.port}` }));
		const publisher = new AmqpEventPublisher(infra.rabbitmqUrl, namespace);
		const redis = createRedis(infra.redisUrl, "notification-shutdown-test");
		const queue = new Queue("email", { connection: redis, prefix: createKeys(namespace).queuePrefix });
		const address = `${uniqueId("stop")}@backplane.test`;
		try {
			await publisher.publish([{ event: createCloudEvent({ type: "user.created", source: "/backplane/test", data: { userId: uniqueId("user-"), email: address, name: null } }) }]);
			await eventually(async () => (await queue.getJobCounts("active")).active === 1, 10_000, "the e-mail job to be running");
			const stopping = Date.now();
			await node.stop();
			expect(Date.now() - stopping).toBeGreaterThan(300); // it waited for the SMTP server
			expect(await queue.getJobCounts("active", "completed")).toEqual({ active: 0, completed: 1 });
			expect(await messagesTo(address)).toHaveLength(1);
		} finally {
			await Promise.allSettled([node.stop(), publisher.close(), queue.close(), slowSmtp.down()]);
			await closeRedis(redis);
			await deleteMessages((await messagesTo(address)).map((m) => m.ID)).catch(() => undefined);
			await dropNamespaceKeys(namespace);
		}
	});
});
