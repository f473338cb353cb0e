#!/usr/bin/env python3
"""Generates the Grafana dashboards in observability/grafana/dashboards/*.json.

Edit this file, then run `python3 observability/grafana/dashboards.py`; commit both.
scripts/observability-check.sh checks that every metric the queries name really exists
(observability/metrics.txt) and that the JSON files are what this script writes.
"""
import json
import pathlib
import sys

PROM = {"type": "prometheus", "uid": "prometheus"}
LOKI = {"type": "loki", "uid": "loki"}
OUT = pathlib.Path(__file__).parent / "dashboards"


class Board:
    def __init__(self, uid, title, description, variables=()):
        self.uid, self.title, self.description, self.variables = uid, title, description, list(variables)
        self.panels, self.y, self.x, self.row_h, self.next_id = [], 0, 0, 0, 1

    def _place(self, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({"id": self.next_id, "type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.next_id += 1
        self.y += 1

    def panel(self, kind, title, targets, w=12, h=8, unit=None, description=None, ds=PROM, options=None, thresholds=None, stack=False):
        p = {
            "id": self.next_id, "type": kind, "title": title, "datasource": ds, "gridPos": self._place(w, h),
            "targets": [dict(refId=chr(65 + i), datasource=ds, **t) for i, t in enumerate(targets)],
            "fieldConfig": {"defaults": {}, "overrides": []},
            "options": options or {},
        }
        self.next_id += 1
        if description:
            p["description"] = description
        if unit:
            p["fieldConfig"]["defaults"]["unit"] = unit
        if thresholds:
            p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in thresholds]}
        if kind == "timeseries":
            p["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "stacking": {"mode": "normal" if stack else "none"}}
            p["options"] = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}, "tooltip": {"mode": "multi"}, **(options or {})}
        if kind == "stat":
            p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "area", **(options or {})}
        self.panels.append(p)

    def ts(self, title, *exprs, **kw):
        self.panel("timeseries", title, [{"expr": e, "legendFormat": l} for e, l in exprs], **kw)

    def stat(self, title, expr, w=4, h=4, **kw):
        self.panel("stat", title, [{"expr": expr, "instant": True}], w=w, h=h, **kw)

    def logs(self, title, expr, w=24, h=10):
        self.panel("logs", title, [{"expr": expr}], w=w, h=h, ds=LOKI, options={"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending", "enableLogDetails": True})

    def json(self):
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": ["backplane"],
            "timezone": "utc", "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1,
            "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
            "links": [{"type": "dashboards", "tags": ["backplane"], "asDropdown": True, "title": "Backplane"}],
            "templating": {"list": [namespace_var()] + self.variables},
            "annotations": {"list": []},
            "panels": self.panels,
        }


def namespace_var():
    return {"name": "namespace", "label": "Moleculer namespace", "type": "query", "datasource": PROM,
            "query": {"query": "label_values(moleculer_broker_started, namespace)", "refId": "ns"},
            "definition": "label_values(moleculer_broker_started, namespace)", "refresh": 2, "includeAll": True, "multi": True, "current": {}}


def query_var(name, label, query, multi=True):
    return {"name": name, "label": label, "type": "query", "datasource": PROM, "query": {"query": query, "refId": name},
            "definition": query, "refresh": 2, "includeAll": True, "multi": multi, "current": {}}


NS = 'namespace=~"$namespace"'


