#!/usr/bin/env bash
# The local infrastructure: PostgreSQL, Redis, RabbitMQ, a MongoDB API (FerretDB on PostgreSQL),
# Mailpit and stripe-mock, each on the project's own port with its data under .data/.
# No Docker, no systemd: plain processes started in the background. Idempotent throughout.
# See docs/infrastructure.md.
#
#   scripts/infra.sh install              Debian packages + Go-built servers (cached in ~/.cache/backplane)
#   scripts/infra.sh install-tools        optional tools: actionlint, kustomize, schemathesis, kubernetes-validate
#   scripts/infra.sh up [NAME...]         install what is needed, start, wait until each answers
#   scripts/infra.sh down [NAME...]       stop cleanly
#   scripts/infra.sh restart NAME...      down + up
#   scripts/infra.sh kill NAME...         kill -9 (chaos tests); `up NAME` brings it back
#   scripts/infra.sh status               table of name, port, state, pid
#   scripts/infra.sh env                  export lines with the connection URLs
#   scripts/infra.sh logs NAME            path and tail of a server's log
#   scripts/infra.sh which TOOL           path of an installed tool binary
#   scripts/infra.sh rabbitmqctl ARGS...  rabbitmqctl against the project's node
#   scripts/infra.sh psql ARGS...         psql as backplane on the backplane database
# NAME is one of: postgres redis rabbitmq mongo mailpit stripe-mock (default: all).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/lib.sh"
# shellcheck source=scripts/infra/common.sh
source "$HERE/infra/common.sh"
# shellcheck source=scripts/infra/install.sh
source "$HERE/infra/install.sh"
# shellcheck source=scripts/infra/services.sh
source "$HERE/infra/services.sh"
LOG_TAG=infra

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

# Maps user-facing names (and a few aliases) to service names; no names means all of them.
resolve_names() {
  (($#)) || { printf '%s\n' "${ALL_SERVICES[@]}"; return; }
  local n
  for n in "$@"; do
    case "$n" in
      all) printf '%s\n' "${ALL_SERVICES[@]}" ;;
      postgres|postgresql|pg) echo postgres ;;
      redis) echo redis ;;
      rabbitmq|rabbit|amqp) echo rabbitmq ;;
      mongo|mongodb|ferretdb) echo mongo ;;
      mailpit|mail|smtp) echo mailpit ;;
      stripe-mock|stripe) echo stripe-mock ;;
      *) die "unknown service '$n' (known: ${ALL_SERVICES[*]})" ;;
    esac
  done | awk '!seen[$0]++'
}

svc() { local fn="$1" name="$2"; shift 2; "svc_${name//-/_}_$fn" "$@"; }

fail_report() { # NAME REASON
  local name="$1" reason="$2" logf
  logf="$(svc log "$name")"
  printf '\033[1;31m[infra] %s FAILED:\033[0m %s (port %s). Log: %s\n' \
    "$name" "$reason" "$(svc port "$name")" "$(rel "$logf")" >&2
  log_tail "$logf"
}

# Runs NAME's one-time setup and records that it was done (reset with the data folder).
run_after() {
  local name="$1" marker="$DATA_DIR/.setup-done-$1"
  declare -F "svc_${name//-/_}_after" >/dev/null || return 0
  svc after "$name" || return 1
  date -u +%FT%TZ > "$marker"
}

