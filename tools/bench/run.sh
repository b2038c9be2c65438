#!/usr/bin/env bash
# `make bench`: brings up a stack of its own (STACK=test with other ports,
# data in .data/bench, so it never collides with the demo or the test
# stack), builds the worker and the benchmark command, runs it (it writes
# docs/benchmarks.md), and takes the stack down again.
#
#   tools/bench/run.sh          up, build, measure, down
#   tools/bench/run.sh keep     leave the stack up afterwards (then: tools/bench/run.sh down)
#   tools/bench/run.sh down     stop the bench stack
#
# BENCH_FLAGS are passed to lifecycle-bench (e.g. BENCH_FLAGS='-phases
# signups -signups 1000'); `go run -C tools/bench ./cmd/lifecycle-bench -h`
# lists them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
export STACK=test
export TEMPORAL_PORT=${BENCH_TEMPORAL_PORT:-7263} TEMPORAL_UI_PORT=${BENCH_TEMPORAL_UI_PORT:-8263}
export MAILPIT_SMTP_PORT=${BENCH_MAILPIT_SMTP_PORT:-1046} MAILPIT_HTTP_PORT=${BENCH_MAILPIT_HTTP_PORT:-8046}
export STACK_DATA_DIR="$ROOT/.data/bench"
PG_ADMIN=${BENCH_POSTGRES_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}}

if [ "${1:-}" = down ]; then
	exec scripts/stack.sh down
fi

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Fresh Temporal and Mailpit files for every run, so sizes and rates
# compare run to run — only when the bench stack is not running.
if ! alive "$STACK_DATA_DIR/run/temporal.pid" && ! alive "$STACK_DATA_DIR/run/mailpit.pid"; then
	rm -f "$STACK_DATA_DIR"/temporal.db* "$STACK_DATA_DIR"/mailpit.db*
fi
[ "${1:-}" = keep ] || trap 'scripts/stack.sh down' EXIT
scripts/stack.sh up

mkdir -p "$STACK_DATA_DIR/bin"
go build -o "$STACK_DATA_DIR/bin/" ./worker
# The harness is a module of its own (tools/bench/go.mod).
go build -C tools/bench -o "$STACK_DATA_DIR/bin/" ./cmd/lifecycle-bench
# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
"$STACK_DATA_DIR/bin/lifecycle-bench" \
	-temporal "127.0.0.1:$TEMPORAL_PORT" -smtp "127.0.0.1:$MAILPIT_SMTP_PORT" -mailpit "http://127.0.0.1:$MAILPIT_HTTP_PORT" \
	-postgres "$PG_ADMIN" -data "$STACK_DATA_DIR" -worker-bin "$STACK_DATA_DIR/bin/worker" \
	-profiles "$STACK_DATA_DIR/profiles" ${BENCH_FLAGS:-}
