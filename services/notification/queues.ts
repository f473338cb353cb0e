/**
 * One BullMQ queue per delivery channel (e-mail, push): jobs keyed by event id and channel so an
 * event delivered again adds nothing, retries with exponential back-off and jitter, a failed set
 * that keeps dead letters for inspection and re-queueing, a rate limit towards the provider, and
 * a shutdown that lets running jobs finish (or hands them back to the queue).
 *
 * A job that succeeded leaves a "delivered" marker that outlives the job itself, so a very late
 * redelivery of the event (after the completed job was cleaned up) still sends nothing.
 */
import { Queue, UnrecoverableError, Worker } from "bullmq";
import type { Job } from "bullmq";
import type { Redis } from "ioredis";

/** Trying again cannot help (address rejected, payload refused): the job fails at once. */
export class PermanentDeliveryError extends Error {
	constructor(message: string) {
		super(message);
		this.name = "PermanentDeliveryError";
	}
}

export interface RetryPolicy {
	/** Total attempts, the first included. */
	attempts: number;
	baseMs: number;
	maxMs: number;
}

/**
 * Delay before attempt `attempt + 1`: exponential, capped, with "equal jitter" (half fixed, half
 * random) so that jobs failed together by one outage do not come back together.
 */
export function backoffDelay(attemptsMade: number, policy: Pick<RetryPolicy, "baseMs" | "maxMs">, random: () => number = Math.random): number {
	const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attemptsMade - 1));
	return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export interface JobView<T> {
	id: string;
	data: T;
	/** Attempts made so far. */
	attempts: number;
	enqueuedAt: number;
}

export interface FailedJob<T> extends JobView<T> {
	failedReason: string;
	failedAt: number | null;
}

/** "expired": the device's subscription is gone and was removed. */
export type Outcome = "sent" | "skipped" | "expired";

/** What the service wants to know about a queue: metrics and log lines. */
export interface QueueObserver<T> {
	queued(job: JobView<T>): void;
	completed(job: JobView<T>, outcome: Outcome): void;
	retrying(job: JobView<T>, err: Error, delayMs: number): void;
	failed(job: JobView<T>, err: Error): void;
	error(err: Error): void;
}

export interface ChannelQueueOptions<T> {
	channel: string;
	prefix: string;
	/** For adding and inspecting jobs; commands fail fast when Redis is down. */
	connection: Redis;
	/** For the worker; BullMQ needs `maxRetriesPerRequest: null` and duplicates it for blocking reads. */
	workerConnection: Redis;
	deliveredKey(jobId: string): string;
	/** Claimed by the one enqueue that added the job, so concurrent duplicates count it once. */
	enqueuedKey(jobId: string): string;
	concurrency: number;
	ratePerSecond: number;
	retry: RetryPolicy;
	process(data: T, job: { id: string; attempt: number; signal?: AbortSignal }): Promise<Outcome>;
	observer: QueueObserver<T>;
}

const DAY_S = 86_400;
/** Completed jobs stay a day (their ids deduplicate), failed ones two weeks (dead letters). */
const KEEP_COMPLETED = { age: DAY_S, count: 100_000 };
const KEEP_FAILED = { age: 14 * DAY_S };
const DELIVERED_TTL_S = 7 * DAY_S;

export class ChannelQueue<T> {
	readonly channel: string;
	private readonly opts: ChannelQueueOptions<T>;
	// Untyped: BullMQ's conditional generics do not resolve for a generic T.
	private readonly queue: Queue;
	private worker?: Worker<T, Outcome>;

	constructor(opts: ChannelQueueOptions<T>) {
		this.opts = opts;
		this.channel = opts.channel;
		this.queue = new Queue(opts.channel, { connection: opts.connection, prefix: opts.prefix });
		this.queue.on("error", (err) => opts.observer.error(err));
	}

	/**
	 * Adds the job unless a job with this id exists or was delivered; answers whether this call
	 * added it. BullMQ itself never adds a job id twice; of concurrent duplicates (the same event
	 * delivered to two consumers at once) only the one that claims the marker reports it.
	 */
	async enqueue(jobId: string, data: T): Promise<boolean> {
		const { connection } = this.opts;
		// Two round trips. The first asks whether the job was delivered or still exists (BullMQ
		// keeps it under its id) in one command, without reading the job. A failed add leaves the
		// claim: the redelivered event then queues the job but reports a duplicate (never a lost
		// or extra send).
		if ((await connection.exists(this.opts.deliveredKey(jobId), this.queue.toKey(jobId))) > 0) return false;
		const [job, first] = await Promise.all([
			this.queue.add(this.channel, data, { jobId, attempts: this.opts.retry.attempts, backoff: { type: "jittered" }, removeOnComplete: KEEP_COMPLETED, removeOnFail: KEEP_FAILED }),
			connection.set(this.opts.enqueuedKey(jobId), "1", "EX", DAY_S, "NX").catch(() => "OK"),
		]);
		if (first !== "OK") return false;
		this.opts.observer.queued(view(job as Job<T, Outcome>));
		return true;
	}