def overview():
    b = Board("backplane-overview", "Backplane / Platform overview", "Is the platform up, fast and error-free? Start here, then drill into a service.")
    b.row("Health")
    b.stat("Nodes scraped", 'count(up{job="backplane"} == 1)', description="Backplane processes Prometheus reaches", thresholds=[])
    b.stat("Nodes down", 'count(up{job="backplane"} == 0) or vector(0)', thresholds=[(1, "red")])
    b.stat("Nodes online (registry)", f'max(moleculer_registry_nodes_online_total{{{NS}}})', description="Nodes the Moleculer registry sees, as one node reports it")
    b.stat("Gateway req/s", f'sum(rate(http_requests_total{{{NS}}}[5m]))', unit="reqps")
    b.stat("5xx ratio", f'sum(rate(http_requests_total{{{NS},status=~"5.."}}[5m])) / sum(rate(http_requests_total{{{NS}}}[5m]))', unit="percentunit", thresholds=[(0.01, "orange"), (0.05, "red")])
    b.stat("Open circuits", f'sum(moleculer_circuit_breaker_opened_active{{{NS}}}) or vector(0)', thresholds=[(1, "red")])
    b.row("Traffic at the edge (gateway)")
    b.ts("Requests by status", (f'sum by (status) (rate(http_requests_total{{{NS}}}[5m]))', "{{status}}"), unit="reqps", stack=True)
    b.ts("p99 latency by route", (f'histogram_quantile(0.99, sum by (route, le) (rate(http_request_duration_bucket{{{NS},route!="/api/v1/notifications/stream"}}[5m])))', "{{route}}"), unit="ms")
    b.ts("5xx by route", (f'sum by (route, status) (rate(http_requests_total{{{NS},status=~"5.."}}[5m]))', "{{route}} {{status}}"), unit="reqps")
    b.ts("4xx by route", (f'sum by (route, status) (rate(http_requests_total{{{NS},status=~"4.."}}[5m]))', "{{route}} {{status}}"), unit="reqps")
    b.row("Between services")
    b.ts("Action calls by service", (f'sum by (service) (rate(moleculer_request_total{{{NS},type="local"}}[5m]))', "{{service}}"), unit="reqps")
    b.ts("Action errors by action (server-side)", (f'sum by (action, errorName) (rate(moleculer_request_error_total{{{NS},type="local",errorCode!~"4.."}}[5m]))', "{{action}} {{errorName}}"), unit="reqps")
    b.ts("gRPC calls by method and code", (f'sum by (method, code) (rate(grpc_client_calls_total{{{NS}}}[5m]))', "{{method}} {{code}}"), unit="reqps")
    b.ts("Circuit breakers open", (f'max by (action, affectedNodeID) (moleculer_circuit_breaker_opened_active{{{NS}}})', "{{action}} @ {{affectedNodeID}}"))
    b.row("Nodes")
    b.ts("Event-loop delay p99 by node", (f'max by (nodeID) (process_eventloop_delay_p99{{{NS}}})', "{{nodeID}}"), unit="ms")
    b.ts("Resident memory by node", (f'max by (nodeID) (process_memory_rss{{{NS}}})', "{{nodeID}}"), unit="bytes")
    b.ts("Transporter connected", (f'min by (nodeID) (moleculer_transit_connected{{{NS}}})', "{{nodeID}}"))
    b.ts("Outbox lag (oldest unrelayed event)", (f'max by (service) (events_outbox_lag_seconds{{{NS}}})', "{{service}}"), unit="s")
    return b


def service():
    b = Board("backplane-service", "Backplane / Service", "One service across its nodes: calls, errors, latency, saturation, logs.",
              [query_var("service", "service", 'label_values(moleculer_request_total{namespace=~"$namespace", type="local"}, service)', multi=False),
               query_var("node", "node", 'label_values(moleculer_request_total{namespace=~"$namespace", service="$service"}, nodeID)')])
    S = f'{NS},service="$service",nodeID=~"$node"'
    b.row("Actions of $service")
    b.ts("Calls by action", (f'sum by (action) (rate(moleculer_request_total{{{S},type="local"}}[5m]))', "{{action}}"), unit="reqps")
    b.ts("Errors by action and error", (f'sum by (action, errorName, errorCode) (rate(moleculer_request_error_total{{{S},type="local"}}[5m]))', "{{action}} {{errorName}} {{errorCode}}"), unit="reqps")
    b.ts("p50 / p99 latency by action", (f'histogram_quantile(0.99, sum by (action, le) (rate(moleculer_request_time_bucket{{{S},type="local"}}[5m])))', "p99 {{action}}"),
         (f'histogram_quantile(0.5, sum by (action, le) (rate(moleculer_request_time_bucket{{{S},type="local"}}[5m])))', "p50 {{action}}"), unit="ms")
    b.ts("In flight / bulkhead queue", (f'sum by (nodeID) (moleculer_request_active{{{S}}})', "active {{nodeID}}"),
         (f'sum by (nodeID) (moleculer_request_bulkhead_queue_size{{{S}}})', "queued {{nodeID}}"))
    b.ts("Timeouts and retries", (f'sum by (action) (rate(moleculer_request_timeout_total{{{S}}}[5m]))', "timeout {{action}}"),
         (f'sum by (action) (rate(moleculer_request_retry_attempts_total{{{S}}}[5m]))', "retry {{action}}"), unit="reqps")
    b.ts("Circuit breakers on $service", (f'max by (action, affectedNodeID) (moleculer_circuit_breaker_opened_active{{{NS},service="$service"}})', "{{action}} @ {{affectedNodeID}}"))
    N = f'{NS},nodeID=~"$node"'
    b.row("Nodes of $service")
    b.ts("Event-loop delay", (f'process_eventloop_delay_p99{{{N}}}', "p99 {{nodeID}}"), (f'process_eventloop_delay_max{{{N}}}', "max {{nodeID}}"), unit="ms")
    b.ts("Memory", (f'process_memory_rss{{{N}}}', "rss {{nodeID}}"), (f'process_memory_heap_size_used{{{N}}}', "heap {{nodeID}}"), unit="bytes")
    b.ts("Transporter packets", (f'sum by (nodeID) (rate(moleculer_transporter_packets_sent_total{{{N}}}[5m]))', "sent {{nodeID}}"),
         (f'sum by (nodeID) (rate(moleculer_transporter_packets_received_total{{{N}}}[5m]))', "received {{nodeID}}"), unit="pps")
    b.ts("Packets per batched AMQP message", (f'sum by (nodeID) (rate(transporter_batch_packets_total{{{N}}}[5m])) / sum by (nodeID) (rate(transporter_batch_messages_total{{{N}}}[5m]))', "{{nodeID}}"),
         description="Mean size of the batches this node sends (docs/decisions/0005-batching-transporter.md); grows with load, absent when idle")
    b.ts("Node uptime", (f'process_uptime{{{N}}}', "{{nodeID}}"), unit="s", description="A saw-tooth means restarts")
    b.row("Logs")
    b.logs("Warnings and errors of $service", '{service="$service"} | json | level=~"warn|error|fatal"')
    return b


