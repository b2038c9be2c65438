#!/usr/bin/env bash
# make demo: the demo stack, then bin/worker and bin/api in the background and
# `bin/starter demo` in the foreground.
#
#   scripts/demo.sh              run the demo
#   scripts/demo.sh stop-worker  stop the worker and API the demo started (make stop)
#
# TIME_SCALE (default 43200: one journey day lasts 2 s) is passed to both.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_PREFIX=demo
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
cd "$ROOT"

export STACK=demo
DATA_DIR=${STACK_DATA_DIR:-$ROOT/.data/demo}
PIDFILE="$DATA_DIR/run/worker.pid"
LOGFILE="$DATA_DIR/log/worker.log"
API_PIDFILE="$DATA_DIR/run/api.pid"
API_LOGFILE="$DATA_DIR/log/api.log"

stop_worker() {
	stop_pid "$API_PIDFILE" "$ROOT/bin/api" api
	stop_pid "$PIDFILE" "$ROOT/bin/worker" worker
}

# start_checked PIDFILE LOGFILE EXE NAME: start in the background, fail with
# the log tail when it exits at once.
start_checked() {
	start_bg "$1" "$2" "$3"
	sleep 1
	if ! pid=$(pid_alive "$1" "$3"); then
		log "the $4 exited at start; last lines of ${2#"$ROOT"/}:"
		tail -n 40 "$2" >&2 || true
		exit 1
	fi
	log "$4 running (pid $pid), log ${2#"$ROOT"/}"
}

case "${1:-run}" in
stop-worker)
	stop_worker
	exit 0
	;;
run) ;;
*) die "usage: scripts/demo.sh [run|stop-worker]" ;;
esac

"$ROOT/scripts/stack.sh" up
eval "$("$ROOT/scripts/stack.sh" env)"
export TIME_SCALE=${TIME_SCALE:-43200}

stop_worker # an old worker runs old code
log "building bin/worker, bin/starter and bin/api"
mkdir -p bin
go build -o bin/ ./worker ./starter ./cmd/api

start_checked "$PIDFILE" "$LOGFILE" "$ROOT/bin/worker" "worker (TIME_SCALE=$TIME_SCALE)"
start_checked "$API_PIDFILE" "$API_LOGFILE" "$ROOT/bin/api" "HTTP API on ${HTTP_ADDR:-127.0.0.1:8080} (docs/api.md)"
log "Temporal UI $TEMPORAL_UI_URL  Mailpit $MAILPIT_UI_URL  (make stop: worker, API, stack)"
exec "$ROOT/bin/starter" demo
