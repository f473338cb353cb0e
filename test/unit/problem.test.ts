import { Errors } from "moleculer";
import { describe, expect, it } from "vitest";
import { AppError, badRequest } from "../../lib/errors.ts";
import { toProblem } from "../../lib/problem.ts";

describe("toProblem", () => {
	it("keeps a client fault's status, code and message", () => {
		const p = toProblem(new AppError(409, "EMAIL_ALREADY_REGISTERED", "An account with this e-mail address already exists."), "/api/v1/auth/register", "req-1");
		expect(p).toEqual({
			type: "/problems/email-already-registered",
			code: "EMAIL_ALREADY_REGISTERED",
			title: "Conflict",
			status: 409,
			detail: "An account with this e-mail address already exists.",
			instance: "/api/v1/auth/register",
			requestId: "req-1",
		});
	});

	it("adds the extension members a client fault carries, never over the reserved ones, never on a 500", () => {
		const challenge = new AppError(403, "MFA_REQUIRED", "Enter the code.", { extensions: { mfaToken: "t0k", mfaTokenExpiresIn: 300, status: 200, nested: { no: 1 } } });
		expect(toProblem(challenge)).toMatchObject({ status: 403, code: "MFA_REQUIRED", mfaToken: "t0k", mfaTokenExpiresIn: 300 });
		expect(toProblem(challenge)).not.toHaveProperty("nested");
		expect(toProblem(new AppError(500, "BOOM", "x", { extensions: { secret: "s" } }))).not.toHaveProperty("secret");
	});

	it("lists the failing fields of a Moleculer validation error", () => {
		const err = new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [
			{ type: "email", field: "email", message: "The 'email' field must be a valid e-mail." },
		]);
		const p = toProblem(err);
		expect(p.status).toBe(400);
		expect(p.errors).toEqual([{ field: "email", message: "The 'email' field must be a valid e-mail." }]);
	});

	it("lists the fields of our own bad request", () => {
		expect(toProblem(badRequest("Invalid.", [{ field: "password", message: "too short" }])).errors).toEqual([{ field: "password", message: "too short" }]);
	});

	it("hides internal errors behind a generic 500", () => {
		const p = toProblem(new Error("relation \"users\" does not exist at /srv/app.js:12"));
		expect(p.status).toBe(500);
		expect(p.code).toBe("INTERNAL_ERROR");
		expect(JSON.stringify(p)).not.toContain("users");
	});

	it("turns an unreachable or timed-out service into 503/504", () => {
		expect(toProblem(new Errors.ServiceNotFoundError({ action: "billing.plans" })).status).toBe(503);
		expect(toProblem(new Errors.RequestTimeoutError({ action: "billing.plans", nodeID: "n1" })).status).toBe(504);
		expect(toProblem(new AppError(503, "GRPC_UNAVAILABLE", "internal address 10.0.0.1:50051 refused")).detail).not.toContain("10.0.0.1");
	});

	it("answers a database that is down or restarting with 503, not 500, and names no address", () => {
		for (const err of [Object.assign(new Error("connect ECONNREFUSED 10.0.0.3:5432"), { code: "ECONNREFUSED" }), Object.assign(new Error("connection 2 to 10.0.0.7:27017 closed"), { name: "MongoNetworkError" }), Object.assign(new Error("Topology is closed"), { name: "MongoTopologyClosedError" })]) {
			const p = toProblem(err);
			expect({ status: p.status, code: p.code }).toEqual({ status: 503, code: "DEPENDENCY_UNAVAILABLE" });
			expect(JSON.stringify(p)).not.toMatch(/10\.0\.0/);
		}
	});

	it("does not trust a 4xx error that has no type (not raised on purpose)", () => {
		expect(toProblem({ code: 404, message: "ENOENT /etc/secret" }).status).toBe(500);
	});
});
