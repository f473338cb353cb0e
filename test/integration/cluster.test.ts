/**
 * The foundation end to end: four broker nodes, one per service, on the real AMQP transporter,
 * with PostgreSQL, FerretDB, Redis and Mailpit. A registration enters through the gateway over
 * HTTP, the gateway reaches auth over the gRPC bridge, and `user.created` travels through auth's
 * outbox and RabbitMQ to billing and notification.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import type { ServiceBroker } from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, eventually, gatewayUrl, startNode, testEnv, uniqueId } from "../support/infra.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");

describe("four-node cluster on RabbitMQ", () => {
	const namespace = uniqueId("cluster");
	let env: Record<string, string>;
	const nodes: ServiceBroker[] = [];
	let gateway: ServiceBroker;
	let auth: ServiceBroker;
	let baseUrl: string;

	beforeAll(async () => {
		env = testEnv(namespace, { DATABASE_URL: await createTestDatabase() });
		auth = await startNode(["auth"], env);
		nodes.push(auth);
		nodes.push(await startNode(["billing"], env));
		nodes.push(await startNode(["notification"], env));
		gateway = await startNode(["gateway"], env);
		nodes.push(gateway);
		await gateway.waitForServices(["auth", "billing", "notification"], 15_000);
		baseUrl = gatewayUrl(gateway);
	});

	afterAll(async () => {
		await Promise.all(nodes.map((n) => n.stop()));
	});

	it("reports every service healthy at /healthz, auth reached over gRPC", async () => {
		const body = await eventually(async () => {
			const res = await fetch(`${baseUrl}/healthz`);
			const json = (await res.json()) as { status: string; services: Record<string, { status: string; nodes: { checks?: Record<string, { status: string }> }[] }>; gateway: { authGrpc: { status: string } } };
			return res.status === 200 && json.status === "up" && json.gateway.authGrpc.status === "up" ? json : undefined;
		}, 15_000, "a healthy cluster");
		expect(Object.keys(body.services).sort()).toEqual(["auth", "billing", "notification"]);
		expect(body.services.auth!.nodes[0]!.checks).toMatchObject({ postgres: { status: "up" }, rabbitmq: { status: "up" } });
		expect(body.services.billing!.nodes[0]!.checks).toMatchObject({ mongodb: { status: "up" } });
		expect(body.services.notification!.nodes[0]!.checks).toMatchObject({ redis: { status: "up" }, smtp: { status: "up" } });
		const ready = await fetch(`${baseUrl}/readyz`);
		expect(ready.status).toBe(200);
	});

	it("answers a gRPC Ping from the auth node found through the registry", async () => {
		const svc = gateway.getLocalService("gateway") as unknown as { grpcCall(c: string, m: string, r: object): Promise<{ message: string; nodeId: string }> };
		const reply = await svc.grpcCall("auth", "Ping", { message: "hello" });
		expect(reply).toMatchObject({ message: "hello", nodeId: auth.nodeID });
	});

	it("carries user.created from a registration to billing and notification, once each", async () => {
		const email = `${uniqueId("ada")}@example.com`;
		const res = await fetch(`${baseUrl}/api/v1/auth/register`, {
			method: "POST",
			headers: { "content-type": "application/json", "x-request-id": "req-cluster-1" },
			body: JSON.stringify({ email, password: "correct horse battery staple", name: "Ada" }),
		});
		expect(res.status).toBe(201);
		const { user } = (await res.json()) as { user: { id: string; email: string } };
		expect(user.email).toBe(email);
		expect(user).not.toHaveProperty("passwordHash");

		const customer = await eventually(async () => (await gateway.call<{ email: string } | null, object>("billing.getCustomer", { userId: user.id })) ?? undefined, 10_000, "the billing customer");
		expect(customer.email).toBe(email);
		// Billing's trial produces a second alert ("subscription started"): wait for both, then count.
		const alerts = await eventually(async () => {
			const list = await gateway.call<{ title: string; category: string }[], object>("notification.listAlerts", { userId: user.id });
			return list.some((a) => a.category === "billing") && list.some((a) => /welcome/i.test(a.title)) ? list : undefined;
		}, 10_000, "the welcome and trial alerts");
		expect(alerts.filter((a) => /welcome/i.test(a.title))).toHaveLength(1);
		expect(alerts).toHaveLength(2);
	});

	it("answers problem+json for invalid input and a taken e-mail", async () => {
		const bad = await fetch(`${baseUrl}/api/v1/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: "nope", password: "x" }) });
		expect(bad.status).toBe(400);
		expect(bad.headers.get("content-type")).toContain("application/problem+json");
		const problem = (await bad.json()) as { code: string; errors: { field: string }[] };
		expect(problem.code).toBe("VALIDATION_ERROR");
		expect(problem.errors.map((e) => e.field).sort()).toEqual(["email", "password"]);

		const email = `${uniqueId("dup")}@example.com`;
		const body = JSON.stringify({ email, password: "a long enough password" });
		const headers = { "content-type": "application/json" };
		expect((await fetch(`${baseUrl}/api/v1/auth/register`, { method: "POST", headers, body })).status).toBe(201);
		const again = await fetch(`${baseUrl}/api/v1/auth/register`, { method: "POST", headers, body });
		expect(again.status).toBe(409);
		expect(((await again.json()) as { code: string }).code).toBe("EMAIL_ALREADY_REGISTERED");
	});

	it("reports a killed billing node down within seconds", async () => {
		const child: ChildProcess = spawn(process.execPath, ["bin/broker.ts"], {
			cwd: ROOT,
			env: { ...process.env, ...env, SERVICES: "billing", NODE_ID: "billing-doomed" },
			stdio: ["ignore", "ignore", "inherit"],
		});
		try {
			await eventually(async () => {
				const json = (await (await fetch(`${baseUrl}/healthz`)).json()) as { services: { billing: { nodes: { nodeId: string; status: string }[] } } };
				return json.services.billing.nodes.find((n) => n.nodeId === "billing-doomed" && n.status === "up");
			}, 20_000, "the second billing node to report up");
			child.kill("SIGKILL");
			const killedAt = Date.now();
			const down = await eventually(async () => {
				const json = (await (await fetch(`${baseUrl}/healthz`)).json()) as { services: { billing: { nodes: { nodeId: string; status: string }[] } } };
				const node = json.services.billing.nodes.find((n) => n.nodeId === "billing-doomed");
				return !node || node.status === "down" ? (node ?? { nodeId: "billing-doomed", status: "gone" }) : undefined;
			}, 15_000, "the killed node to be reported down");
			expect(["down", "gone"]).toContain(down.status);
			expect(Date.now() - killedAt).toBeLessThan(10_000);
		} finally {
			child.kill("SIGKILL");
		}
	});
});
