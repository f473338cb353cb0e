/**
 * The decisions of the gRPC bridge that need no broker: how errors cross the wire, which failures
 * trip the circuit breaker, how long to wait and how often to retry. mixins/grpc.mixin.ts only
 * wires these to Moleculer and @grpc/grpc-js, so everything here is unit-tested on its own.
 */
import { Metadata, status } from "@grpc/grpc-js";
import type { ServiceError, StatusObject } from "@grpc/grpc-js";
import { AppError, dependencyUnavailable, isDependencyOutage, isNotDelivered, unavailable } from "./errors.ts";

/** HTTP status of an AppError (or Moleculer error) -> gRPC status. Absent: not a client fault. */
const STATUS_BY_HTTP: Record<number, status> = {
	400: status.INVALID_ARGUMENT,
	401: status.UNAUTHENTICATED,
	403: status.PERMISSION_DENIED,
	404: status.NOT_FOUND,
	409: status.ALREADY_EXISTS,
	422: status.INVALID_ARGUMENT,
	429: status.RESOURCE_EXHAUSTED,
	503: status.UNAVAILABLE,
	504: status.DEADLINE_EXCEEDED,
};

/** gRPC status -> HTTP status, for failures that carry no AppError fields (transport, proxies). */
const HTTP_BY_STATUS: Partial<Record<status, number>> = {
	[status.INVALID_ARGUMENT]: 400,
	[status.UNAUTHENTICATED]: 401,
	[status.PERMISSION_DENIED]: 403,
	[status.NOT_FOUND]: 404,
	[status.ALREADY_EXISTS]: 409,
	[status.FAILED_PRECONDITION]: 400,
	[status.RESOURCE_EXHAUSTED]: 429,
	[status.UNAVAILABLE]: 503,
	[status.DEADLINE_EXCEEDED]: 504,
};

/** Trailing metadata keys that carry an AppError's fields; `-bin` because data may hold any UTF-8. */
export const ERROR_KEYS = { code: "x-error-code", type: "x-error-type", data: "x-error-data-bin", retryable: "x-error-retryable" } as const;
/** Above this the data is dropped rather than breaking gRPC's header size limit (8 KiB by default). */
const MAX_ERROR_DATA_BYTES = 4096;

export const statusName = (code: status): string => status[code] ?? `STATUS_${code}`;

interface ErrorFields {
	code?: unknown;
	type?: unknown;
	data?: unknown;
	retryable?: unknown;
	message?: unknown;
}

/** What the server answers for `err`: outages and Moleculer's "not now" become a retryable 503. */
function asAnswer(err: unknown): unknown {
	if (isDependencyOutage(err)) return dependencyUnavailable();
	if (isNotDelivered(err)) return unavailable("The service is starting, stopping or shedding load. Try again shortly.");
	return err ?? {};
}

/**
 * A thrown error -> the status a server answers with. Client faults (4xx) and 503/504 keep their
 * code, type, data and message in trailing metadata; anything else is INTERNAL with a generic
 * message, so no internal detail or stack leaves the server. 4xx codes outside the table become
 * FAILED_PRECONDITION, still carrying their fields, because they are deliberate answers too.
 */
export function errorToStatus(err: unknown): StatusObject {
	const e = asAnswer(err) as ErrorFields;
	const http = typeof e.code === "number" ? e.code : 0;
	const code = STATUS_BY_HTTP[http] ?? (http >= 400 && http < 500 ? status.FAILED_PRECONDITION : undefined);
	const metadata = new Metadata();
	if (code === undefined || typeof e.type !== "string" || !e.type) {
		return { code: status.INTERNAL, details: "Internal server error", metadata };
	}
	metadata.set(ERROR_KEYS.code, String(http));
	metadata.set(ERROR_KEYS.type, e.type);
	metadata.set(ERROR_KEYS.retryable, String(e.retryable === true));
	if (e.data !== undefined && e.data !== null) {
		const data = Buffer.from(JSON.stringify(e.data));
		if (data.length <= MAX_ERROR_DATA_BYTES) metadata.set(ERROR_KEYS.data, data);
	}
	return { code, details: typeof e.message === "string" ? e.message : e.type, metadata };
}

export interface CallSite {
	service: string;
	method: string;
	deadlineMs: number;
}

const first = (md: Metadata | undefined, key: string) => md?.get(key)[0];

