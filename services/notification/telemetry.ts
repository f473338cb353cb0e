/**
 * Metrics and log lines of the notification pipeline, per channel: queued, sent, retried, failed
 * (dead-lettered) and skipped, the delivery latency from the event to the provider's acceptance,
 * and the queues' job counts. Takes the broker's metric registry and logger as arguments.
 */
import type { HandledEvent, JobBase } from "./notifier.ts";
import type { JobView, Outcome, QueueObserver } from "./queues.ts";

interface CountedQueue {
	readonly channel: string;
	counts(): Promise<Record<string, number>>;
}

export interface MetricRegistry {
	register(def: { name: string; type: string; labelNames?: string[]; description?: string; unit?: string; buckets?: number[] }): unknown;
	getMetric(name: string): unknown;
	increment(name: string, labels?: Record<string, string>, value?: number): unknown;
	observe(name: string, value: number, labels?: Record<string, string>): unknown;
	set(name: string, value: number, labels?: Record<string, string>): unknown;
}

export interface Log {
	debug(...args: unknown[]): void;
	info(...args: unknown[]): void;
	warn(...args: unknown[]): void;
	error(...args: unknown[]): void;
}

export const METRIC = {
	queued: "notifications.queued.total",
	sent: "notifications.sent.total",
	retried: "notifications.retried.total",
	failed: "notifications.failed.total",
	skipped: "notifications.skipped.total",
	latency: "notifications.delivery.latency",
	jobs: "notifications.queue.jobs",
} as const;

export function registerMetrics(metrics: MetricRegistry): void {
	if (metrics.getMetric(METRIC.sent)) return;
	const counter = (name: string, description: string, labelNames = ["channel"]) => metrics.register({ name, type: "counter", labelNames, description });
	counter(METRIC.queued, "Notification jobs queued");
	counter(METRIC.sent, "Notifications handed to the provider (SMTP server, push service) or stored in the inbox");
	counter(METRIC.retried, "Failed delivery attempts that will be retried");
	counter(METRIC.failed, "Deliveries that failed for good and went to the failed set");
	counter(METRIC.skipped, "Notifications not sent (preference, no device, subscription gone, user deleted)", ["channel", "reason"]);
	metrics.register({
		name: METRIC.latency,
		type: "histogram",
		labelNames: ["channel"],
		unit: "millisecond",
		description: "From the event's time to the notification's delivery",
		buckets: [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000],
	});
	metrics.register({ name: METRIC.jobs, type: "gauge", labelNames: ["channel", "state"], description: "Jobs per queue and state (failed = dead letters)" });
}

const fields = <T extends JobBase>(job: JobView<T>) => ({
	jobId: job.id,
	eventId: job.data.eventId,
	workflow: job.data.workflow,
	userId: job.data.userId,
	...(job.data.requestId ? { requestId: job.data.requestId } : {}),
});

const SKIP_REASON: Record<Exclude<Outcome, "sent">, string> = { skipped: "not wanted", expired: "subscription gone" };

export function queueObserver<T extends JobBase>(channel: string, metrics: MetricRegistry, log: Log, clock: () => Date): QueueObserver<T> {
	let lastErrorLog = 0;
	return {
		queued(job) {
			metrics.increment(METRIC.queued, { channel });
			log.debug(`${channel}: queued`, fields(job));
		},
		completed(job, outcome) {
			if (outcome === "sent") {
				metrics.increment(METRIC.sent, { channel });
				const latency = clock().getTime() - Date.parse(job.data.eventTime);
				metrics.observe(METRIC.latency, Math.max(0, latency), { channel });
				// Once a job completed, BullMQ's attemptsMade already counts this attempt.
				log.info(`${channel}: sent ${job.data.workflow} (attempt ${job.attempts}, ${latency} ms after the event)`, fields(job));
			} else {
				metrics.increment(METRIC.skipped, { channel, reason: SKIP_REASON[outcome] });
				log.info(`${channel}: not sent (${SKIP_REASON[outcome]})`, fields(job));
			}
		},
		retrying(job, err, delayMs) {
			metrics.increment(METRIC.retried, { channel });
			log.warn(`${channel}: attempt ${job.attempts} failed, next in ${delayMs} ms: ${err.message}`, fields(job));
		},
		failed(job, err) {
			metrics.increment(METRIC.failed, { channel });
			log.error(`${channel}: failed after ${job.attempts} attempt(s), kept in the failed set: ${err.message}`, fields(job));
		},
		error(err) {
			// A Redis outage makes every worker loop report; one line per 10 s is enough.
			const now = clock().getTime();
			if (now - lastErrorLog < 10_000) return;
			lastErrorLog = now;
			log.warn(`${channel} queue: ${err.message}`);
		},
	};
}

/** Counts what an event turned into; in-app alerts are delivered right away, so they count as sent. */
export function recordHandled(metrics: MetricRegistry, log: Log, event: { id: string; type: string; time: string }, result: HandledEvent, clock: () => Date): void {
	for (const c of result.channels) {
		if (c.outcome === "stored") {
			metrics.increment(METRIC.sent, { channel: c.channel });
			metrics.observe(METRIC.latency, Math.max(0, clock().getTime() - Date.parse(event.time)), { channel: c.channel });
		} else if (c.outcome === "skipped") {
			metrics.increment(METRIC.skipped, { channel: c.channel, reason: c.reason ?? "skipped" });
		}
	}
	if (result.workflow) {
		const summary = result.channels.map((c) => `${c.channel}=${c.outcome}${c.reason ? ` (${c.reason})` : ""}`).join(", ");
		log.info(`event ${event.type} -> ${result.workflow}: ${summary || "no channel"}`, { eventId: event.id });
	}
}

/** Sets the job-count gauge of each queue every `everyMs`; answers a function that stops it. */
export function pollJobCounts(queues: (CountedQueue | null | undefined)[], metrics: MetricRegistry, everyMs: number): () => void {
	const timer = setInterval(() => {
		for (const queue of queues) {
			queue?.counts().then(
				(counts) => {
					for (const [state, value] of Object.entries(counts)) metrics.set(METRIC.jobs, value, { channel: queue.channel, state });
				},
				() => undefined, // Redis down: the gauge keeps its last value; the health check reports it
			);
		}
	}, everyMs);
	timer.unref();
	return () => clearInterval(timer);
}