def events():
    b = Board("backplane-events", "Backplane / Events and queues", "Durable events (outbox -> RabbitMQ -> consumers, dead letters) and the notification queues (BullMQ).")
    b.row("Outbox (publishers)")
    b.ts("Pending events", (f'max by (service) (events_outbox_pending{{{NS}}})', "{{service}}"), description="Committed, not yet relayed; should stay near 0")
    b.ts("Lag of the oldest unrelayed event", (f'max by (service) (events_outbox_lag_seconds{{{NS}}})', "{{service}}"), unit="s")
    b.ts("Relayed (confirmed by RabbitMQ)", (f'sum by (service) (rate(events_outbox_published_total{{{NS}}}[5m]))', "{{service}}"), unit="ops")
    b.ts("Relay failures", (f'sum by (service) (rate(events_outbox_errors_total{{{NS}}}[5m]))', "{{service}}"), unit="ops")
    b.row("Consumers")
    b.ts("Handled by type and result", (f'sum by (service, type, result) (rate(events_consumed_total{{{NS}}}[5m]))', "{{service}} {{type}} {{result}}"), unit="ops")
    b.ts("Handler p99", (f'histogram_quantile(0.99, sum by (service, type, le) (rate(events_handler_duration_bucket{{{NS}}}[5m])))', "{{service}} {{type}}"), unit="ms")
    b.ts("Delivery lag p95 (commit -> handler)", (f'histogram_quantile(0.95, sum by (service, type, le) (rate(events_delivery_lag_bucket{{{NS}}}[5m])))', "{{service}} {{type}}"), unit="ms",
         description="From the event's commit in the publisher's database to its consumer's first attempt: relay, broker and queue wait together")
    b.ts("Messages in handlers (channels)", (f'sum by (nodeID) (moleculer_channels_messages_active{{{NS}}})', "{{nodeID}}"))
    b.ts("RabbitMQ dead-letter queues", ('max by (queue) (rabbitmq_queue_messages_ready{queue=~"dead-letter\\\\..+"})', "{{queue}}"),
         description="Needs RabbitMQ's Prometheus plugin (per-object metrics); replay: docs/operations.md")
    b.ts("RabbitMQ queue depth (ready / unacked)", ('max by (queue) (rabbitmq_queue_messages_ready{queue!~"dead-letter\\\\..+"})', "ready {{queue}}"),
         ('max by (queue) (rabbitmq_queue_messages_unacked)', "unacked {{queue}}"))
    b.row("Notification queues (BullMQ)")
    b.ts("Jobs by channel and state", (f'max by (channel, state) (notifications_queue_jobs{{{NS},state!="completed"}})', "{{channel}} {{state}}"),
         description="failed = dead letters: REPL notifications-failed / notifications-retry")
    b.ts("Deliveries", (f'sum by (channel) (rate(notifications_sent_total{{{NS}}}[5m]))', "sent {{channel}}"),
         (f'sum by (channel) (rate(notifications_retried_total{{{NS}}}[5m]))', "retried {{channel}}"),
         (f'sum by (channel) (rate(notifications_failed_total{{{NS}}}[5m]))', "failed {{channel}}"), unit="ops")
    b.ts("Event to delivery p95", (f'histogram_quantile(0.95, sum by (channel, le) (rate(notifications_delivery_latency_bucket{{{NS}}}[5m])))', "{{channel}}"), unit="ms")
    b.ts("Skipped by reason", (f'sum by (channel, reason) (rate(notifications_skipped_total{{{NS}}}[5m]))', "{{channel}} {{reason}}"), unit="ops")
    return b


