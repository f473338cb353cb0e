#!/usr/bin/env bash
# The chaos suite in its long form (npm run test:chaos): the reliability scenarios of the brief on
# real node processes with larger counts (CHAOS_SCALE, default 3) and, besides kill -9 of nodes,
# restarts of the shared servers (RabbitMQ, Redis, PostgreSQL, FerretDB) through scripts/infra.sh.
# `npm test` runs the same files in a bounded form (CHAOS_SCALE=1, node kills only).
# Extra arguments go to Vitest: `npm run test:chaos -- -t "circuit"`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/lib.sh"
LOG_TAG=chaos

ensure_node_modules
bash "$HERE/infra.sh" up
eval "$(bash "$HERE/infra.sh" env)"
export RABBITMQ_URL RABBITMQ_MANAGEMENT_URL DATABASE_URL MONGO_URL REDIS_URL SMTP_URL MAILPIT_API_URL STRIPE_API_BASE
export CHAOS_SCALE="${CHAOS_SCALE:-3}" CHAOS_FULL=1
cd "$ROOT"
exec npx vitest run test/chaos "$@"
