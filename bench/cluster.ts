/**
 * Starts platform nodes as separate processes (as in production: one process per node) on a
 * private namespace, and stops them. Shared by the benchmarks.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");

export interface NodeProcess {
	child: ChildProcess;
	/** Milliseconds from spawn to "started successfully". */
	readyMs: number;
}

export const benchNamespace = () => `bench${randomBytes(3).toString("hex")}`;

export function baseEnv(namespace: string, extra: Record<string, string> = {}): Record<string, string> {
	const env: Record<string, string> = {};
	for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
	return { ...env, NODE_ENV: "production", NAMESPACE: namespace, LOG_LEVEL: "warn", METRICS_PORT: "0", HEALTH_PORT: "0", GRPC_PORT: "0", AUTH_KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"), STRIPE_API_KEY: "sk_test_bench", ...extra };
}

/** Spawns `node bin/broker.ts` and resolves once the broker logged that it started. */
export function startNodeProcess(services: string, env: Record<string, string>, timeoutMs = 30_000): Promise<NodeProcess> {
	const started = performance.now();
	const child = spawn(process.execPath, ["bin/broker.ts"], { cwd: ROOT, env: { ...env, SERVICES: services, NODE_ID: `${services.replaceAll(",", "-")}-${randomBytes(2).toString("hex")}`, LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "pipe"] });
	return new Promise((resolve, reject) => {
		let output = "";
		const timer = setTimeout(() => fail(new Error(`${services} node not ready in ${timeoutMs} ms:\n${output.slice(-2000)}`)), timeoutMs);
		const onData = (chunk: Buffer) => {
			output += chunk.toString();
			if (output.includes("started successfully")) {
				clearTimeout(timer);
				child.stdout.removeAllListeners("data");
				child.stdout.resume();
				child.stderr.resume();
				resolve({ child, readyMs: performance.now() - started });
			}
		};
		function fail(err: Error) {
			child.kill("SIGKILL");
			reject(err);
		}
		child.stdout.on("data", onData);
		child.stderr.on("data", (c: Buffer) => (output += c.toString()));
		child.on("exit", (code) => fail(new Error(`${services} node exited with ${code}:\n${output.slice(-2000)}`)));
	});
}

export async function stopNodes(nodes: NodeProcess[]): Promise<void> {
	await Promise.all(
		nodes.map(
			({ child }) =>
				new Promise<void>((resolve) => {
					if (child.exitCode !== null) return resolve();
					const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
					child.once("exit", () => (clearTimeout(timer), resolve()));
					child.kill("SIGTERM");
				}),
		),
	);
}

/** Resident memory of a process in MB, from /proc. */
export function rssMb(pid: number, read: (p: string) => string): number {
	const line = read(`/proc/${pid}/status`).split("\n").find((l) => l.startsWith("VmRSS:"));
	return line ? Number(line.replace(/\D+/g, "")) / 1024 : NaN;
}
