/** A node with a bad environment refuses to start and names every problem. */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

function startNode(env: Record<string, string>) {
	const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(DATABASE_URL|MONGO_URL|REDIS_URL|SMTP_URL|RABBITMQ_URL|SERVICES)$/.test(k)));
	return spawnSync(process.execPath, ["bin/broker.ts"], { cwd: ROOT, env: { ...clean, ...env }, encoding: "utf8", timeout: 15_000 });
}

describe("node start-up", () => {
	it("stops with exit code 78 and names a missing DATABASE_URL", () => {
		const result = startNode({ SERVICES: "auth", RABBITMQ_URL: "amqp://127.0.0.1:1" });
		expect(result.status).toBe(78);
		expect(result.stderr).toContain("DATABASE_URL (missing): is required");
		expect(result.stderr).not.toContain("    at "); // a message, not a stack trace
	});

	it("lists every missing variable of the services it hosts in one message", () => {
		const result = startNode({ SERVICES: "gateway,notification" });
		expect(result.status).toBe(78);
		for (const name of ["RABBITMQ_URL", "REDIS_URL", "SMTP_URL"]) expect(result.stderr).toContain(name);
	});

	it("prints usage with --help", () => {
		const result = spawnSync(process.execPath, ["bin/broker.ts", "--help"], { cwd: ROOT, encoding: "utf8" });
		expect(result.status).toBe(0);
		expect(result.stdout).toContain("SERVICES");
	});
});
