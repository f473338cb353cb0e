/**
 * Dependency checks shared by every service's `health` action: each check runs with its own
 * time limit, and the report says which dependency failed and how long each took.
 */
import { withTimeout } from "./timeout.ts";

export type HealthStatus = "up" | "down";

export interface CheckResult {
	status: HealthStatus;
	latencyMs: number;
	error?: string;
}

export interface HealthReport {
	status: HealthStatus;
	checks: Record<string, CheckResult>;
}

export type HealthCheck = () => Promise<unknown>;

export async function runChecks(checks: Record<string, HealthCheck>, timeoutMs: number): Promise<HealthReport> {
	const entries = await Promise.all(
		Object.entries(checks).map(async ([name, check]): Promise<[string, CheckResult]> => {
			const started = performance.now();
			try {
				await withTimeout(check(), timeoutMs, `no answer within ${timeoutMs} ms`);
				return [name, { status: "up", latencyMs: elapsed(started) }];
			} catch (err) {
				return [name, { status: "down", latencyMs: elapsed(started), error: err instanceof Error ? err.message : String(err) }];
			}
		}),
	);
	const checksByName = Object.fromEntries(entries);
	const status = entries.every(([, r]) => r.status === "up") ? "up" : "down";
	return { status, checks: checksByName };
}

const elapsed = (started: number) => Math.round((performance.now() - started) * 10) / 10;
