/**
 * The notification service's Redis-backed domain modules without a broker, on the real Redis
 * (and Mailpit for one delivery): inbox paging and bounds, contact records, push subscriptions,
 * preferences, and what user.deleted leaves behind. Every test has its own key prefix.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import { closeRedis, createRedis } from "../../lib/redis.ts";
import { getContact, upsertContact } from "../../services/notification/contacts.ts";
import { createSmtpTransport } from "../../services/notification/email.ts";
import { INBOX_LIMIT, addAlert, listAlerts, markAllRead, markRead } from "../../services/notification/inbox.ts";
import type { Alert } from "../../services/notification/inbox.ts";
import { createKeys } from "../../services/notification/keys.ts";
import type { Keys } from "../../services/notification/keys.ts";
import { deliverEmail, handleEvent } from "../../services/notification/notifier.ts";
import type { EmailJob, NotifierDeps } from "../../services/notification/notifier.ts";
import { getPreferences, updatePreferences } from "../../services/notification/preferences.ts";
import { MAX_DEVICES, addSubscription, listSubscriptions } from "../../services/notification/push.ts";
import { createTemplates, loadTemplateSources } from "../../services/notification/templates.ts";
import { infra, uniqueId } from "../support/infra.ts";
import { deleteMessages, getMessage, messagesTo } from "../support/mailpit.ts";
import { createBrowserSubscription } from "../support/push-service.ts";

const templates = createTemplates(loadTemplateSources());
const ORIGIN = "https://fcm.googleapis.com";

describe("notification stores on Redis", () => {
	let redis: Redis;
	let keys: Keys;
	let ns: string;
	const now = new Date("2026-11-25T12:00:00.000Z");

	beforeAll(async () => {
		redis = createRedis(infra.redisUrl, "notification-store-test");
		await redis.connect();
	});
	afterAll(async () => {
		const leftovers = await redis.keys(`notification:nst*`);
		if (leftovers.length) await redis.del(...leftovers);
		await closeRedis(redis);
	});
	const freshKeys = () => {
		ns = uniqueId("nst");
		keys = createKeys(ns);
	};
	const alert = (id: string, createdAt: string): Alert => ({ id, workflow: "w", category: "account", title: id, body: "", url: null, createdAt, readAt: null });

	it("pages the inbox newest first without skipping or repeating alerts that share a timestamp", async () => {
		freshKeys();
		const same = "2026-11-25T10:00:00.000Z";
		for (const id of ["a", "b", "c", "d"]) await addAlert(redis, keys, "u", alert(id, same));
		await addAlert(redis, keys, "u", alert("new", "2026-11-25T11:00:00.000Z"));
		await addAlert(redis, keys, "u", alert("old", "2026-11-25T09:00:00.000Z"));
		const seen: string[] = [];
		let cursor: string | undefined;
		for (let page = 0; page < 10; page++) {
			const result = await listAlerts(redis, keys, "u", { limit: 2, cursor });
			seen.push(...result.items.map((a) => a.id));
			if (!result.nextCursor) break;
			cursor = result.nextCursor;
		}
		expect(seen).toEqual(["new", "d", "c", "b", "a", "old"]);
	});

	it("adds an alert once, keeps the newest INBOX_LIMIT, and tracks read state and the unread count", async () => {
		freshKeys();
		expect(await addAlert(redis, keys, "u", alert("x", "2026-11-25T10:00:00.000Z"))).toEqual({ added: true, unreadCount: 1 });
		expect(await addAlert(redis, keys, "u", alert("x", "2026-11-25T10:00:00.000Z"))).toEqual({ added: false, unreadCount: 1 });
		const base = Date.parse("2026-01-01T00:00:00.000Z");
		for (let i = 0; i < INBOX_LIMIT + 5; i++) await addAlert(redis, keys, "u", alert(`n${i}`, new Date(base + i * 1000).toISOString()));
		const all = await listAlerts(redis, keys, "u", { limit: 100 });
		expect(all.unreadCount).toBe(INBOX_LIMIT);
		expect(await redis.hlen(keys.inboxAlerts("u"))).toBe(INBOX_LIMIT);
		expect(all.items[0]!.id).toBe("x");
		expect(await markRead(redis, keys, "u", "x", now)).toBe(INBOX_LIMIT - 1);
		expect(await markRead(redis, keys, "u", "x", now)).toBe(INBOX_LIMIT - 1);
		expect((await listAlerts(redis, keys, "u", { limit: 1 })).items[0]).toMatchObject({ id: "x", readAt: now.toISOString(), url: null });
		expect((await listAlerts(redis, keys, "u", { limit: 5, unreadOnly: true })).items.map((a) => a.id)).not.toContain("x");
		await expect(markRead(redis, keys, "u", "n0", now)).rejects.toMatchObject({ code: 404 }); // trimmed
		expect(await markAllRead(redis, keys, "u", now)).toBe(INBOX_LIMIT - 1);
		expect((await listAlerts(redis, keys, "u", { limit: 1 })).unreadCount).toBe(0);
	});

	it("keeps the newest contact record whatever order the events arrive in", async () => {
		freshKeys();
		const contact = (email: string, updatedAt: string) => ({ userId: "u", email, name: null, locale: null, updatedAt });
		expect(await upsertContact(redis, keys, contact("new@example.com", "2026-11-25T12:00:00.000Z"))).toBe(true);
		expect(await upsertContact(redis, keys, contact("old@example.com", "2026-11-25T11:00:00.000Z"))).toBe(false);
		expect((await getContact(redis, keys, "u"))?.email).toBe("new@example.com");
	});

	it("stores preferences per user and reads back what it wrote", async () => {
		freshKeys();
		const prefs = await updatePreferences(redis, keys, "u", { channels: { push: false }, categories: { account: { channels: { email: false } } } });
		expect(prefs.channels.push).toBe(false);
		expect(prefs.categories.account.channels.email).toBe(false);
		expect(await getPreferences(redis, keys, "u")).toEqual(prefs);
		expect((await getPreferences(redis, keys, "someone-else")).channels.push).toBe(true);
	});

	it("keeps at most MAX_DEVICES subscriptions per user and moves a device to the user who signed in on it", async () => {
		freshKeys();
		const devices = Array.from({ length: MAX_DEVICES + 2 }, (_, i) => createBrowserSubscription(`${ORIGIN}/fcm/send/dev${i}`).subscription);
		for (const [i, sub] of devices.entries()) await addSubscription(redis, keys, "alice", sub, [ORIGIN], new Date(now.getTime() + i));
		const kept = await listSubscriptions(redis, keys, "alice");
		expect(kept.map((s) => s.endpoint)).toEqual(devices.slice(2).map((d) => d.endpoint));

		await addSubscription(redis, keys, "bob", devices[5]!, [ORIGIN], now);
		expect((await listSubscriptions(redis, keys, "alice")).map((s) => s.endpoint)).not.toContain(devices[5]!.endpoint);
		expect((await listSubscriptions(redis, keys, "bob")).map((s) => s.endpoint)).toEqual([devices[5]!.endpoint]);
	});

	it("forgets a deleted user and ignores the user's late events", async () => {
		freshKeys();
		const queued: string[] = [];
		const deps: NotifierDeps = {
			redis, keys, templates, publicUrl: "https://app.example.com", clock: () => now,
			email: { enqueue: async (jobId) => (queued.push(jobId), true) },
			push: null,
			onAlert: () => undefined,
		};
		const user = { userId: "u", email: "u@example.com", name: "U" };
		const created = await handleEvent(deps, createCloudEvent({ type: "user.created", source: "/t", data: user }));
		expect(created.channels.map((c) => `${c.channel}:${c.outcome}`)).toEqual(["email:queued", "in_app:stored"]);
		await addSubscription(redis, keys, "u", createBrowserSubscription(`${ORIGIN}/fcm/send/x`).subscription, [ORIGIN], now);
		await updatePreferences(redis, keys, "u", { channels: { push: false } });

		await handleEvent(deps, createCloudEvent({ type: "user.deleted", source: "/t", data: { userId: "u" } }));
		// Nothing of the user's is left but the tombstone.
		expect(await redis.keys(`notification:${ns}:*`)).toEqual([keys.tombstone("u")]);
		const late = await handleEvent(deps, createCloudEvent({ type: "user.email_verified", source: "/t", data: { ...user, verifiedAt: now.toISOString() } }));
		expect(late.channels).toEqual([]);
		expect(await getContact(redis, keys, "u")).toBeNull();
		expect(queued).toHaveLength(1);
	});

	it("delivers a queued e-mail over SMTP to the contact's address, and waits while no address is known", async () => {
		freshKeys();
		const address = `${uniqueId("store")}@backplane.test`;
		const transport = createSmtpTransport(infra.smtpUrl, { maxConnections: 1 });
		const deps = { redis, keys, templates, transport, from: "Backplane <no-reply@backplane.test>", publicUrl: "https://app.example.com" };
		const job: EmailJob = {
			eventId: "e1", eventType: "trial.ended", eventTime: now.toISOString(), requestId: null, workflow: "trial-ended", userId: "u", to: null,
			vars: { planId: "pro", trialEnd: null, currentPeriodEnd: null, cancelAtPeriodEnd: false, status: "canceled", actionUrl: "https://app.example.com/billing" },
		};
		try {
			await expect(deliverEmail(deps, job, "e1.email")).rejects.toThrow(/no e-mail address known yet/);
			await upsertContact(redis, keys, { userId: "u", email: address, name: "Lin", locale: "en-GB", updatedAt: now.toISOString() });
			expect(await deliverEmail(deps, job, "e1.email")).toBe("sent");
			const [summary] = await messagesTo(address);
			const mail = await getMessage(summary!.ID);
			expect(mail).toMatchObject({ Subject: "Your Backplane trial has ended", To: [{ Name: "Lin", Address: address }] });
			expect(mail.MessageID).toBe("e1.email@app.example.com");
			await updatePreferences(redis, keys, "u", { categories: { billing: { channels: { email: false } } } });
			expect(await deliverEmail(deps, job, "e1.email")).toBe("skipped");
		} finally {
			transport.close();
			await deleteMessages((await messagesTo(address)).map((m) => m.ID));
		}
	});
});