function parseData(raw: string | Buffer | undefined): Record<string, unknown> | undefined {
	if (raw === undefined) return undefined;
	try {
		const value: unknown = JSON.parse(raw.toString());
		if (value === null || typeof value !== "object") return undefined;
		// Moleculer's ValidationError carries an array; AppError data is an object, as in badRequest().
		return Array.isArray(value) ? { errors: value } : (value as Record<string, unknown>);
	} catch {
		return undefined;
	}
}

/** A failed call -> the AppError the caller sees: the server's own error when it sent one. */
export function statusToError(err: Pick<ServiceError, "code" | "details" | "metadata">, site: CallSite): AppError {
	const rpc = `${site.service}/${site.method}`;
	const type = first(err.metadata, ERROR_KEYS.type);
	const http = Number(first(err.metadata, ERROR_KEYS.code));
	if (typeof type === "string" && Number.isInteger(http) && http >= 400 && http < 600) {
		const data = parseData(first(err.metadata, ERROR_KEYS.data));
		return new AppError(http, type, err.details, data, first(err.metadata, ERROR_KEYS.retryable) === "true");
	}
	switch (err.code) {
		case status.DEADLINE_EXCEEDED:
			return new AppError(504, "GRPC_DEADLINE_EXCEEDED", `${rpc} got no answer within its ${site.deadlineMs} ms deadline.`, { service: site.service, method: site.method, deadlineMs: site.deadlineMs }, true);
		case status.UNAVAILABLE:
			return grpcUnavailable(`${rpc} is unavailable: ${err.details.replace(/[\s.:]+$/, "") || "no connection"}.`, { service: site.service, method: site.method });
		default:
			return new AppError(HTTP_BY_STATUS[err.code] ?? 502, `GRPC_${statusName(err.code)}`, `${rpc} failed (${statusName(err.code)}): ${err.details}`, { service: site.service, method: site.method });
	}
}

export const grpcUnavailable = (message: string, data?: Record<string, unknown>) => new AppError(503, "GRPC_UNAVAILABLE", message, data, true);

/** Failures that say the server (not the request) is unwell; client faults like NOT_FOUND do not count. */
export const countsAsFailure = (code: status) =>
	code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED || code === status.INTERNAL || code === status.UNKNOWN;

export interface RetryPolicy {
	/** Extra attempts after the first; clamped to 0..5. */
	retries: number;
	baseDelayMs: number;
	maxDelayMs: number;
}

export const MAX_RETRIES = 5;
export const clampRetries = (retries: number) => Math.min(MAX_RETRIES, Math.max(0, Math.floor(retries)));

/** Exponential back-off for retry number `retry` (1-based), capped. */
export const retryDelayMs = (retry: number, policy: RetryPolicy) => Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));

/**
 * Retry only UNAVAILABLE (the request never reached a handler, or the server said "try later"),
 * only within the bound, and only when the back-off still leaves time before the deadline.
 */
export function shouldRetry(code: status, attemptsMade: number, policy: RetryPolicy, remainingMs: number): boolean {
	if (code !== status.UNAVAILABLE || attemptsMade > clampRetries(policy.retries)) return false;
	return remainingMs > retryDelayMs(attemptsMade, policy);
}

/** The caller's remaining Moleculer timeout, or undefined when it has none. */
export function remainingMs(timeout: number | null | undefined, startHrTime: [number, number] | null | undefined): number | undefined {
	if (!timeout || timeout <= 0) return undefined;
	if (!startHrTime) return timeout;
	const [s, ns] = process.hrtime(startHrTime);
	return timeout - (s * 1e3 + ns / 1e6);
}

/** What the Moleculer registry knows of a node, as far as finding its gRPC servers goes. */
export interface NodeView {
	available: boolean;
	services: readonly unknown[];
	metadata: Record<string, unknown> | null;
}

const grpcMap = (node: NodeView) => (node.metadata?.grpc ?? {}) as Record<string, unknown>;

/**
 * Addresses advertised for `service` (node metadata `grpc[service]`) by available nodes. A stopping
 * node first sends INFO with no services, so it gets no new calls from that moment on.
 */
export function advertisedAddresses(nodes: Iterable<NodeView>, service: string): string[] {
	const addresses = new Set<string>();
	for (const node of nodes) {
		const address = grpcMap(node)[service];
		if (node.available && node.services.length > 0 && typeof address === "string") addresses.add(address);
	}
	return [...addresses];
}

