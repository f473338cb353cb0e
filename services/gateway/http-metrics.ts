/**
 * Per-route HTTP metrics, which Moleculer's reporter does not have: requests by method, route
 * template and status code, and a latency histogram per route. The route label is the alias
 * template (`/api/v1/billing/invoices/:id`), never the raw URL, so label values stay bounded.
 * And the node's connections: open now, and refused past GATEWAY_MAX_CONNECTIONS (connections.ts).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ServiceBroker } from "moleculer";

type Metrics = ServiceBroker["metrics"];
type RoutedRequest = IncomingMessage & { $alias?: object };

const routeOf = (req: RoutedRequest) => {
	const fullPath = req.$alias && "fullPath" in req.$alias ? req.$alias.fullPath : undefined;
	return typeof fullPath === "string" ? fullPath : "unmatched";
};

export const HTTP_REQUESTS = "http.requests.total";
export const HTTP_DURATION = "http.request.duration";
export const CONNECTIONS_OPEN = "gateway.connections.open";
export const CONNECTIONS_REFUSED = "gateway.connections.refused.total";

export function registerHttpMetrics(metrics: Metrics): void {
	metrics.register({ name: HTTP_REQUESTS, type: "counter", labelNames: ["method", "route", "status"], description: "HTTP requests answered by the gateway" });
	metrics.register({ name: HTTP_DURATION, type: "histogram", labelNames: ["method", "route"], unit: "millisecond", description: "Time to answer an HTTP request", buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000] });
	metrics.register({ name: CONNECTIONS_OPEN, type: "gauge", description: "HTTP connections open on this gateway node" });
	metrics.register({ name: CONNECTIONS_REFUSED, type: "counter", description: "Connections closed at once because the node held GATEWAY_MAX_CONNECTIONS" });
}

/** A connect-style middleware that records the request once its answer is sent. */
export function httpMetricsMiddleware(metrics: Metrics) {
	return (req: RoutedRequest, res: ServerResponse, next: () => void) => {
		const started = performance.now();
		res.once("finish", () => {
			const route = routeOf(req);
			const method = req.method ?? "GET";
			metrics.increment(HTTP_REQUESTS, { method, route, status: res.statusCode });
			metrics.observe(HTTP_DURATION, performance.now() - started, { method, route });
		});
		next();
	};
}
