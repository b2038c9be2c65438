#!/usr/bin/env bash
# make demo: the demo stack, then bin/worker in the background and
# `bin/starter demo` in the foreground.
#
#   scripts/demo.sh              run the demo
#   scripts/demo.sh stop-worker  stop the worker the demo started (make stop)
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

stop_worker() { stop_pid "$PIDFILE" "$ROOT/bin/worker" worker; }

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
log "building bin/worker and bin/starter"
mkdir -p bin
go build -o bin/ ./worker ./starter

start_bg "$PIDFILE" "$LOGFILE" "$ROOT/bin/worker"
sleep 1
if ! pid=$(pid_alive "$PIDFILE" "$ROOT/bin/worker"); then
	log "the worker exited at start; last lines of ${LOGFILE#"$ROOT"/}:"
	tail -n 40 "$LOGFILE" >&2 || true
	exit 1
fi
log "worker running (pid $pid, TIME_SCALE=$TIME_SCALE), log ${LOGFILE#"$ROOT"/}"
log "Temporal UI $TEMPORAL_UI_URL  Mailpit $MAILPIT_UI_URL  (make stop: worker + stack)"
exec "$ROOT/bin/starter" demo