# Currencies whose minor unit is not 1/100 (as services/billing/money.ts): revenue is counted in
# minor units, the board shows major units.
ZERO_DECIMAL = "bif|clp|djf|gnf|jpy|kmf|krw|mga|pyg|rwf|ugx|vnd|vuv|xaf|xof|xpf"
THREE_DECIMAL = "bhd|jod|kwd|omr|tnd"


def revenue(window):
    """Paid invoice amounts per currency over `window`, in major units (12.34, not 1234)."""
    def inc(currencies):
        return f'sum by (currency) (increase(billing_revenue_minor_units_total{{{NS},{currencies}}}[{window}]))'
    two, zero, three = f'currency!~"{ZERO_DECIMAL}|{THREE_DECIMAL}"', f'currency=~"{ZERO_DECIMAL}"', f'currency=~"{THREE_DECIMAL}"'
    return f"{inc(two)} / 100 or {inc(zero)} or {inc(three)} / 1000"


def business():
    b = Board("backplane-business", "Backplane / Business", "Sign-ups, trials, subscriptions, payments and revenue, counted where they happen. "
              "Revenue is the total of invoices that became paid (Stripe or our own collection), per currency, in major units.")
    b.row("Today (selected range)")
    b.stat("Sign-ups", f'sum(increase(http_requests_total{{{NS},route="/api/v1/auth/register",status="201"}}[$__range]))', w=4)
    b.stat("Trials started", f'sum(increase(events_consumed_total{{{NS},service="billing",type="user.created",result="ok"}}[$__range]))', w=4,
           description="billing handled user.created: the trial subscription exists")
    b.stat("Trials ended", f'sum(increase(billing_lifecycle_changes_total{{{NS},step="trialEnded"}}[$__range])) or vector(0)', w=4)
    b.stat("Checkouts opened", f'sum(increase(http_requests_total{{{NS},route="/api/v1/billing/checkout",status="200"}}[$__range])) or vector(0)', w=4)
    b.stat("Invoices paid (Stripe)", f'sum(increase(billing_webhooks_total{{{NS},type="invoice.paid",outcome="applied"}}[$__range])) or vector(0)', w=4)
    b.stat("Payments failed", f'sum(increase(billing_webhooks_total{{{NS},type="invoice.payment_failed",outcome="applied"}}[$__range])) or vector(0)', w=4, thresholds=[(1, "orange")])
    b.row("Revenue")
    b.panel("stat", "Revenue (selected range)", [{"expr": revenue("$__range"), "instant": True, "legendFormat": "{{currency}}"}], w=8, h=6,
            description="Totals of invoices that became paid in the range, per currency (billing_revenue_minor_units_total)",
            options={"textMode": "value_and_name"})
    b.ts("Revenue per day", (revenue("1d"), "{{currency}}"), w=16, h=6,
         description="Paid invoice totals over the trailing day, per currency")
    b.row("Over time")
    b.ts("Sign-ups per hour", (f'sum(increase(http_requests_total{{{NS},route="/api/v1/auth/register",status="201"}}[1h]))', "sign-ups"))
    b.ts("Logins per hour (ok / refused)", (f'sum(increase(http_requests_total{{{NS},route="/api/v1/auth/login",status="200"}}[1h]))', "ok"),
         (f'sum(increase(http_requests_total{{{NS},route="/api/v1/auth/login",status=~"4.."}}[1h]))', "refused"))
    b.ts("Trial lifecycle per hour", (f'sum(increase(events_consumed_total{{{NS},service="billing",type="user.created",result="ok"}}[1h]))', "started"),
         (f'sum by (step) (increase(billing_lifecycle_changes_total{{{NS}}}[1h]))', "{{step}}"))
    b.ts("Subscription events per hour", (f'sum by (type) (increase(events_consumed_total{{{NS},service="notification",type=~"subscription.*|trial.*"}}[1h]))', "{{type}}"))
    b.ts("Stripe webhooks per hour", (f'sum by (type, outcome) (increase(billing_webhooks_total{{{NS}}}[1h]))', "{{type}} {{outcome}}"))
    b.ts("Invoices per hour", (f'sum by (type) (increase(events_consumed_total{{{NS},service="notification",type=~"invoice.*"}}[1h]))', "{{type}}"))
    return b


def main():
    check = "--check" in sys.argv
    stale = []
    for board in (overview(), service(), events(), business()):
        path = OUT / f"{board.uid}.json"
        text = json.dumps(board.json(), indent=2) + "\n"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale dashboards (run python3 observability/grafana/dashboards.py): {', '.join(stale)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
