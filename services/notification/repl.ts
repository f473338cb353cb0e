/**
 * REPL commands for the notification dead letters, for `replOptions.customCommands`:
 *
 *   mol $ notifications-failed email --limit 50
 *   mol $ notifications-retry email 9b2f0f5e-….email
 *   mol $ notifications-retry push --all
 *
 * They call the admin actions as an operator holding `notifications:admin`: whoever runs the
 * REPL is on the cluster's transporter and can call any action anyway.
 */
import os from "node:os";
import type { Caller } from "../../lib/caller.ts";

interface Broker {
	call<T>(action: string, params: object, opts: { meta: { caller: Caller } }): Promise<T>;
}

interface Args {
	channel?: string;
	jobId?: string;
	options?: Record<string, unknown>;
}

export interface ReplCommand {
	command: string;
	description: string;
	options?: { option: string; description: string }[];
	action(broker: Broker, args: Args): Promise<void>;
}

const operator = (): { meta: { caller: Caller } } => ({
	meta: { caller: { userId: `repl@${os.hostname()}`, sessionId: "repl", roles: ["operator"], permissions: ["notifications:admin"] } },
});

const print = (line: string) => process.stdout.write(`${line}\n`);

interface FailedPage {
	total: number;
	items: { id: string; attempts: number; failedAt: number | null; failedReason: string; data: { eventType: string; userId: string } }[];
}

export function notificationReplCommands(): ReplCommand[] {
	return [
		{
			command: "notifications-failed <channel>",
			description: "List failed notification jobs (dead letters) of a channel: email or push",
			options: [
				{ option: "--offset <n>", description: "skip the newest n" },
				{ option: "--limit <n>", description: "how many (default 20, at most 100)" },
			],
			async action(broker, args) {
				const page = await broker.call<FailedPage>("notification.failedJobs", { channel: args.channel, offset: args.options?.offset ?? 0, limit: args.options?.limit ?? 20 }, operator());
				print(`${page.total} failed ${args.channel ?? ""} job(s)`);
				for (const job of page.items) {
					print(`${job.id}  ${job.data.eventType}  user ${job.data.userId}  ${job.attempts} attempt(s)  ${job.failedAt ? new Date(job.failedAt).toISOString() : "-"}  ${job.failedReason}`);
				}
			},
		},
		{
			command: "notifications-retry <channel> [jobId]",
			description: "Re-queue one failed notification job, or all of them with --all",
			options: [{ option: "--all", description: "re-queue every failed job of the channel" }],
			async action(broker, args) {
				const all = args.options?.all === true;
				if (!args.jobId && !all) {
					print("name a job id or pass --all");
					return;
				}
				const { retried } = await broker.call<{ retried: number }>("notification.retryFailed", { channel: args.channel, ...(args.jobId ? { jobId: args.jobId } : { all }) }, operator());
				print(`${retried} job(s) re-queued`);
			},
		},
	];
}
