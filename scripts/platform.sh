#!/usr/bin/env bash
# The whole platform on this machine: infrastructure, then one broker node per service
# (migrations run as auth starts), then a wait until the gateway reports every service up.
#
#   scripts/platform.sh up       install what is missing, start everything, print the URLs (npm start)
#   scripts/platform.sh down     stop the nodes, then the infrastructure (npm stop)
#   scripts/platform.sh status   the nodes and the infrastructure
#   scripts/platform.sh logs SERVICE   follow one node's log
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/lib.sh"
LOG_TAG=platform

SERVICES=(auth billing notification gateway)
RUN_DIR="$DATA_DIR/run"
LOG_DIR="$DATA_DIR/logs"
METRICS_BASE_PORT=3031   # auth 3031, billing 3032, notification 3033, gateway 3034
HEALTH_BASE_PORT=3041    # /livez and /readyz: auth 3041, billing 3042, notification 3043, gateway 3044

pid_file() { echo "$RUN_DIR/node-$1.pid"; }
node_pid() { local f; f="$(pid_file "$1")"; [[ -f "$f" ]] && cat "$f" || true; }
node_alive() { local pid; pid="$(node_pid "$1")"; [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; }

start_node() {
  local service="$1" index="$2"
  if node_alive "$service"; then log "$service: already running (pid $(node_pid "$service"))"; return; fi
  log "$service: starting (log .data/logs/node-$service.log)"
  SERVICES="$service" NODE_ID="local-$service" METRICS_PORT=$((METRICS_BASE_PORT + index)) \
    HEALTH_PORT=$((HEALTH_BASE_PORT + index)) \
    GATEWAY_PORT="$GATEWAY_PORT" BCRYPT_COST="${BCRYPT_COST:-10}" \
    PUBLIC_URL="${PUBLIC_URL:-http://localhost:$GATEWAY_PORT}" \
    nohup node "$ROOT/bin/broker.ts" >>"$LOG_DIR/node-$service.log" 2>&1 &
  echo $! > "$(pid_file "$service")"
}

# Every service up (/healthz) and the gateway ready to route them (/readyz: it maps a service's
# routes a moment after discovering it), so the URLs printed next answer at once.
wait_healthy() {
  local base="http://127.0.0.1:$GATEWAY_PORT" deadline=$((SECONDS + 90)) body="" ready=""
  log "waiting for every service to report up at $base/healthz and the gateway at $base/readyz"
  while (( SECONDS < deadline )); do
    for s in "${SERVICES[@]}"; do
      node_alive "$s" || { tail -n 20 "$LOG_DIR/node-$s.log" >&2; die "the $s node exited; its log is above (.data/logs/node-$s.log)"; }
    done
    body="$(curl -fsS --max-time 3 "$base/healthz" 2>/dev/null || true)"
    ready="$(curl -fsS --max-time 3 "$base/readyz" 2>/dev/null || true)"
    [[ "$body" == *'"status":"up"'* && "$ready" == *'"status":"ready"'* ]] && return 0
    sleep 0.5
  done
  echo "$body" >&2
  die "the platform did not become healthy and ready within 90 s; node logs are in .data/logs/"
}

up() {
  ensure_node_modules
  bash "$HERE/infra.sh" up
  eval "$(bash "$HERE/infra.sh" env)"
  log "building the web console"
  (cd "$ROOT" && npm run --silent build:web)
  export RABBITMQ_URL DATABASE_URL MONGO_URL REDIS_URL SMTP_URL
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  local i=0
  for s in "${SERVICES[@]}"; do start_node "$s" "$i"; i=$((i + 1)); done
  wait_healthy
  cat <<URLS

  Backplane is up.
    Console        http://localhost:$GATEWAY_PORT/           (sign up, plan, invoices, live inbox, passkeys: they need a domain name, not 127.0.0.1)
    API            http://127.0.0.1:$GATEWAY_PORT/api/docs   (OpenAPI: /api/openapi.json; health: /healthz, /readyz)
    Mailpit        http://127.0.0.1:$MAILPIT_HTTP_PORT       (every e-mail the platform sends)
    RabbitMQ       http://127.0.0.1:$RABBIT_MGMT_PORT       (management UI, backplane / backplane)
    Metrics        $(for i in 0 1 2 3; do printf 'http://127.0.0.1:%s/metrics (%s)  ' $((METRICS_BASE_PORT + i)) "${SERVICES[$i]}"; done)
    Node logs      .data/logs/node-*.log
    REPL           npm run repl
    Stop           npm stop

URLS
}

down() {
  for s in "${SERVICES[@]}"; do
    if node_alive "$s"; then
      local pid; pid="$(node_pid "$s")"
      log "$s: stopping (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && { log "$s: did not stop in 15 s, killing"; kill -KILL "$pid" 2>/dev/null || true; }
    fi
    rm -f "$(pid_file "$s")"
  done
  bash "$HERE/infra.sh" down
}

status() {
  for s in "${SERVICES[@]}"; do
    if node_alive "$s"; then printf '%-13s running  pid %s\n' "$s" "$(node_pid "$s")"; else printf '%-13s stopped\n' "$s"; fi
  done
  bash "$HERE/infra.sh" status
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  logs) tail -n 100 -f "$LOG_DIR/node-${2:?which service}.log" ;;
  -h|--help|help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (up, down, status, logs SERVICE)" ;;
esac