	/** Starts taking jobs. */
	start(): void {
		const { opts } = this;
		const worker = new Worker<T, Outcome>(
			opts.channel,
			async (job, _token, signal) => {
				const id = job.id!;
				if ((await opts.connection.exists(opts.deliveredKey(id))) === 1) return "skipped";
				try {
					const outcome = await opts.process(job.data, { id, attempt: job.attemptsMade + 1, signal });
					// Best effort: failing here must not fail (and so repeat) a delivery that happened.
					await opts.connection.set(opts.deliveredKey(id), "1", "EX", DELIVERED_TTL_S).catch((err: Error) => opts.observer.error(err));
					return outcome;
				} catch (err) {
					if (err instanceof PermanentDeliveryError) throw new UnrecoverableError(err.message);
					throw err;
				}
			},
			{
				connection: opts.workerConnection,
				prefix: opts.prefix,
				concurrency: opts.concurrency,
				limiter: { max: opts.ratePerSecond, duration: 1_000 },
				settings: { backoffStrategy: (attemptsMade: number) => backoffDelay(attemptsMade, opts.retry) },
			},
		);
		worker.on("completed", (job, outcome) => opts.observer.completed(view(job), outcome));
		worker.on("failed", (job, err) => {
			if (!job) return;
			const final = err instanceof UnrecoverableError || err.name === "UnrecoverableError" || job.attemptsMade >= (job.opts.attempts ?? 1);
			if (final) opts.observer.failed(view(job), err);
			else opts.observer.retrying(view(job), err, job.delay);
		});
		worker.on("error", (err) => opts.observer.error(err));
		this.worker = worker;
	}

	async counts(): Promise<Record<string, number>> {
		return this.queue.getJobCounts("waiting", "active", "delayed", "failed", "completed");
	}

	/** Dead letters, newest first. */
	async listFailed(offset: number, limit: number): Promise<{ total: number; items: FailedJob<T>[] }> {
		const [total, jobs] = await Promise.all([this.queue.getFailedCount(), this.queue.getFailed(offset, offset + limit - 1)]);
		const items = (jobs as Job<T, Outcome>[]).filter(Boolean).map((job) => ({ ...view(job), failedReason: job.failedReason, failedAt: job.finishedOn ?? null }));
		return { total, items };
	}

	/** Puts one failed job back in the queue with its attempts reset; false when it is not failed. */
	async retry(jobId: string): Promise<boolean> {
		const job = (await this.queue.getJob(jobId)) as Job<T, Outcome> | undefined;
		if (!job || (await job.getState()) !== "failed") return false;
		await job.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
		return true;
	}

	/** Re-queues up to `max` failed jobs, oldest first; answers how many. */
	async retryAll(max: number): Promise<number> {
		let retried = 0;
		const batch = 100;
		while (retried < max) {
			const total = await this.queue.getFailedCount();
			if (total === 0) break;
			// Oldest first: the end of the failed set (newest first).
			const jobs = (await this.queue.getFailed(Math.max(0, total - batch), total - 1)) as Job<T, Outcome>[];
			let moved = 0;
			for (const job of jobs.filter(Boolean).reverse()) {
				if (retried >= max) break;
				await job.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
				retried++;
				moved++;
			}
			if (moved === 0) break;
		}
		return retried;
	}

	/**
	 * Stops taking jobs and waits up to `graceMs` for running ones. After that their abort signal
	 * fires (a processor that honours it fails the attempt, which is retried); a job that still
	 * runs returns to the queue when its lock expires. Then closes the queue.
	 */
	async close(graceMs: number): Promise<{ cancelled: boolean }> {
		let cancelled = false;
		if (this.worker) {
			const worker = this.worker;
			const closing = worker.close();
			let timer: NodeJS.Timeout | undefined;
			const timedOut = await Promise.race([closing.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
			clearTimeout(timer);
			if (timedOut) {
				cancelled = true;
				worker.cancelAllJobs("node shutting down");
				await Promise.race([closing, new Promise((r) => setTimeout(r, 1_000))]);
			}
		}
		await this.queue.close();
		return { cancelled };
	}
}

function view<T>(job: Job<T, Outcome>): JobView<T> {
	return { id: job.id!, data: job.data, attempts: job.attemptsMade, enqueuedAt: job.timestamp };
}
