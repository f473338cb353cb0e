#!/usr/bin/env bash
# npm run bench: starts the infrastructure, then measures every target against its same-run baseline.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/lib.sh"
LOG_TAG=bench
ensure_node_modules
bash "$HERE/infra.sh" up
eval "$(bash "$HERE/infra.sh" env)"
export RABBITMQ_URL DATABASE_URL MONGO_URL REDIS_URL SMTP_URL STRIPE_API_BASE MAILPIT_API_URL
cd "$ROOT"
exec node bench/run.ts "$@"
