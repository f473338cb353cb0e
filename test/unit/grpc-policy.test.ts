import { Errors } from "moleculer";
import { Metadata, status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { AppError, badRequest, notFound } from "../../lib/errors.ts";
import {
	BreakerSet, CircuitBreaker, ERROR_KEYS, advertisedAddresses, clampRetries, countsAsFailure, errorToStatus, liveAddresses, remainingMs, retryDelayMs, rotate, shouldRetry, statusToError,
} from "../../lib/grpc-policy.ts";
import type { NodeView, RetryPolicy } from "../../lib/grpc-policy.ts";

const site = { service: "auth.v1.AuthService", method: "Ping", deadlineMs: 300 };
const roundTrip = (err: unknown) => statusToError(errorToStatus(err), site);

describe("circuit breaker", () => {
	const clock = () => {
		const c = { t: 1_000, now: () => c.t };
		return c;
	};
	const opts = { threshold: 3, windowMs: 1_000, halfOpenMs: 500 };

	it("opens after `threshold` consecutive failures and refuses calls while open", () => {
		const c = clock();
		const b = new CircuitBreaker(opts, c.now);
		b.onFailure();
		b.onFailure();
		expect(b.state).toBe("closed");
		expect(b.tryAcquire()).toBe(true);
		b.onFailure();
		expect(b.state).toBe("open");
		expect(b.tryAcquire()).toBe(false);
		c.t += 200;
		expect(b.retryInMs).toBe(300);
	});

	it("a success in between resets the run", () => {
		const b = new CircuitBreaker(opts, clock().now);
		b.onFailure();
		b.onFailure();
		b.onSuccess();
		b.onFailure();
		b.onFailure();
		expect(b.state).toBe("closed");
	});

	it("failures spread wider than the window do not open it", () => {
		const c = clock();
		const b = new CircuitBreaker(opts, c.now);
		b.onFailure();
		b.onFailure();
		c.t += 1_001;
		b.onFailure();
		expect(b.state).toBe("closed");
		b.onFailure();
		b.onFailure();
		expect(b.state).toBe("open");
	});

	it("after halfOpenMs lets exactly one trial through; success closes it", () => {
		const c = clock();
		const b = new CircuitBreaker(opts, c.now);
		for (let i = 0; i < 3; i++) b.onFailure();
		c.t += 499;
		expect(b.tryAcquire()).toBe(false);
		c.t += 1;
		expect(b.state).toBe("half-open");
		expect(b.tryAcquire()).toBe(true);
		expect(b.tryAcquire()).toBe(false);
		b.onSuccess();
		expect(b.state).toBe("closed");
		expect(b.tryAcquire()).toBe(true);
	});

	it("a failed trial opens it again for a full halfOpenMs", () => {
		const c = clock();
		const b = new CircuitBreaker(opts, c.now);
		for (let i = 0; i < 3; i++) b.onFailure();
		c.t += 500;
		expect(b.tryAcquire()).toBe(true);
		b.onFailure();
		expect(b.state).toBe("open");
		expect(b.retryInMs).toBe(500);
		c.t += 500;
		expect(b.tryAcquire()).toBe(true);
	});
});

describe("breakers per server address", () => {
	it("picks an untried server whose circuit allows, else any that allows, else none", () => {
		const c = { t: 0 };
		const set = new BreakerSet({ threshold: 1, windowMs: 1_000, halfOpenMs: 500 }, () => c.t);
		expect(set.pick(["a", "b"], new Set())).toBe("a");
		expect(set.pick(["a", "b"], new Set(["a"]))).toBe("b");
		expect(set.pick(["a", "b"], new Set(["a", "b"]))).toBe("a");
		set.get("a").onFailure();
		expect(set.pick(["a", "b"], new Set())).toBe("b");
		set.get("b").onFailure();
		expect(set.pick(["a", "b"], new Set())).toBeUndefined();
		c.t += 200;
		expect(set.retryInMs(["a", "b"])).toBe(300);
	});

	it("forgets addresses that are no longer advertised", () => {
		const set = new BreakerSet({ threshold: 1, windowMs: 1_000, halfOpenMs: 60_000 });
		set.get("a").onFailure();
		set.get("b").onFailure();
		set.retain(new Set(["b"]));
		expect(set.get("a").state).toBe("closed");
		expect(set.get("b").state).toBe("open");
	});
});

describe("error <-> gRPC status mapping", () => {
	it.each([
		[400, status.INVALID_ARGUMENT],
		[401, status.UNAUTHENTICATED],
		[403, status.PERMISSION_DENIED],
		[404, status.NOT_FOUND],
		[409, status.ALREADY_EXISTS],
		[422, status.INVALID_ARGUMENT],
		[429, status.RESOURCE_EXHAUSTED],
		[503, status.UNAVAILABLE],
		[504, status.DEADLINE_EXCEEDED],
		[410, status.FAILED_PRECONDITION],
	])("HTTP %i -> gRPC %i, and back with the same fields", (http, code) => {
		const err = new AppError(http, "SOME_TYPE", "said the server", { field: "x", n: 1 });
		expect(errorToStatus(err).code).toBe(code);
		const back = roundTrip(err);
		expect(back).toBeInstanceOf(AppError);
		expect({ code: back.code, type: back.type, message: back.message, data: back.data, retryable: back.retryable }).toEqual({
			code: http,
			type: "SOME_TYPE",
			message: "said the server",
			data: { field: "x", n: 1 },
			retryable: http >= 500,
		});
	});

	it("keeps non-ASCII data intact (binary trailer) and the validation errors of badRequest", () => {
		const back = roundTrip(badRequest("Bad input.", [{ field: "name", message: "trop long — ça dépasse" }]));
		expect(back.data).toEqual({ errors: [{ field: "name", message: "trop long — ça dépasse" }] });
		expect(back.type).toBe("VALIDATION_ERROR");
	});

	it("answers a dependency that is down or restarting with UNAVAILABLE (retryable 503), its detail hidden", () => {
		const pgDown = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
		const pgShuttingDown = Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" });
		const mongoDown = Object.assign(new Error("connection 2 to 10.0.0.7:27017 closed"), { name: "MongoNetworkError" });
		// The last: a query on a client whose connection failed (seen in the chaos suite's PostgreSQL restart).
		for (const err of [pgDown, pgShuttingDown, mongoDown, new Error("Connection terminated unexpectedly"), new Error("Client has encountered a connection error and is not queryable")]) {
			expect(errorToStatus(err).code).toBe(status.UNAVAILABLE);
			const back = roundTrip(err);
			expect({ code: back.code, type: back.type, retryable: back.retryable }).toEqual({ code: 503, type: "DEPENDENCY_UNAVAILABLE", retryable: true });
			expect(back.message).not.toMatch(/127\.0\.0\.1|10\.0\.0\.7|administrator/);
		}
	});

	it("answers Moleculer's 'no endpoint right now' (starting, stopping, circuit open) with UNAVAILABLE, not NOT_FOUND", () => {
		for (const err of [new Errors.ServiceNotAvailableError({ action: "auth.register", nodeID: "auth-1" }), new Errors.ServiceNotFoundError({ action: "auth.register" })]) {
			expect(err.code).toBe(404); // what Moleculer says
			expect(errorToStatus(err).code).toBe(status.UNAVAILABLE);
			const back = roundTrip(err);
			expect({ code: back.code, type: back.type, retryable: back.retryable }).toEqual({ code: 503, type: "SERVICE_UNAVAILABLE", retryable: true });
		}
	});

	it("wraps array data (Moleculer's ValidationError) as { errors }", () => {
		const moleculerLike = Object.assign(new Error("Parameters validation error!"), { code: 422, type: "VALIDATION_ERROR", data: [{ field: "message", type: "required" }] });
		const back = roundTrip(moleculerLike);
		expect(back.code).toBe(422);
		expect(back.data).toEqual({ errors: [{ field: "message", type: "required" }] });
	});

	it("hides anything that is not a client fault: INTERNAL, generic message, no type, no data, no stack", () => {
		for (const err of [new Error("db password is hunter2"), new AppError(500, "BUG", "secret detail", { sql: "select" }), { code: "EACCES" }, undefined]) {
			const answer = errorToStatus(err);
			expect(answer.code).toBe(status.INTERNAL);
			expect(answer.details).toBe("Internal server error");
			expect(answer.metadata.getMap()).toEqual({});
		}
		const back = roundTrip(new Error("db password is hunter2"));
		expect(back.code).toBe(502);
		expect(back.type).toBe("GRPC_INTERNAL");
		expect(back.message).not.toContain("hunter2");
	});

	it("drops data too large for a trailer but keeps the type", () => {
		const answer = errorToStatus(new AppError(400, "TOO_MUCH", "big", { blob: "x".repeat(10_000) }));
		expect(answer.metadata.get(ERROR_KEYS.data)).toEqual([]);
		expect(answer.metadata.get(ERROR_KEYS.type)).toEqual(["TOO_MUCH"]);
	});

	it("turns bare transport statuses into clear AppErrors", () => {
		const bare = (code: status, details = "") => statusToError({ code, details, metadata: new Metadata() }, site);
		const deadline = bare(status.DEADLINE_EXCEEDED);
		expect([deadline.code, deadline.type, deadline.retryable]).toEqual([504, "GRPC_DEADLINE_EXCEEDED", true]);
		expect(deadline.message).toBe("auth.v1.AuthService/Ping got no answer within its 300 ms deadline.");
		const down = bare(status.UNAVAILABLE, "No connection established");
		expect([down.code, down.type, down.retryable]).toEqual([503, "GRPC_UNAVAILABLE", true]);
		expect(down.message).toContain("auth.v1.AuthService/Ping");
		expect(bare(status.UNIMPLEMENTED).type).toBe("GRPC_UNIMPLEMENTED");
		expect(bare(status.NOT_FOUND).code).toBe(404);
	});

	it("round-trips the project's helpers", () => {
		const back = roundTrip(notFound("User"));
		expect([back.code, back.type, back.message]).toEqual([404, "NOT_FOUND", "User was not found."]);
	});
});

describe("retry and deadline bounds", () => {
	const policy: RetryPolicy = { retries: 2, baseDelayMs: 25, maxDelayMs: 200 };

	it("retries UNAVAILABLE only, at most `retries` times", () => {
		expect(shouldRetry(status.UNAVAILABLE, 1, policy, 1_000)).toBe(true);
		expect(shouldRetry(status.UNAVAILABLE, 2, policy, 1_000)).toBe(true);
		expect(shouldRetry(status.UNAVAILABLE, 3, policy, 1_000)).toBe(false);
		for (const code of [status.DEADLINE_EXCEEDED, status.INTERNAL, status.NOT_FOUND, status.INVALID_ARGUMENT]) {
			expect(shouldRetry(code, 1, policy, 1_000)).toBe(false);
		}
	});

	it("never retries past the deadline", () => {
		expect(shouldRetry(status.UNAVAILABLE, 1, policy, 25)).toBe(false);
		expect(shouldRetry(status.UNAVAILABLE, 1, policy, 26)).toBe(true);
	});

	it("backs off exponentially with a cap, and clamps absurd retry counts", () => {
		expect([1, 2, 3, 4, 5].map((n) => retryDelayMs(n, policy))).toEqual([25, 50, 100, 200, 200]);
		expect(clampRetries(100)).toBe(5);
		expect(clampRetries(-1)).toBe(0);
		expect(shouldRetry(status.UNAVAILABLE, 6, { ...policy, retries: 100 }, 10_000)).toBe(false);
	});

	it("counts only server-side trouble as breaker failures", () => {
		expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.INTERNAL, status.UNKNOWN].every(countsAsFailure)).toBe(true);
		expect([status.NOT_FOUND, status.INVALID_ARGUMENT, status.PERMISSION_DENIED, status.RESOURCE_EXHAUSTED].some(countsAsFailure)).toBe(false);
	});

	it("takes the caller's remaining timeout into account", () => {
		expect(remainingMs(undefined, null)).toBeUndefined();
		expect(remainingMs(0, null)).toBeUndefined();
		expect(remainingMs(500, null)).toBe(500);
		const left = remainingMs(500, process.hrtime());
		expect(left).toBeGreaterThan(490);
		expect(left).toBeLessThanOrEqual(500);
	});

	it("rotates servers round-robin", () => {
		expect(rotate(["a", "b", "c"], 0)).toEqual(["a", "b", "c"]);
		expect(rotate(["a", "b", "c"], 4)).toEqual(["b", "c", "a"]);
		expect(rotate([], 3)).toEqual([]);
	});
});

