# Helpers shared by scripts/infra.sh and the files next to this one. Sourced, never run.
# shellcheck shell=bash disable=SC2034  # (the settings below are used by the other infra files)

RUN_DIR="$DATA_DIR/run"
LOG_DIR="$DATA_DIR/logs"
TOOLS_DIR="$CACHE_DIR/tools"
ALL_SERVICES=(postgres redis rabbitmq mongo mailpit stripe-mock)

# Pinned versions of everything built from source.
FERRETDB_VERSION=v1.24.2
MAILPIT_VERSION=v1.27.11
STRIPE_MOCK_VERSION=v0.203.0
ACTIONLINT_VERSION=v1.7.12
KUSTOMIZE_VERSION=v5.8.1   # v5.8.2+ need Go >= 1.26/1.27
SCHEMATHESIS_VERSION=4.32.5
KUBERNETES_VALIDATE_VERSION=1.37.0
# Used only when no Go (>= 1.21, which can fetch newer toolchains itself) is installed.
GO_BOOTSTRAP_VERSION=1.26.8

warn() { printf '\033[1;33m[%s] warning:\033[0m %s\n' "${LOG_TAG:-backplane}" "$*" >&2; }

# Runs a command as root (directly, or through sudo when the script is not run as root).
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "this step needs root (or sudo): $*"
  fi
}

# Prints a path relative to the clone when it is inside it (shorter messages).
rel() { local p="$1"; [[ "$p" == "$ROOT/"* ]] && p="${p#"$ROOT/"}"; printf '%s' "$p"; }

# The pid stored in a file, if the file holds one.
read_pid() {
  local f="$1" pid=""
  if [[ -f "$f" ]]; then read -r pid < "$f" 2>/dev/null || true; fi
  [[ "$pid" =~ ^[0-9]+$ ]] && printf '%s' "$pid"
  return 0
}

# True when PID is a live (non-zombie) process whose command line contains PATTERN.
pid_alive() {
  local pid="$1" pattern="${2:-}" state cmd
  [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z && "$state" != X ]] || return 1
  if [[ -n "$pattern" ]]; then
    cmd="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmd" == *"$pattern"* ]] || return 1
  fi
}

# Waits (bounded) until PID is gone from the process table, zombies included: a killed process
# stays a zombie until its parent (often PID 1) reaps it, and some servers refuse to start while
# the pid in their old lock file still "exists". Returns 1 if it is still there after SECONDS.
wait_reaped() {
  local pid="$1" deadline=$((SECONDS + ${2:-5}))
  while [[ -n "$pid" && -e "/proc/$pid" ]]; do
    (( SECONDS >= deadline )) && return 1
    sleep 0.1
  done
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
tcp_open() {
  # shellcheck disable=SC2016  # $0 is expanded by the inner shell
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# Waits (bounded) until PID has exited. Returns 1 if it is still alive after SECONDS.
wait_exit() {
  local pid="$1" deadline=$((SECONDS + ${2:-10}))
  while pid_alive "$pid"; do
    (( SECONDS >= deadline )) && return 1
    sleep 0.2
  done
}

# Stops PID with SIGTERM, then SIGKILL after GRACE seconds.
terminate() {
  local pid="$1" grace="${2:-10}"
  pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait_exit "$pid" "$grace" && return 0
  warn "pid $pid did not stop within ${grace}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait_exit "$pid" 5
}

# Starts a foreground program in the background in its own session, detached from the caller's
# terminal and pipes (and from our lock on fd 9), and records its pid.
spawn() {
  local pidfile="$1" logfile="$2"; shift 2
  setsid "$@" >>"$logfile" 2>&1 </dev/null 9>&- &
  echo "$!" > "$pidfile"
}

# Last lines of a log, indented, for failure messages.
log_tail() {
  local f="$1"
  [[ -s "$f" ]] || return 0
  printf '      --- last lines of %s ---\n' "$(rel "$f")" >&2
  tail -n "${2:-15}" "$f" | sed 's/^/      /' >&2
}

# A global lock so concurrent `up`/`down` calls (parallel test workers) queue instead of racing.
# Held on fd 9; every daemon is started with fd 9 closed so it never inherits the lock.
take_lock() {
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/infra.lock"
  if ! flock -n 9; then
    log "waiting for another scripts/infra.sh run to finish (lock $(rel "$RUN_DIR/infra.lock"))"
    flock -w "${INFRA_LOCK_TIMEOUT:-1200}" 9 || die "gave up waiting for the lock $(rel "$RUN_DIR/infra.lock")"
  fi
}
