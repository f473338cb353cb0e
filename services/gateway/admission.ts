/**
 * Load shedding at the edge. A gateway node admits a request only while it has room: fewer than
 * `maxInFlight` requests in progress in total, fewer than `maxInFlightPerService` towards the
 * service the request is for (a bulkhead: one slow service fills its own compartment, never the
 * whole gateway), and an event loop that is not already late by more than `maxEventLoopDelayMs`.
 * Anything else is refused at once with 503 and Retry-After, so under overload latency and memory
 * stay bounded instead of growing with the queue (docs/reliability.md, overload).
 */
import { AppError } from "../../lib/errors.ts";

export interface AdmissionLimits {
	maxInFlight: number;
	maxInFlightPerService: number;
	maxEventLoopDelayMs: number;
}

/** Seconds a refused client is asked to wait: load changes within a second at this scale. */
export const SHED_RETRY_AFTER_S = 1;
/** A timer that should fire every TICK_MS measures how late the event loop runs it. */
const TICK_MS = 50;
/**
 * The guard acts on the mean lateness of the ticks in a window this long: a lone pause (a GC, one
 * slow request) moves it little, a saturated loop (every callback late) moves it within a window.
 */
const WINDOW_MS = 500;

export class Admission {
	private readonly limits: AdmissionLimits;
	private readonly perService = new Map<string, number>();
	private total = 0;
	private loopDelayMs = 0;
	private sampler?: NodeJS.Timeout;

	constructor(limits: AdmissionLimits) {
		this.limits = limits;
	}

	/** Starts watching the event loop. */
	start(): void {
		// perf_hooks' monitorEventLoopDelay missed a 300 ms block in a measurement; a timer cannot.
		let last = performance.now();
		let windowStart = last;
		let late = 0;
		let ticks = 0;
		this.sampler = setInterval(() => {
			const now = performance.now();
			late += Math.max(0, now - last - TICK_MS);
			ticks++;
			last = now;
			if (now - windowStart < WINDOW_MS) return;
			this.observeLoopDelay(late / ticks);
			windowStart = now;
			late = 0;
			ticks = 0;
		}, TICK_MS);
		this.sampler.unref();
	}

	stop(): void {
		clearInterval(this.sampler);
	}

	/** The event loop's delay in the last window (ms); the sampler feeds it, tests may too. */
	observeLoopDelay(ms: number): void {
		this.loopDelayMs = ms;
	}

	/**
	 * Takes a slot for a request to `service` (undefined: served by the gateway itself) and answers
	 * the function that gives it back, or throws the 503 that refuses it.
	 */
	admit(service: string | undefined): () => void {
		if (this.loopDelayMs > this.limits.maxEventLoopDelayMs) throw overloaded("This gateway is overloaded (its event loop is late).", { reason: "event-loop-delay" });
		if (this.total >= this.limits.maxInFlight) throw overloaded("This gateway has too many requests in progress.", { reason: "in-flight" });
		const busy = service ? (this.perService.get(service) ?? 0) : 0;
		if (service && busy >= this.limits.maxInFlightPerService) throw overloaded(`Too many requests to ${service} are in progress.`, { reason: "service-in-flight", service });
		this.total++;
		if (service) this.perService.set(service, busy + 1);
		let released = false;
		return () => {
			if (released) return;
			released = true;
			this.total--;
			if (service) this.perService.set(service, this.perService.get(service)! - 1);
		};
	}

	/** Requests in progress, in total and per service (for health and tests). */
	inFlight(): { total: number; perService: Record<string, number> } {
		return { total: this.total, perService: Object.fromEntries(this.perService) };
	}
}

function overloaded(message: string, data: Record<string, unknown>): AppError {
	return new AppError(503, "OVERLOADED", `${message} Try again in ${SHED_RETRY_AFTER_S} s.`, data, true);
}
