#!/usr/bin/env bash
# The whole test suite against real servers (npm test). Installs Node 24, the npm dependencies
# and the infrastructure when missing, starts the servers, then runs Vitest.
# Extra arguments go to Vitest: `npm test -- test/unit`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/lib.sh"
LOG_TAG=test

ensure_node_modules
# schemathesis (API fuzzing) and the manifest tools; cached outside the clone after the first run.
bash "$HERE/infra.sh" install-tools
bash "$HERE/infra.sh" up
eval "$(bash "$HERE/infra.sh" env)"
log "building the web console"
(cd "$ROOT" && npm run --silent build:web)
export RABBITMQ_URL RABBITMQ_MANAGEMENT_URL DATABASE_URL MONGO_URL REDIS_URL SMTP_URL MAILPIT_API_URL STRIPE_API_BASE
cd "$ROOT"
exec npx vitest run "$@"
