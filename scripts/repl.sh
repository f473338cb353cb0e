#!/usr/bin/env bash
# Opens the Moleculer REPL on a node that joins the running local cluster (npm run repl).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/lib.sh"
ensure_node_modules
eval "$(bash "$HERE/infra.sh" env)"
export RABBITMQ_URL
exec node "$ROOT/bin/repl.ts" "$@"
