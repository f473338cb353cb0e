import { describe, expect, it } from "vitest";
import { loadConfig } from "../../lib/config.ts";
import { configProblems } from "../support/config.ts";

const base = {
	RABBITMQ_URL: "amqp://u:p@127.0.0.1:5672",
	DATABASE_URL: "postgres://u:p@127.0.0.1:5432/db",
	MONGO_URL: "mongodb://127.0.0.1:27017/db",
	REDIS_URL: "redis://127.0.0.1:6379",
	SMTP_URL: "smtp://127.0.0.1:25",
};

const problemsOf = configProblems;

describe("loadConfig", () => {
	it("applies defaults and hosts all four services when SERVICES is unset", () => {
		const config = loadConfig(base);
		expect(config.services).toEqual(["gateway", "auth", "billing", "notification"]);
		expect(config.requestTimeoutMs).toBe(10_000);
		expect(config.heartbeatTimeoutS).toBe(6);
		expect(config.grpc).toMatchObject({ port: 50051, host: "127.0.0.1" });
		expect(config.bcryptCost).toBe(12);
	});

	it("reads the second-factor policies on every node, not only the gateway's (every node's permissions middleware applies them)", () => {
		for (const services of ["auth", "billing", "notification", "gateway"]) {
			expect(loadConfig({ ...base, SERVICES: services, ADMIN_REQUIRES_MFA: "true", USERS_REQUIRE_MFA: "1" }).gateway, services).toMatchObject({ adminRequiresMfa: true, usersRequireMfa: true });
			expect(loadConfig({ ...base, SERVICES: services }).gateway).toMatchObject({ adminRequiresMfa: false, usersRequireMfa: false });
		}
	});

	it("binds passkeys to PUBLIC_URL's domain, to localhost when it is an IP address, or to what is configured", () => {
		expect(loadConfig(base).auth.webauthn).toEqual({ rpId: "localhost", rpName: "Backplane", origins: ["http://127.0.0.1:4000", "http://localhost:4000"] });
		expect(loadConfig({ ...base, PUBLIC_URL: "https://app.example.com" }).auth.webauthn).toEqual({ rpId: "app.example.com", rpName: "Backplane", origins: ["https://app.example.com"] });
		expect(loadConfig({ ...base, PUBLIC_URL: "https://app.example.com", WEBAUTHN_RP_ID: "example.com", WEBAUTHN_RP_NAME: "Acme", WEBAUTHN_ORIGINS: "https://app.example.com, https://admin.example.com" }).auth.webauthn)
			.toEqual({ rpId: "example.com", rpName: "Acme", origins: ["https://app.example.com", "https://admin.example.com"] });
		expect(problemsOf({ ...base, WEBAUTHN_RP_ID: "https://example.com", WEBAUTHN_ORIGINS: "example.com" })).toEqual([
			expect.stringMatching(/^WEBAUTHN_RP_ID \(bad value\): must be a domain name/),
			expect.stringMatching(/^WEBAUTHN_ORIGINS \(bad value\): must be origins/),
		]);
	});

	it("serves health on 3040 and declares classic queues unless told otherwise", () => {
		expect(loadConfig(base)).toMatchObject({ healthPort: 3040, amqpQueueType: "classic" });
		expect(loadConfig({ ...base, HEALTH_PORT: "0", AMQP_QUEUE_TYPE: "quorum" })).toMatchObject({ healthPort: 0, amqpQueueType: "quorum" });
		expect(problemsOf({ ...base, AMQP_QUEUE_TYPE: "stream" })).toEqual([expect.stringMatching(/^AMQP_QUEUE_TYPE \(bad value\)/)]);
	});

	it("names a missing DATABASE_URL when the node hosts auth", () => {
		const { DATABASE_URL: _, ...env } = base;
		expect(problemsOf({ ...env, SERVICES: "auth" })).toEqual([expect.stringMatching(/^DATABASE_URL \(missing\): is required/)]);
	});

	it("does not require what the hosted services do not use", () => {
		expect(loadConfig({ RABBITMQ_URL: base.RABBITMQ_URL, MONGO_URL: base.MONGO_URL, SERVICES: "billing" }).services).toEqual(["billing"]);
	});

	it("lists every missing or bad value at once", () => {
		const problems = problemsOf({ SERVICES: "gateway,auth,payments", REQUEST_TIMEOUT_MS: "soon", MONGO_URL: "http://x", LOG_LEVEL: "loud" });
		const fields = problems.map((p) => p.split(" ")[0]).sort();
		expect(fields).toEqual(["DATABASE_URL", "LOG_LEVEL", "RABBITMQ_URL", "REDIS_URL", "REQUEST_TIMEOUT_MS", "SERVICES"]);
		expect(problems.join("\n")).toContain("unknown service(s) payments");
	});

	it("rejects a URL of the wrong scheme with a message saying which is expected", () => {
		expect(problemsOf({ ...base, SERVICES: "billing", MONGO_URL: "postgres://x/y" })).toEqual([expect.stringContaining("must be a mongodb:// or mongodb+srv:// URL")]);
	});

	it("rejects a heartbeat timeout not above the interval", () => {
		expect(problemsOf({ ...base, HEARTBEAT_INTERVAL_S: "5", HEARTBEAT_TIMEOUT_S: "5" })).toEqual([expect.stringContaining("HEARTBEAT_TIMEOUT_S")]);
	});

	it("never echoes a secret in its message", () => {
		const err = (() => {
			try {
				loadConfig({ ...base, RABBITMQ_URL: "amqp://user:s3cret@host", DATABASE_URL: "mysql://user:s3cret@host/db", SERVICES: "auth" });
			} catch (e) {
				return e as Error;
			}
		})();
		expect(err?.message).toContain("DATABASE_URL");
		expect(err?.message).not.toContain("s3cret");
	});
});
