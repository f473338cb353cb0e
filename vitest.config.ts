import { defineConfig } from "vitest/config";

export default defineConfig({
	test: {
		include: ["test/**/*.test.ts"],
		setupFiles: ["test/support/leave-nothing-behind.ts"],
		// Integration tests share one set of real servers; files run one at a time on 2 cores.
		fileParallelism: false,
		testTimeout: 30_000,
		hookTimeout: 60_000,
		reporters: ["default"],
	},
});
