# The six local servers. Sourced by scripts/infra.sh.
# Each service NAME (id = NAME with - replaced by _) defines:
#   svc_ID_port    main port            svc_ID_pid     pid of our running server, or nothing
#   svc_ID_ready   answers for real?    svc_ID_launch  start it in the background (no waiting)
#   svc_ID_wait    wait until ready     svc_ID_after   one-time setup after start (users, …)
#   svc_ID_stop    clean stop           svc_ID_log     where to look when it fails
#   svc_ID_detail  extra info for `status`
# shellcheck shell=bash

# ================================================================ PostgreSQL

PG_DATA="$DATA_DIR/postgres"

pg_bindir() {
  local d
  if [[ -x /usr/lib/postgresql/15/bin/postgres ]]; then echo /usr/lib/postgresql/15/bin; return; fi
  d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$d" ]] || return 1
  echo "$d"
}

# Unix socket folder: inside .data/run, unless that path is too long for a socket name (108 bytes).
pg_sockdir() {
  local d="$RUN_DIR/postgres"
  if (( ${#d} + 20 > 100 )); then d="/tmp/backplane-pg-$(printf '%s' "$DATA_DIR" | sha1sum | cut -c1-12)"; fi
  echo "$d"
}

# The postgres user must be able to reach .data/postgres: a clone in a private temp folder
# (mode 700, as CI makes) would block it. Grant traverse-only (o+x) on the folders that lack it.
pg_fix_access() {
  runuser -u postgres -- test -x "$PG_DATA" 2>/dev/null && return 0
  local d="$DATA_DIR" mode
  while [[ -n "$d" && "$d" != / ]]; do
    mode="$(stat -c %A "$d")"
    if [[ "${mode:9:1}" != [xt] ]]; then
      warn "granting traverse permission (o+x) on $d so the postgres user can reach its data folder"
      chmod o+x "$d" || return 1
    fi
    d="$(dirname "$d")"
  done
}

# After a kill -9 of the postmaster its backends linger a moment attached to the old shared
# memory, and a new postmaster refuses to start until they are gone. Wait for them (bounded).
pg_wait_orphans() {
  local pidfile="$PG_DATA/postmaster.pid" shmid oldpid deadline=$((SECONDS + 20))
  [[ -f "$pidfile" ]] || return 0
  # The killed postmaster itself must be reaped, or the new one sees its pid "alive".
  oldpid="$(read_pid "$pidfile")"
  if ! wait_reaped "$oldpid" 10; then
    warn "old postmaster $oldpid is a zombie nobody reaps; removing its stale postmaster.pid"
    rm -f "$pidfile"; return 0
  fi
  shmid="$(sed -n 7p "$pidfile" | awk '{print $2}')"
  [[ "$shmid" =~ ^[0-9]+$ ]] || return 0
  while awk -v id="$shmid" '$2 == id && $7 > 0 { found = 1 } END { exit !found }' /proc/sysvipc/shm 2>/dev/null; do
    (( SECONDS < deadline )) || { warn "old PostgreSQL processes still hold shared memory $shmid"; return 0; }
    sleep 0.3
  done
}

svc_postgres_port() { echo "$PG_PORT"; }
svc_postgres_log() { echo "$LOG_DIR/postgres.log"; }
svc_postgres_detail() { echo "data $(rel "$PG_DATA"), db/user backplane"; }
svc_postgres_pid() {
  local pid; pid="$(read_pid "$PG_DATA/postmaster.pid")"
  pid_alive "$pid" postgres && echo "$pid"
  return 0
}
svc_postgres_ready() {
  local bin; bin="$(pg_bindir)" || return 1
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 2 >/dev/null 2>&1
}
svc_postgres_launch() {
  local bin sock logf
  logf="$(svc_postgres_log)"; sock="$(pg_sockdir)"
  bin="$(pg_bindir)" || { echo "PostgreSQL binaries not found under /usr/lib/postgresql" >>"$logf"; return 1; }
  id postgres >/dev/null 2>&1 || { echo "no 'postgres' user (is the postgresql package installed?)" >>"$logf"; return 1; }
  mkdir -p "$PG_DATA" "$sock"
  chown postgres:postgres "$PG_DATA" "$sock"; chmod 700 "$PG_DATA"
  touch "$logf"; chown postgres:postgres "$logf"
  pg_fix_access || return 1
  if [[ ! -s "$PG_DATA/PG_VERSION" ]]; then
    find "$PG_DATA" -mindepth 1 -delete   # leftovers of an interrupted initdb
    log "postgres: creating a new cluster in $(rel "$PG_DATA")"
    runuser -u postgres -- "$bin/initdb" -D "$PG_DATA" --auth=trust --username=postgres \
      --encoding=UTF8 --locale=C.UTF-8 >>"$logf" 2>&1 9>&- || return 1
  fi
  pg_wait_orphans
  # shellcheck disable=SC2094  # pg_ctl's own messages go to the server log on purpose
  runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DATA" -l "$logf" -W \
    -o "-p $PG_PORT -k $sock -c listen_addresses=127.0.0.1" start >>"$logf" 2>&1 </dev/null 9>&-
}
svc_postgres_wait() { wait_ready_loop postgres "${1:-30}"; }
svc_postgres_after() {
  "$(pg_bindir)/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'backplane') THEN
    CREATE ROLE backplane LOGIN CREATEDB PASSWORD 'backplane';
  ELSE
    ALTER ROLE backplane LOGIN CREATEDB PASSWORD 'backplane';
  END IF;
END
$$;
SELECT 'CREATE DATABASE backplane OWNER backplane'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'backplane')\gexec
SELECT 'CREATE DATABASE ferretdb OWNER backplane'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ferretdb')\gexec
SQL
}
svc_postgres_stop() {
  local pid; pid="$(svc_postgres_pid)"
  [[ -n "$pid" ]] || return 0
  runuser -u postgres -- "$(pg_bindir)/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >>"$(svc_postgres_log)" 2>&1 9>&- \
    || terminate "$pid" 10
}

# ================================================================ Redis

svc_redis_port() { echo "$REDIS_PORT"; }
svc_redis_log() { echo "$LOG_DIR/redis.log"; }
svc_redis_detail() { echo "data $(rel "$DATA_DIR/redis") (appendonly)"; }
svc_redis_pid() {
  local pid; pid="$(read_pid "$RUN_DIR/redis.pid")"
  pid_alive "$pid" redis-server && echo "$pid"
  return 0
}
svc_redis_ready() {
  [[ "$(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}
svc_redis_launch() {
  mkdir -p "$DATA_DIR/redis"
  rm -f "$RUN_DIR/redis.pid"
  # shellcheck disable=SC2094  # redis writes its log itself; this only catches early errors
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA_DIR/redis" \
    --appendonly yes --daemonize yes --pidfile "$RUN_DIR/redis.pid" \
    --logfile "$(svc_redis_log)" </dev/null >>"$(svc_redis_log)" 2>&1 9>&-
}
svc_redis_wait() { wait_ready_loop redis "${1:-15}"; }
svc_redis_stop() {
  local pid; pid="$(svc_redis_pid)"
  [[ -n "$pid" ]] || return 0
  timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
  wait_exit "$pid" 15 || terminate "$pid" 5
}

# ================================================================ RabbitMQ

RABBIT_BASE="$DATA_DIR/rabbitmq"
RABBIT_NODE="${RABBITMQ_NODENAME_OVERRIDE:-backplane@localhost}"

# Everything the server and its CLI need, in one place. Call it in a subshell: ( rabbit_env; … ).
rabbit_env() {
  export HOME="$RABBIT_BASE/home"                     # holds our own .erlang.cookie
  export RABBITMQ_NODENAME="$RABBIT_NODE"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$AMQP_PORT"
  # shellcheck disable=SC2153  # RABBIT_DIST_PORT comes from scripts/lib.sh
  export RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT"
  export ERL_EPMD_PORT="$RABBIT_EPMD_PORT"
  export ERL_EPMD_ADDRESS=127.0.0.1
  # Erlang distribution (the CLI talks to the node through it) on loopback only, not 0.0.0.0.
  # +sbwt none: Erlang schedulers spin for work by default, which takes CPU from every other
  # process sharing a small machine (RabbitMQ's own advice for shared or low-core hosts).
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"
  export RABBITMQ_MNESIA_BASE="$RABBIT_BASE/mnesia"
  export RABBITMQ_LOG_BASE="$LOG_DIR/rabbitmq"
  export RABBITMQ_CONFIG_FILE="$RABBIT_BASE/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$RABBIT_BASE/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_BASE/enabled_plugins"
  export RABBITMQ_CONF_ENV_FILE="$RABBIT_BASE/rabbitmq-env.conf"   # ignore /etc/rabbitmq
  export RABBITMQ_PID_FILE="$RUN_DIR/rabbitmq.pid"
  export LANG=C.UTF-8 LC_ALL=C.UTF-8
  export PATH="/usr/lib/rabbitmq/bin:$PATH"
}

rabbit_prepare() {
  mkdir -p "$RABBIT_BASE/home" "$RABBIT_BASE/mnesia" "$LOG_DIR/rabbitmq"
  local cookie="$RABBIT_BASE/home/.erlang.cookie"
  if [[ ! -s "$cookie" ]]; then
    rm -f "$cookie"
    (umask 077; LC_ALL=C tr -dc '[:upper:]' </dev/urandom | head -c 32 > "$cookie")
  fi
  chmod 400 "$cookie"
  : > "$RABBIT_BASE/rabbitmq-env.conf"
  echo '[rabbitmq_management].' > "$RABBIT_BASE/enabled_plugins"
  cat > "$RABBIT_BASE/rabbitmq.conf" <<EOF
# Written by scripts/infra.sh on every start; edit the script, not this file.
management.tcp.port = $RABBIT_MGMT_PORT
management.tcp.ip = 127.0.0.1
loopback_users.guest = true
log.file.level = info
log.console = false
EOF
}

rabbitmqctl_run() { ( rabbit_env; exec /usr/lib/rabbitmq/bin/rabbitmqctl "$@" 9>&- ); }
# Same, bounded: rabbitmqctl_timed SECONDS ARGS...
rabbitmqctl_timed() {
  local secs="$1"; shift
  ( rabbit_env; exec timeout -k 5 "$secs" /usr/lib/rabbitmq/bin/rabbitmqctl "$@" 9>&- )
}

# True when the AMQP port answers the protocol header with a Connection.Start method frame.
amqp_probe() {
  local out
  # shellcheck disable=SC2016  # expanded by the inner shell
  out="$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
    printf "AMQP\x00\x00\x09\x01" >&3
    head -c 1 <&3 | od -An -tx1' "$AMQP_PORT" 2>/dev/null)" || return 1
  [[ "${out// /}" == 01 ]]
}

svc_rabbitmq_port() { echo "$AMQP_PORT"; }
svc_rabbitmq_log() {
  local f="$LOG_DIR/rabbitmq/$RABBIT_NODE.log"
  [[ -s "$f" ]] || f="$LOG_DIR/rabbitmq/startup.log"
  echo "$f"
}
svc_rabbitmq_detail() { echo "mgmt http://127.0.0.1:$RABBIT_MGMT_PORT, node $RABBIT_NODE, epmd :$RABBIT_EPMD_PORT"; }
svc_rabbitmq_pid() {
  local pid; pid="$(read_pid "$RUN_DIR/rabbitmq.pid")"
  pid_alive "$pid" beam && echo "$pid"
  return 0
}
svc_rabbitmq_ready() { amqp_probe; }
svc_rabbitmq_launch() {
  rabbit_prepare
  rm -f "$RUN_DIR/rabbitmq.pid"   # a stale one (after kill -9) would fool `rabbitmqctl wait`
  ( rabbit_env; exec /usr/lib/rabbitmq/bin/rabbitmq-server -detached ) \
    >>"$LOG_DIR/rabbitmq/startup.log" 2>&1 </dev/null 9>&-
}
svc_rabbitmq_wait() {
  local secs="${1:-90}" t0=$SECONDS
  if ! rabbitmqctl_timed $((secs + 5)) wait --timeout "$secs" "$RUN_DIR/rabbitmq.pid" \
      >>"$LOG_DIR/rabbitmq/startup.log" 2>&1; then
    echo "rabbitmqctl wait failed (node did not finish booting within ${secs}s)"; return 1
  fi
  wait_ready_loop rabbitmq $(( secs - (SECONDS - t0) > 5 ? secs - (SECONDS - t0) : 5 ))
}
svc_rabbitmq_after() {
  # The management API (guest works from loopback) is much faster than three rabbitmqctl runs.
  local api="http://127.0.0.1:$RABBIT_MGMT_PORT/api" deadline=$((SECONDS + 30))
  local c=(curl -fsS -m 5 -u guest:guest -H 'content-type: application/json' -X PUT -o /dev/null)
  while ! "${c[@]}" -d '{"password":"backplane","tags":"administrator"}' "$api/users/backplane" 2>/dev/null; do
    if (( SECONDS >= deadline )); then
      # Fallback: the CLI (slower, but does not need the management plugin).
      rabbitmqctl_run -q add_user backplane backplane >/dev/null 2>&1 || true
      rabbitmqctl_run -q change_password backplane backplane >/dev/null 2>&1 &&
      rabbitmqctl_run -q set_user_tags backplane administrator >/dev/null &&
      rabbitmqctl_run -q set_permissions -p / backplane '.*' '.*' '.*' >/dev/null
      return
    fi
    sleep 0.5
  done
  "${c[@]}" -d '{"configure":".*","write":".*","read":".*"}' "$api/permissions/%2F/backplane"
}
# The epmd our node (or our CLI) started: recognised by the HOME and port in its environment, so
# an epmd of another clone or of the system is never touched.
rabbit_epmd_pid() {
  local p env
  for p in /proc/[0-9]*; do
    [[ "$(cat "$p/comm" 2>/dev/null)" == epmd ]] || continue
    env="$(tr '\0' '\n' < "$p/environ" 2>/dev/null)" || continue
    if grep -qxF "HOME=$RABBIT_BASE/home" <<<"$env" && grep -qxF "ERL_EPMD_PORT=$RABBIT_EPMD_PORT" <<<"$env"; then
      echo "${p#/proc/}"; return 0
    fi
  done
  return 0
}
rabbit_stop_epmd() {
  # epmd outlives the node: stop ours once no node is registered with it.
  local pid; pid="$(rabbit_epmd_pid)"
  [[ -n "$pid" ]] || return 0
  ( rabbit_env; timeout 10 epmd -kill >/dev/null 2>&1 9>&- ) || true
  wait_exit "$pid" 3 || terminate "$pid" 3
  wait_reaped "$pid" 3 || true
}
svc_rabbitmq_stop() {
  local pid; pid="$(svc_rabbitmq_pid)"
  if [[ -n "$pid" ]]; then
    rabbitmqctl_timed 60 stop "$RUN_DIR/rabbitmq.pid" >>"$LOG_DIR/rabbitmq/startup.log" 2>&1 || true
    wait_exit "$pid" 10 || terminate "$pid" 5
  fi
  rm -f "$RUN_DIR/rabbitmq.pid"
  rabbit_stop_epmd
}

# ================================================================ MongoDB API (FerretDB on PostgreSQL)
# FerretDB keeps its documents in this PostgreSQL, database `ferretdb` (one schema per MongoDB
# database). Its SQLite backend spent ~10x the CPU per operation on 2 cores (docs/decisions/0004).

# A real `ping` command over the MongoDB wire protocol (OP_MSG {ping: 1, $db: "admin"}), so the
# check needs no driver: succeeds only if the reply document holds ok: 1.0.
mongo_ping() {
  local out
  # shellcheck disable=SC2016  # expanded by the inner shell
  out="$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
    printf "\x33\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00\x1e\x00\x00\x00\x10ping\x00\x01\x00\x00\x00\x02\$db\x00\x06\x00\x00\x00admin\x00\x00" >&3
    len="$(head -c 4 <&3 | od -An -tu4 | tr -d " \n")"
    [[ "$len" =~ ^[0-9]+$ ]] && (( len > 20 && len < 1048576 )) || exit 1
    head -c $((len - 4)) <&3 | od -An -v -tx1 | tr -d " \n"' "$MONGO_PORT" 2>/dev/null)" || return 1
  [[ "$out" == *016f6b00000000000000f03f* ]]
}

svc_mongo_port() { echo "$MONGO_PORT"; }
svc_mongo_log() { echo "$LOG_DIR/mongo.log"; }
svc_mongo_detail() { echo "FerretDB $FERRETDB_VERSION on PostgreSQL (database ferretdb), state $(rel "$DATA_DIR/mongo")"; }
svc_mongo_pid() {
  local pid; pid="$(read_pid "$RUN_DIR/mongo.pid")"
  pid_alive "$pid" ferretdb && echo "$pid"
  return 0
}
svc_mongo_ready() { mongo_ping; }
svc_mongo_launch() {
  local logf; logf="$(svc_mongo_log)"
  mkdir -p "$DATA_DIR/mongo" "$(dirname "$logf")"
  # Started together with PostgreSQL by `up`: wait for it, and make its role and database now
  # (its own setup runs later, and a checkout set up before this backend has no database ferretdb).
  if ! svc_postgres_wait 30 >/dev/null || ! svc_postgres_after >>"$logf" 2>&1; then
    echo "FerretDB stores its data in PostgreSQL (port $PG_PORT), which is not running or not set up: scripts/infra.sh up postgres mongo" >>"$logf"
    return 1
  fi
  spawn "$RUN_DIR/mongo.pid" "$logf" "$(tool_bin ferretdb)" \
    --handler=postgresql --postgresql-url="postgres://backplane:backplane@127.0.0.1:$PG_PORT/ferretdb" \
    --listen-addr="127.0.0.1:$MONGO_PORT" --state-dir="$DATA_DIR/mongo" \
    --debug-addr=- --telemetry=disable --log-format=text --log-level=INFO
}
svc_mongo_wait() { wait_ready_loop mongo "${1:-30}"; }
svc_mongo_stop() { local pid; pid="$(svc_mongo_pid)"; [[ -z "$pid" ]] || terminate "$pid" 10; rm -f "$RUN_DIR/mongo.pid"; }

# ================================================================ Mailpit

svc_mailpit_port() { echo "$MAILPIT_SMTP_PORT"; }
svc_mailpit_log() { echo "$LOG_DIR/mailpit.log"; }
svc_mailpit_detail() { echo "SMTP :$MAILPIT_SMTP_PORT, UI/API http://127.0.0.1:$MAILPIT_HTTP_PORT"; }
svc_mailpit_pid() {
  local pid; pid="$(read_pid "$RUN_DIR/mailpit.pid")"
  pid_alive "$pid" mailpit && echo "$pid"
  return 0
}
svc_mailpit_ready() {
  curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$MAILPIT_HTTP_PORT/api/v1/info" 2>/dev/null && tcp_open "$MAILPIT_SMTP_PORT"
}
svc_mailpit_launch() {
  mkdir -p "$DATA_DIR/mailpit"
  spawn "$RUN_DIR/mailpit.pid" "$(svc_mailpit_log)" "$(tool_bin mailpit)" \
    --smtp "127.0.0.1:$MAILPIT_SMTP_PORT" --listen "127.0.0.1:$MAILPIT_HTTP_PORT" \
    --database "$DATA_DIR/mailpit/mailpit.db" --max 5000 \
    --smtp-auth-accept-any --smtp-auth-allow-insecure --disable-version-check \
    --smtp-disable-rdns --compression 0
}
svc_mailpit_wait() { wait_ready_loop mailpit "${1:-30}"; }
svc_mailpit_stop() { local pid; pid="$(svc_mailpit_pid)"; [[ -z "$pid" ]] || terminate "$pid" 10; rm -f "$RUN_DIR/mailpit.pid"; }

# ================================================================ stripe-mock

svc_stripe_mock_port() { echo "$STRIPE_MOCK_PORT"; }
svc_stripe_mock_log() { echo "$LOG_DIR/stripe-mock.log"; }
svc_stripe_mock_detail() { echo "http :$STRIPE_MOCK_PORT, https :$STRIPE_MOCK_HTTPS_PORT, key sk_test_123"; }
svc_stripe_mock_pid() {
  local pid; pid="$(read_pid "$RUN_DIR/stripe-mock.pid")"
  pid_alive "$pid" stripe-mock && echo "$pid"
  return 0
}
svc_stripe_mock_ready() {
  curl -fsS -m 2 -o /dev/null -H 'Authorization: Bearer sk_test_123' \
    "http://127.0.0.1:$STRIPE_MOCK_PORT/v1/charges" 2>/dev/null
}
svc_stripe_mock_launch() {
  spawn "$RUN_DIR/stripe-mock.pid" "$(svc_stripe_mock_log)" "$(tool_bin stripe-mock)" \
    -http-addr "127.0.0.1:$STRIPE_MOCK_PORT" -https-addr "127.0.0.1:$STRIPE_MOCK_HTTPS_PORT"
}
svc_stripe_mock_wait() { wait_ready_loop stripe-mock "${1:-30}"; }
svc_stripe_mock_stop() { local pid; pid="$(svc_stripe_mock_pid)"; [[ -z "$pid" ]] || terminate "$pid" 10; rm -f "$RUN_DIR/stripe-mock.pid"; }

# ================================================================ generic

# Polls NAME's readiness check until it passes or SECS run out. Gives up early when the server
# process has gone away (it crashed at start-up), so failures are reported fast.
wait_ready_loop() {
  local secs="$2" id="${1//-/_}" deadline seen="" gone_since="" started=$SECONDS
  deadline=$((SECONDS + secs))
  while ! "svc_${id}_ready"; do
    if [[ -n "$("svc_${id}_pid")" ]]; then seen=1; gone_since=""
    elif [[ -z "$seen" ]] && (( SECONDS - started > 15 )); then
      echo "no server process appeared within 15s"; return 1
    elif [[ -n "$seen" ]]; then
      # the process existed and is gone: allow a moment (pid file rewrites), then give up
      [[ -n "$gone_since" ]] || gone_since=$SECONDS
      (( SECONDS - gone_since < 3 )) || { echo "process exited during start-up"; return 1; }
    fi
    (( SECONDS < deadline )) || { echo "not ready after ${secs}s"; return 1; }
    sleep 0.25
  done
}