describe("server discovery from registry nodes", () => {
	const node = (grpc: Record<string, string> | undefined, available = true, services = 1): NodeView => ({
		available,
		services: Array.from({ length: services }, () => ({})),
		metadata: grpc ? { grpc } : {},
	});
	const nodes = [
		node({ "auth.v1.AuthService": "10.0.0.1:50051", "x.v1.X": "10.0.0.1:50052" }),
		node(undefined),
		node({ "auth.v1.AuthService": "10.0.0.2:50051" }),
		node({ "auth.v1.AuthService": "10.0.0.3:50051" }, false),
		node({ "auth.v1.AuthService": "10.0.0.4:50051" }, true, 0),
		node({ "auth.v1.AuthService": "10.0.0.1:50051" }),
	];

	it("lists each address advertised by available, non-stopping nodes once", () => {
		expect(advertisedAddresses(nodes, "auth.v1.AuthService")).toEqual(["10.0.0.1:50051", "10.0.0.2:50051"]);
		expect(advertisedAddresses(nodes, "billing.v1.BillingService")).toEqual([]);
	});

	it("keeps channels of every address an available node still advertises", () => {
		expect([...liveAddresses(nodes)].sort()).toEqual(["10.0.0.1:50051", "10.0.0.1:50052", "10.0.0.2:50051", "10.0.0.4:50051"]);
	});
});
