/** The problems loadConfig reports for an environment (empty when it is valid). */
import { ConfigError, loadConfig } from "../../lib/config.ts";

export function configProblems(env: Record<string, string>): string[] {
	try {
		loadConfig(env);
	} catch (err) {
		if (err instanceof ConfigError) return err.problems;
		throw err;
	}
	return [];
}
