/**
 * Graceful shutdown of a notification node: SIGTERM while welcome e-mails are being sent. The
 * node stops taking events and jobs, lets the e-mails in flight finish, and exits 0; the jobs it
 * never started wait in Redis for the next node. Afterwards every user has exactly one welcome
 * e-mail: none lost, none sent twice. The SMTP server is made slow (a proxy that delays every
 * chunk) so that jobs really are in flight when the signal arrives.
 */
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCloudEvent } from "../../lib/events/cloudevents.ts";
import { AmqpEventPublisher } from "../../lib/events/publisher.ts";
import { createKeys } from "../../services/notification/keys.ts";
import { ProcessCluster, deleteMail, mailCountsForDomain, sleep } from "../support/chaos.ts";
import { eventually, infra, testEnv, uniqueId } from "../support/infra.ts";
import { TcpProxy } from "../support/tcp-proxy.ts";

const USERS = 20;
const SMTP_CHUNK_DELAY_MS = 150;

describe("chaos: SIGTERM drains a notification node's jobs", () => {
	const namespace = uniqueId("chaosnd");
	const domain = `${namespace}.test`;
	const smtp = new URL(infra.smtpUrl);
	const slowSmtp = new TcpProxy({ host: smtp.hostname, port: Number(smtp.port) });
	const redis = new Redis(infra.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
	let emailQueue: Queue;
	let cluster: ProcessCluster;

	const welcomeMails = async () => (await mailCountsForDomain(domain, /^Welcome/)).counts;
	const jobCounts = async () => {
		const c = await emailQueue.getJobCounts("active", "waiting", "delayed", "completed", "failed");
		return { active: c.active ?? 0, waiting: (c.waiting ?? 0) + (c.delayed ?? 0), completed: c.completed ?? 0, failed: c.failed ?? 0 };
	};
	const sent = async () => [...(await welcomeMails()).values()].reduce((a, b) => a + b, 0);

	beforeAll(async () => {
		slowSmtp.chunkDelayMs = SMTP_CHUNK_DELAY_MS;
		await slowSmtp.up();
		await redis.connect();
		emailQueue = new Queue("email", { connection: redis, prefix: createKeys(namespace).queuePrefix });
		cluster = new ProcessCluster(namespace, testEnv(namespace, { SMTP_URL: `smtp://127.0.0.1:${slowSmtp.port}` }));
		await cluster.add("notification-a", "notification");
	}, 60_000);

	afterAll(async () => {
		await cluster?.stopAll();
		await emailQueue?.obliterate({ force: true }).catch(() => undefined);
		await emailQueue?.close();
		await redis.quit();
		await slowSmtp.down();
		await deleteMail((await mailCountsForDomain(domain, /./)).ids).catch(() => undefined);
	}, 60_000);

	it("lets the e-mails in flight finish, loses none and sends none twice", async () => {
		const publisher = new AmqpEventPublisher(infra.rabbitmqUrl, namespace);
		await publisher.publish(
			Array.from({ length: USERS }, (_, i) => ({
				event: createCloudEvent({ type: "user.created", source: "/chaos", subject: `u${i}`, data: { userId: `${namespace}-u${i}`, email: `u${i}@${domain}`, name: null } }),
			})),
		);
		await publisher.close();

		// Signal while jobs run: the first e-mails arrived, others are mid-conversation with SMTP.
		await eventually(async () => (await sent()) >= 1, 30_000, "the first welcome e-mail");
		const before = await jobCounts();
		const exit = await cluster.terminate("notification-a", 30_000);
		const after = await jobCounts();
		const sentByFirstNode = await sent();
		const log = readFileSync(path.join(cluster.logDir, "notification-a.log"), "utf8");

		await cluster.add("notification-b", "notification");
		const counts = await eventually(async () => {
			const c = await welcomeMails();
			return c.size === USERS ? c : undefined;
		}, 60_000, `a welcome e-mail for each of ${USERS} users`);
		await sleep(2_000); // a duplicate sent late must show
		const final = await welcomeMails();
		const twice = [...final].filter(([, n]) => n > 1);
		console.log(
			`===== notification drain (${namespace}) =====\n` +
				`SIGTERM with ${before.active} e-mail jobs active, ${before.waiting} waiting, ${before.completed} done: exit code ${exit.code} after ${exit.ms} ms; ` +
				`then active ${after.active}, waiting ${after.waiting}, completed ${after.completed}, failed ${after.failed}; ` +
				`e-mails sent by the stopped node ${sentByFirstNode}; after a new node took over: ${counts.size}/${USERS} users with an e-mail, ${twice.length} with more than one`,
		);

		expect(before.active).toBeGreaterThan(0);
		expect(exit.code).toBe(0);
		// Nothing was cut off: no job left active (its lock would only expire later), none failed,
		// and what the node finished is exactly what reached the SMTP server.
		expect(after.active).toBe(0);
		expect(after.failed).toBe(0);
		expect(after.completed).toBe(sentByFirstNode);
		expect(after.completed).toBeGreaterThanOrEqual(before.completed + before.active);
		expect(log).not.toContain("go back to the queue");
		expect(twice).toEqual([]);
		expect(final.size).toBe(USERS);
	}, 150_000);
});
