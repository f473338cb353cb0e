/**
 * The small HTTP server every node runs for its orchestrator (Kubernetes probes, Docker
 * HEALTHCHECK): `/livez` says the process and its event loop answer, `/readyz` says whether the
 * services this node hosts can work (their own dependencies answer). Plain module: the node
 * passes a function that produces its readiness report.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { HealthReport, HealthStatus } from "./health.ts";
import { PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE } from "./problem.ts";

export interface NodeReadiness {
	status: HealthStatus;
	nodeId: string;
	/** Each hosted service's dependency report, plus `node` (transporter, shutdown). */
	checks: Record<string, HealthReport>;
}

export interface HealthServerOptions {
	port: number;
	readiness: () => Promise<NodeReadiness>;
}

export interface HealthServer {
	port: number;
	close(): Promise<void>;
}

/** Names what is down, e.g. "billing: mongodb (no answer within 1000 ms)". */
function describeDown(readiness: NodeReadiness): string {
	const down = Object.entries(readiness.checks).flatMap(([name, report]) =>
		Object.entries(report.checks)
			.filter(([, check]) => check.status === "down")
			.map(([dep, check]) => `${name}: ${dep}${check.error ? ` (${check.error})` : ""}`),
	);
	return down.length ? `Not ready: ${down.join("; ")}.` : "Not ready.";
}

export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
	const server = http.createServer((req, res) => {
		const path = (req.url ?? "/").split("?")[0];
		if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, { status: 405, detail: "GET only" });
		if (path === "/livez") return send(res, 200, { status: "up" });
		if (path !== "/readyz") return send(res, 404, { status: 404, detail: "/livez or /readyz" });
		void answerReadiness(res, opts.readiness);
	});
	// A probe that hangs must not hold a connection (and a file descriptor) forever.
	server.requestTimeout = 5_000;
	await new Promise<void>((resolve, reject) => {
		server.once("error", reject);
		// Every interface, like the metrics endpoint: the kubelet probes the pod IP.
		server.listen(opts.port, () => resolve());
	});
	return {
		port: (server.address() as AddressInfo).port,
		close: () => new Promise<void>((resolve) => {
			server.close(() => resolve());
			server.closeAllConnections();
		}),
	};
}

async function answerReadiness(res: http.ServerResponse, readiness: () => Promise<NodeReadiness>): Promise<void> {
	try {
		const report = await readiness();
		if (report.status === "up") send(res, 200, report);
		else sendNotReady(res, describeDown(report), report);
	} catch (err) {
		sendNotReady(res, `Readiness could not be checked: ${err instanceof Error ? err.message : String(err)}`);
	}
}

/** 503 as problem+json, with the report (when there is one) so the probe's log shows what is down. */
function sendNotReady(res: http.ServerResponse, detail: string, readiness?: NodeReadiness): void {
	const problem = { type: `${PROBLEM_TYPE_BASE}not-ready`, code: "NOT_READY", title: "Service Unavailable", status: 503, detail, instance: "/readyz" };
	send(res, 503, readiness ? { ...problem, nodeId: readiness.nodeId, checks: readiness.checks } : problem, PROBLEM_CONTENT_TYPE);
}

function send(res: http.ServerResponse, status: number, body: object, contentType = "application/json"): void {
	res.writeHead(status, { "Content-Type": contentType, "Cache-Control": "no-store" });
	res.end(JSON.stringify(body));
}
