import { describe, expect, it } from "vitest";
import { Admission } from "../../services/gateway/admission.ts";
import { exemptFromShedding, serviceOfPath } from "../../services/gateway/edge-policy.ts";
import type { AppError } from "../../lib/errors.ts";

const limits = { maxInFlight: 4, maxInFlightPerService: 2, maxEventLoopDelayMs: 100 };
const refusal = (admit: () => unknown) => {
	try {
		admit();
	} catch (err) {
		return err as AppError;
	}
	throw new Error("expected a refusal");
};

describe("gateway admission (load shedding)", () => {
	it("bounds each service's share and the total, and refuses with a retryable 503", () => {
		const a = new Admission(limits);
		const b1 = a.admit("billing");
		a.admit("billing");
		const err = refusal(() => a.admit("billing"));
		expect([err.code, err.type, err.retryable]).toEqual([503, "OVERLOADED", true]);
		// Billing's compartment is full; auth still gets in, up to the total.
		a.admit("auth");
		a.admit(undefined);
		expect(refusal(() => a.admit("auth")).data).toEqual({ reason: "in-flight" });
		expect(a.inFlight()).toEqual({ total: 4, perService: { billing: 2, auth: 1 } });
		b1();
		b1(); // a second release of the same slot changes nothing
		expect(a.inFlight()).toEqual({ total: 3, perService: { billing: 1, auth: 1 } });
		a.admit("billing");
	});

	it("refuses everything while the event loop is late, and admits again when it catches up", () => {
		const a = new Admission(limits);
		a.observeLoopDelay(250);
		expect(refusal(() => a.admit("auth")).data).toEqual({ reason: "event-loop-delay" });
		a.observeLoopDelay(20);
		a.admit("auth")();
		expect(a.inFlight().total).toBe(0);
	});

	it("measures a saturated event loop itself and sheds while it lasts", async () => {
		const a = new Admission(limits);
		a.start();
		try {
			// Every callback runs 200 ms late for a second, as on a node with more work than CPU.
			const until = performance.now() + 1_000;
			while (performance.now() < until) {
				await new Promise((r) => setTimeout(r, 0));
				const busy = performance.now() + 200;
				while (performance.now() < busy);
			}
			expect(refusal(() => a.admit("auth")).data).toEqual({ reason: "event-loop-delay" });
			await new Promise((r) => setTimeout(r, 1_200));
			a.admit("auth")();
		} finally {
			a.stop();
		}
	});

	it("knows which service a path is for, and never sheds probes or event streams", () => {
		expect(["/api/v1/billing/plans", "/api/v1/notifications?limit=5", "/api/v1/auth/login", "/.well-known/jwks.json", "/api/docs", "/"].map(serviceOfPath)).toEqual([
			"billing",
			"notification",
			"auth",
			"auth",
			undefined,
			undefined,
		]);
		expect(["/healthz", "/readyz?x=1", "/api/v1/notifications/stream", "/api/v1/billing/plans"].map(exemptFromShedding)).toEqual([true, true, true, false]);
	});
});
