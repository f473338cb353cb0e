/**
 * Metrics Moleculer's reporter lacks: event-loop delay, which is what saturates first on a
 * Node process. Sampled by perf_hooks and published as gauges in milliseconds.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { Middleware, ServiceBroker } from "moleculer";

const SAMPLE_EVERY_MS = 5_000;

export function runtimeMetricsMiddleware(): Middleware {
	const histogram = monitorEventLoopDelay({ resolution: 10 });
	let timer: NodeJS.Timeout | undefined;

	return {
		name: "RuntimeMetrics",
		created(broker: ServiceBroker) {
			if (!broker.isMetricsEnabled()) return;
			for (const q of ["p50", "p99", "max"]) {
				broker.metrics.register({ name: `process.eventloop.delay.${q}`, type: "gauge", unit: "millisecond", description: `Event-loop delay ${q} over the last ${SAMPLE_EVERY_MS / 1000} s` });
			}
		},
		async started(broker: ServiceBroker) {
			if (!broker.isMetricsEnabled()) return;
			histogram.enable();
			timer = setInterval(() => {
				broker.metrics.set("process.eventloop.delay.p50", histogram.percentile(50) / 1e6);
				broker.metrics.set("process.eventloop.delay.p99", histogram.percentile(99) / 1e6);
				broker.metrics.set("process.eventloop.delay.max", histogram.max / 1e6);
				histogram.reset();
			}, SAMPLE_EVERY_MS);
			timer.unref();
		},
		async stopped() {
			clearInterval(timer);
			histogram.disable();
		},
	};
}
