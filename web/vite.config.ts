import { defineConfig } from "vite";

// The console is a static single-page app served by the gateway (services/gateway/console.ts).
export default defineConfig({
	root: import.meta.dirname,
	base: "/",
	build: { outDir: "dist", emptyOutDir: true, assetsDir: "assets", sourcemap: false, target: "es2022" },
	oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
});
