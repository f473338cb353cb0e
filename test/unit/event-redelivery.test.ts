import { describe, expect, it } from "vitest";
import { redeliveryDelayMs } from "../../mixins/events.mixin.ts";

describe("redeliveryDelayMs", () => {
	const total = (outage: boolean, random: () => number) => [1, 2, 3, 4].reduce((ms, attempt) => ms + redeliveryDelayMs(attempt, outage, random), 0);

	it("backs off exponentially, capped, with jitter between half and all of the step", () => {
		expect([1, 2, 3, 4, 5].map((a) => redeliveryDelayMs(a, false, () => 1))).toEqual([400, 800, 1_600, 3_200, 5_000]);
		expect(redeliveryDelayMs(3, false, () => 0)).toBe(800);
	});

	it("gives a dependency outage a ladder long enough to ride out a restart or failover before the dead-letter queue", () => {
		expect([1, 2, 3, 4].map((a) => redeliveryDelayMs(a, true, () => 1))).toEqual([2_000, 4_000, 8_000, 15_000]);
		// Between the first and the fifth (last) attempt: at least 15 s for an outage, at most ~6 s for a bug.
		expect(total(true, () => 0)).toBeGreaterThanOrEqual(15_000);
		expect(total(false, () => 1)).toBeLessThanOrEqual(6_000);
	});
});
