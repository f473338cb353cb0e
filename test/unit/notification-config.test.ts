import { describe, expect, it } from "vitest";
import webpush from "web-push";
import { loadConfig } from "../../lib/config.ts";
import { configProblems } from "../support/config.ts";

const base = { RABBITMQ_URL: "amqp://u:p@127.0.0.1:5672", REDIS_URL: "redis://127.0.0.1:6379", SMTP_URL: "smtp://127.0.0.1:25", SERVICES: "notification" };

const problemsOf = configProblems;

describe("notification configuration", () => {
	it("has defaults for everything but the SMTP server and Redis, with push off", () => {
		const { notification } = loadConfig(base);
		expect(notification).toMatchObject({
			publicUrl: "http://127.0.0.1:4000",
			smtpFrom: "Backplane <no-reply@backplane.local>",
			vapid: { publicKey: undefined, privateKey: undefined, subject: undefined },
			retry: { attempts: 10, baseMs: 5_000, maxMs: 900_000 },
			emailRatePerSecond: 50,
			pushRatePerSecond: 200,
		});
		expect(notification.pushEndpointOrigins).toContain("https://fcm.googleapis.com");
		expect(problemsOf({ ...base, SMTP_URL: "" })).toEqual([expect.stringMatching(/^SMTP_URL \(missing\)/)]);
	});

	it("reads VAPID keys, the public URL without its trailing slash and the push origins", () => {
		const keys = webpush.generateVAPIDKeys();
		const { notification } = loadConfig({
			...base,
			PUBLIC_URL: "https://app.example.com/",
			VAPID_PUBLIC_KEY: keys.publicKey,
			VAPID_PRIVATE_KEY: keys.privateKey,
			VAPID_SUBJECT: "mailto:ops@example.com",
			PUSH_ENDPOINT_ORIGINS: "http://127.0.0.1:9999, https://*.push.example",
		});
		expect(notification.publicUrl).toBe("https://app.example.com");
		expect(notification.vapid).toEqual({ publicKey: keys.publicKey, privateKey: keys.privateKey, subject: "mailto:ops@example.com" });
		expect(notification.pushEndpointOrigins).toEqual(["http://127.0.0.1:9999", "https://*.push.example"]);
	});

	it("names bad VAPID values and bad numbers", () => {
		const fields = problemsOf({ ...base, VAPID_PUBLIC_KEY: "short", VAPID_SUBJECT: "ops@example.com", NOTIFY_MAX_ATTEMPTS: "0", PUBLIC_URL: "ftp://x" }).map((p) => p.split(" ")[0]).sort();
		expect(fields).toEqual(["NOTIFY_MAX_ATTEMPTS", "PUBLIC_URL", "VAPID_PUBLIC_KEY", "VAPID_SUBJECT"]);
	});
});