/** Every address some available node still advertises: channels to any other can be closed. */
export function liveAddresses(nodes: Iterable<NodeView>): Set<string> {
	const live = new Set<string>();
	for (const node of nodes) if (node.available) for (const a of Object.values(grpcMap(node))) if (typeof a === "string") live.add(a);
	return live;
}

/** Items rotated by `offset`: round-robin order starting at a different server each call. */
export function rotate<T>(items: readonly T[], offset: number): T[] {
	if (items.length === 0) return [];
	const start = ((offset % items.length) + items.length) % items.length;
	return [...items.slice(start), ...items.slice(0, start)];
}

export interface BreakerOptions {
	/** Consecutive counted failures that open the circuit. */
	threshold: number;
	/** The failures must fall within this window (from the first of the run). */
	windowMs: number;
	/** How long the circuit stays open before one trial call is let through. */
	halfOpenMs: number;
}

export type BreakerState = "closed" | "open" | "half-open";

/** A per-server circuit breaker: closed -> open after `threshold` failures -> one trial -> closed or open. */
export class CircuitBreaker {
	readonly #opts: BreakerOptions;
	readonly #now: () => number;
	#state: BreakerState = "closed";
	#failures = 0;
	#firstFailureAt = 0;
	#openedAt = 0;
	#trialInFlight = false;

	constructor(opts: BreakerOptions, now: () => number = Date.now) {
		this.#opts = opts;
		this.#now = now;
	}

	get state(): BreakerState {
		if (this.#state === "open" && this.#now() - this.#openedAt >= this.#opts.halfOpenMs) return "half-open";
		return this.#state;
	}

	/** Milliseconds until an open circuit lets a trial through (0 when not open). */
	get retryInMs(): number {
		return this.#state === "open" ? Math.max(0, this.#opts.halfOpenMs - (this.#now() - this.#openedAt)) : 0;
	}

	/** May a call go out now? In half-open, exactly one caller gets `true` until it reports back. */
	tryAcquire(): boolean {
		const state = this.state;
		if (state === "closed") return true;
		if (state === "open" || this.#trialInFlight) return false;
		this.#state = "half-open";
		this.#trialInFlight = true;
		return true;
	}

	/** The server answered (even with a client fault): close. */
	onSuccess(): void {
		this.#state = "closed";
		this.#failures = 0;
		this.#trialInFlight = false;
	}

	onFailure(): void {
		const now = this.#now();
		if (this.#state === "half-open") {
			this.#open(now);
			return;
		}
		if (this.#state === "open") return;
		if (this.#failures === 0 || now - this.#firstFailureAt > this.#opts.windowMs) {
			this.#failures = 0;
			this.#firstFailureAt = now;
		}
		this.#failures += 1;
		if (this.#failures >= this.#opts.threshold) this.#open(now);
	}

	#open(now: number): void {
		this.#state = "open";
		this.#openedAt = now;
		this.#failures = 0;
		this.#trialInFlight = false;
	}
}

/** One breaker per server address, created on first use, forgotten when the address goes away. */
export class BreakerSet {
	readonly #opts: BreakerOptions;
	readonly #now: () => number;
	readonly #breakers = new Map<string, CircuitBreaker>();

	constructor(opts: BreakerOptions, now: () => number = Date.now) {
		this.#opts = opts;
		this.#now = now;
	}

	get(address: string): CircuitBreaker {
		let breaker = this.#breakers.get(address);
		if (!breaker) this.#breakers.set(address, (breaker = new CircuitBreaker(this.#opts, this.#now)));
		return breaker;
	}

	/**
	 * The server for the next attempt: one not tried yet in this call whose circuit lets a call
	 * through, else any whose circuit does; undefined when every circuit refuses.
	 */
	pick(addresses: readonly string[], tried: ReadonlySet<string>): string | undefined {
		return addresses.find((a) => !tried.has(a) && this.get(a).tryAcquire()) ?? addresses.find((a) => this.get(a).tryAcquire());
	}

	/** Milliseconds until the first of these open circuits lets a trial through. */
	retryInMs(addresses: readonly string[]): number {
		return Math.min(...addresses.map((a) => this.get(a).retryInMs));
	}

	/** Forgets the breakers of addresses not in `live`. */
	retain(live: ReadonlySet<string>): void {
		for (const address of this.#breakers.keys()) if (!live.has(address)) this.#breakers.delete(address);
	}
}
