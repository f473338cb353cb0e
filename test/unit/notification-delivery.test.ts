/** The pure parts of delivery: preferences, back-off, push subscription checks, payload crypto, cursors. */
import webpush from "web-push";
import { describe, expect, it } from "vitest";
import { AppError } from "../../lib/errors.ts";
import { decodeCursor, encodeCursor } from "../../services/notification/inbox.ts";
import { fromHash, patchToFields, toSwitch } from "../../services/notification/preferences.ts";
import { checkSubscription, isAllowedEndpoint } from "../../services/notification/push.ts";
import { backoffDelay } from "../../services/notification/queues.ts";
import { createBrowserSubscription } from "../support/push-service.ts";

describe("notification preferences", () => {
	it("are all on by default, with security locked", () => {
		const prefs = fromHash({});
		expect(prefs.channels).toEqual({ email: true, push: true, in_app: true });
		expect(prefs.categories.security).toEqual({ locked: true, channels: { email: true, push: true, in_app: true } });
		expect(prefs.categories.billing.locked).toBe(false);
	});

	it("switch a channel off through its global switch or its category switch", () => {
		const prefs = fromHash(patchToFields({ channels: { push: false }, categories: { billing: { channels: { email: false } } } }));
		const on = toSwitch(prefs);
		expect(on.enabled("billing", "email")).toBe(false);
		expect(on.enabled("account", "email")).toBe(true);
		expect(on.enabled("account", "push")).toBe(false);
		expect(on.enabled("billing", "in_app")).toBe(true);
		// Stored security fields (written by hand, say) change nothing.
		expect(fromHash({ "category:security:email": "0" }).categories.security.channels.email).toBe(true);
	});

	it("refuse to switch a security channel off with 422 PREFERENCE_LOCKED naming the fields", () => {
		const attempt = () => patchToFields({ categories: { security: { channels: { email: false, push: false, in_app: true } }, billing: { channels: { email: false } } } });
		expect(attempt).toThrow(AppError);
		try {
			attempt();
		} catch (err) {
			expect(err).toMatchObject({ code: 422, type: "PREFERENCE_LOCKED" });
			expect((err as AppError).data).toEqual({
				errors: [
					{ field: "categories.security.channels.email", message: "security notifications cannot be switched off", type: "locked" },
					{ field: "categories.security.channels.push", message: "security notifications cannot be switched off", type: "locked" },
				],
			});
		}
		expect(patchToFields({ categories: { security: { channels: { email: true } } } })).toEqual({});
	});
});

describe("retry back-off", () => {
	const policy = { baseMs: 1_000, maxMs: 60_000 };

	it("doubles per attempt up to the cap, between half and all of it", () => {
		expect([1, 2, 3, 4].map((n) => backoffDelay(n, policy, () => 1))).toEqual([1_000, 2_000, 4_000, 8_000]);
		expect([1, 2, 3, 4].map((n) => backoffDelay(n, policy, () => 0))).toEqual([500, 1_000, 2_000, 4_000]);
		expect(backoffDelay(30, policy, () => 1)).toBe(60_000);
		expect(backoffDelay(30, policy, () => 0)).toBe(30_000);
	});

	it("spreads jobs that failed together", () => {
		const delays = Array.from({ length: 200 }, () => backoffDelay(5, policy));
		expect(Math.min(...delays)).toBeGreaterThanOrEqual(8_000);
		expect(Math.max(...delays)).toBeLessThanOrEqual(16_000);
		expect(new Set(delays).size).toBeGreaterThan(50);
	});
});

describe("push subscriptions", () => {
	const origins = ["https://fcm.googleapis.com", "https://*.notify.windows.com"];

	it("accept only endpoints of the configured push services", () => {
		expect(isAllowedEndpoint("https://fcm.googleapis.com/fcm/send/abc", origins)).toBe(true);
		expect(isAllowedEndpoint("https://wns2-par02p.notify.windows.com/w/?token=x", origins)).toBe(true);
		expect(isAllowedEndpoint("https://notify.windows.com.evil.test/x", origins)).toBe(false);
		expect(isAllowedEndpoint("http://fcm.googleapis.com/fcm/send/abc", origins)).toBe(false);
		expect(isAllowedEndpoint("https://fcm.googleapis.com:8443/x", origins)).toBe(false);
		expect(isAllowedEndpoint("https://user:pw@fcm.googleapis.com/x", origins)).toBe(false);
		expect(isAllowedEndpoint("http://169.254.169.254/latest/meta-data", origins)).toBe(false);
		expect(isAllowedEndpoint("not a url", origins)).toBe(false);
	});

	it("check the keys a browser sent", () => {
		const { subscription } = createBrowserSubscription("https://fcm.googleapis.com/fcm/send/abc");
		expect(() => checkSubscription(subscription, origins)).not.toThrow();
		expect(() => checkSubscription({ ...subscription, keys: { ...subscription.keys, p256dh: "AAAA" } }, origins)).toThrow(expect.objectContaining({ code: 422, type: "INVALID_PUSH_SUBSCRIPTION" }) as Error);
		expect(() => checkSubscription({ ...subscription, keys: { ...subscription.keys, auth: "AAAA" } }, origins)).toThrow(/16 bytes/);
		expect(() => checkSubscription({ ...subscription, expirationTime: Date.now() - 1 }, origins)).toThrow(/expired/);
		expect(() => checkSubscription({ ...subscription, endpoint: "https://push.evil.test/x" }, origins)).toThrow(expect.objectContaining({ type: "PUSH_ENDPOINT_NOT_ALLOWED" }) as Error);
	});

	it("payloads encrypted by web-push decrypt with the browser's keys (the test's own decryption is right)", () => {
		const browser = createBrowserSubscription("https://fcm.googleapis.com/fcm/send/abc");
		const payload = JSON.stringify({ title: "Hello", body: "x".repeat(3_000) });
		const { cipherText } = webpush.encrypt(browser.subscription.keys.p256dh, browser.subscription.keys.auth, payload, "aes128gcm");
		expect(browser.decrypt(cipherText).toString()).toBe(payload);
		const tampered = Buffer.from(cipherText);
		tampered[tampered.length - 1]! ^= 1;
		expect(() => browser.decrypt(tampered)).toThrow();
	});
});

describe("inbox cursors", () => {
	it("round-trip and reject anything else with 400 VALIDATION_ERROR", () => {
		expect(decodeCursor(encodeCursor(1764072000000, "evt-1.welcome"))).toEqual({ score: 1764072000000, id: "evt-1.welcome" });
		for (const bad of ["", "abc", Buffer.from("x:y").toString("base64url"), Buffer.from("12:").toString("base64url")]) {
			expect(() => decodeCursor(bad)).toThrow(expect.objectContaining({ code: 400, type: "VALIDATION_ERROR" }) as Error);
		}
	});
});