cmd_up() {
  local names=() n pid reason t0=$SECONDS
  mapfile -t names < <(resolve_names "$@")
  take_lock
  install_for "${names[@]}"
  mkdir -p "$RUN_DIR" "$LOG_DIR"

  # Phase 1: start whatever is not running (servers boot in parallel; RabbitMQ is the slow one).
  local pending=() failed=()
  for n in "${names[@]}"; do
    pid="$(svc pid "$n")"
    if [[ -n "$pid" ]] && svc ready "$n"; then
      if [[ -f "$DATA_DIR/.setup-done-$n" ]] || run_after "$n"; then
        log "$n: already running (pid $pid, port $(svc port "$n"))"
      else
        fail_report "$n" "running, but its setup (users/databases) failed"; failed+=("$n")
      fi
      continue
    fi
    if [[ -z "$pid" ]] && svc ready "$n"; then
      warn "$n: port $(svc port "$n") already answers, but not from a server started in $(rel "$DATA_DIR") — using it as it is"
      continue
    fi
    if [[ -n "$pid" ]]; then
      log "$n: pid $pid is up but not answering yet; waiting for it"
    elif tcp_open "$(svc port "$n")"; then
      fail_report "$n" "port $(svc port "$n") is taken by another program"; failed+=("$n"); continue
    else
      log "$n: starting on port $(svc port "$n")"
      if ! svc launch "$n"; then fail_report "$n" "could not start"; failed+=("$n"); continue; fi
    fi
    pending+=("$n")
  done

  # Phase 2: wait for each to answer, then run its setup.
  for n in "${pending[@]}"; do
    if ! reason="$(svc wait "$n")"; then
      fail_report "$n" "${reason:-did not become ready}"; failed+=("$n"); continue
    fi
    if ! run_after "$n"; then fail_report "$n" "started, but its setup (users/databases) failed"; failed+=("$n"); continue; fi
    log "$n: ready on port $(svc port "$n") (pid $(svc pid "$n"))"
  done

  if ((${#failed[@]})); then
    die "not running: ${failed[*]} (see the messages above; scripts/infra.sh status)"
  fi
  log "up: ${names[*]} ready in $((SECONDS - t0))s"
}

cmd_down() {
  local names=() n i pid
  mapfile -t names < <(resolve_names "$@")
  take_lock
  for ((i = ${#names[@]} - 1; i >= 0; i--)); do
    n="${names[i]}"
    pid="$(svc pid "$n")"
    if [[ -z "$pid" ]]; then
      [[ "$n" == rabbitmq ]] && rabbit_stop_epmd
      log "$n: not running"; continue
    fi
    log "$n: stopping (pid $pid)"
    svc stop "$n" || warn "$n: stop reported an error"
    if [[ -n "$(svc pid "$n")" ]]; then warn "$n: still running"; else log "$n: stopped"; fi
  done
}

cmd_kill() {
  (($#)) || die "usage: scripts/infra.sh kill NAME... (${ALL_SERVICES[*]})"
  local names=() n pid
  mapfile -t names < <(resolve_names "$@")
  for n in "${names[@]}"; do
    pid="$(svc pid "$n")"
    if [[ -z "$pid" ]]; then log "$n: not running"; continue; fi
    kill -KILL "$pid" 2>/dev/null || true
    wait_exit "$pid" 5 || warn "$n: pid $pid survived SIGKILL?"
    wait_reaped "$pid" 5 || true
    log "$n: killed (SIGKILL to pid $pid)"
  done
}

cmd_restart() {
  (($#)) || die "usage: scripts/infra.sh restart NAME... (${ALL_SERVICES[*]})"
  local n
  # A server this checkout did not start cannot be stopped from here: "restarting" it would be a no-op.
  for n in "$@"; do
    if [[ -z "$(svc pid "$n")" ]] && tcp_open "$(svc port "$n")"; then
      die "$n: the server on port $(svc port "$n") was not started from $(rel "$DATA_DIR"); stop it there first (its own scripts/infra.sh down)"
    fi
  done
  cmd_down "$@"
  exec 9>&-   # release the lock taken by down; up takes it again
  cmd_up "$@"
}

cmd_status() {
  local n pid state
  printf '%-12s %-6s %-9s %-8s %s\n' NAME PORT STATE PID DETAIL
  for n in "${ALL_SERVICES[@]}"; do
    pid="$(svc pid "$n")"
    if [[ -n "$pid" ]]; then
      if svc ready "$n"; then state=running; else state=starting; fi
    elif tcp_open "$(svc port "$n")"; then state=foreign; pid=-
    else state=stopped; pid=-
    fi
    printf '%-12s %-6s %-9s %-8s %s\n' "$n" "$(svc port "$n")" "$state" "$pid" "$(svc detail "$n")"
  done
}

cmd_env() {
  cat <<EOF
export DATABASE_URL=postgres://backplane:backplane@127.0.0.1:$PG_PORT/backplane
export RABBITMQ_URL=amqp://backplane:backplane@127.0.0.1:$AMQP_PORT
export RABBITMQ_MANAGEMENT_URL=http://backplane:backplane@127.0.0.1:$RABBIT_MGMT_PORT
export MONGO_URL=mongodb://127.0.0.1:$MONGO_PORT/backplane
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
export SMTP_URL=smtp://127.0.0.1:$MAILPIT_SMTP_PORT
export MAILPIT_API_URL=http://127.0.0.1:$MAILPIT_HTTP_PORT
export STRIPE_API_BASE=http://127.0.0.1:$STRIPE_MOCK_PORT
EOF
}

cmd_logs() {
  (($# == 1)) || die "usage: scripts/infra.sh logs NAME"
  local n f; n="$(resolve_names "$1")"; f="$(svc log "$n")"
  echo "# $f"
  [[ -f "$f" ]] && tail -n "${LINES_TO_SHOW:-50}" "$f"
  return 0
}

cmd_which() {
  (($# == 1)) || die "usage: scripts/infra.sh which TOOL"
  local b; b="$(tool_bin "$1")" || die "unknown tool '$1'"
  [[ -x "$b" ]] || die "$1 is not installed yet (scripts/infra.sh install / install-tools)"
  echo "$b"
}

main() {
  local cmd="${1:-help}"; (($#)) && shift
  case "$cmd" in
    install) cmd_install ;;
    install-tools) cmd_install_tools ;;
    up|start) cmd_up "$@" ;;
    down|stop) cmd_down "$@" ;;
    restart) cmd_restart "$@" ;;
    kill) cmd_kill "$@" ;;
    status|ps) cmd_status ;;
    env) cmd_env ;;
    logs) cmd_logs "$@" ;;
    which) cmd_which "$@" ;;
    rabbitmqctl) rabbit_prepare >/dev/null; rabbitmqctl_run "$@" ;;
    psql) exec "$(pg_bindir)/psql" "postgres://backplane:backplane@127.0.0.1:$PG_PORT/backplane" "$@" ;;
    help|-h|--help) usage ;;
    *) usage >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
