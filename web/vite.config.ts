import path from "node:path";
import { defineConfig } from "vite";

// The console is a static single-page app served by the gateway (services/gateway/console.ts).
// The service worker is a second entry with a fixed name at the root: its URL is its scope.
export default defineConfig({
	root: import.meta.dirname,
	base: "/",
	build: {
		outDir: "dist",
		emptyOutDir: true,
		assetsDir: "assets",
		sourcemap: false,
		target: "es2022",
		rolldownOptions: {
			input: { index: path.join(import.meta.dirname, "index.html"), sw: path.join(import.meta.dirname, "src", "sw.ts") },
			output: { entryFileNames: (chunk) => (chunk.name === "sw" ? "sw.js" : "assets/[name]-[hash].js") },
		},
	},
	oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
});
