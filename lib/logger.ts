/**
 * Adapts Moleculer's console-style log calls (`logger.info("Connected to", url, err)`) to pino's
 * structured form (`{ err, ...fields }, "Connected to <url>"`), so no argument is dropped and
 * errors keep their stack in the `err` field.
 */
import type { Logger } from "pino";

type LogMethod = (...args: unknown[]) => void;
const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;

export function toPinoCall(args: unknown[]): [Record<string, unknown>, string] {
	const fields: Record<string, unknown> = {};
	const words: string[] = [];
	for (const arg of args) {
		if (arg instanceof Error) fields.err = arg;
		else if (arg !== null && typeof arg === "object" && !Array.isArray(arg)) Object.assign(fields, arg);
		else words.push(typeof arg === "string" ? arg : JSON.stringify(arg));
	}
	return [fields, words.join(" ")];
}

/**
 * Wraps a pino logger so each level method accepts any number of mixed arguments. A disabled
 * level costs nothing: Moleculer calls `debug` on every action call.
 */
export function consoleStyle(logger: Logger): Record<(typeof LEVELS)[number], LogMethod> {
	return Object.fromEntries(
		LEVELS.map((level) => [level, (...args: unknown[]) => {
			if (!logger.isLevelEnabled(level)) return;
			const [fields, message] = toPinoCall(args);
			logger[level](fields, message);
		}]),
	) as Record<(typeof LEVELS)[number], LogMethod>;
}
