#!/usr/bin/env bash
# The local stack: Temporal dev server (SQLite file), Mailpit, PostgreSQL.
#
#   scripts/stack.sh up       start what is not running yet, wait until healthy
#   scripts/stack.sh down     stop what `up` started (PID files only)
#   scripts/stack.sh status   show what runs; exit 0 only when all is healthy
#   scripts/stack.sh env      print `export VAR=value` lines for this stack
#   scripts/stack.sh logs     tail the logs
#
# STACK=demo (default) or STACK=test selects the ports and the data dir
# (.data/demo, .data/test), so tests never collide with a running demo.
# Overrides: TEMPORAL_IP TEMPORAL_PORT TEMPORAL_UI_PORT TEMPORAL_NAMESPACE TEMPORAL_UI_CODEC_ENDPOINT
# MAILPIT_IP MAILPIT_SMTP_PORT MAILPIT_HTTP_PORT MAILPIT_UI=0|1 DATABASE_URL
# STACK_DATA_DIR STACK_TIMEOUT (seconds to wait for health, default 120).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK=${STACK:-demo}
LOG_PREFIX="stack:$STACK"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

case "$STACK" in
demo) d_tp=7233 d_tui=8233 d_smtp=1025 d_http=8025 d_db=lifecycle d_ui=1 d_codec=http://127.0.0.1:8080/codec ;;
test) d_tp=7243 d_tui=8243 d_smtp=1026 d_http=8026 d_db=postgres d_ui=0 d_codec= ;;
*) die "STACK must be demo or test, not '$STACK'" ;;
esac

BIN="$ROOT/.cache/bin"
TEMPORAL_IP=${TEMPORAL_IP:-127.0.0.1}
TEMPORAL_PORT=${TEMPORAL_PORT:-$d_tp}
TEMPORAL_UI_PORT=${TEMPORAL_UI_PORT:-$d_tui}
TEMPORAL_NAMESPACE=${TEMPORAL_NAMESPACE:-default}
# The Web UI decrypts payloads through the codec server the demo's API
# serves (docs/privacy.md); empty leaves them encrypted in the UI.
TEMPORAL_UI_CODEC_ENDPOINT=${TEMPORAL_UI_CODEC_ENDPOINT-$d_codec}
MAILPIT_IP=${MAILPIT_IP:-127.0.0.1}
MAILPIT_SMTP_PORT=${MAILPIT_SMTP_PORT:-$d_smtp}
MAILPIT_HTTP_PORT=${MAILPIT_HTTP_PORT:-$d_http}
MAILPIT_UI=${MAILPIT_UI:-$d_ui}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$d_db?sslmode=disable}
DATA_DIR=${STACK_DATA_DIR:-$ROOT/.data/$STACK}
RUN="$DATA_DIR/run"
LOGS="$DATA_DIR/log"
TIMEOUT=${STACK_TIMEOUT:-120}

TEMPORAL_ADDRESS="$TEMPORAL_IP:$TEMPORAL_PORT"
TEMPORAL_UI_URL="http://$TEMPORAL_IP:$TEMPORAL_UI_PORT"
MAILPIT_URL="http://$MAILPIT_IP:$MAILPIT_HTTP_PORT"
MAILPIT_BIN="$BIN/mailpit"
[ "$MAILPIT_UI" = 1 ] && MAILPIT_BIN="$BIN/mailpit-ui"

# name=type pairs registered at Temporal start (see workflows/ for their use).
SEARCH_ATTRIBUTES=(JourneyStage=Keyword LeadScore=Int CustomerID=Keyword CampaignVersion=Keyword)


# ---------------------------------------------------------------- PostgreSQL

# Splits DATABASE_URL into PG_HOST PG_PORT PG_DB PG_BASE (scheme, user, host,
# port) and PG_QUERY.
parse_pg_url() {
	local u=$DATABASE_URL rest authority
	PG_QUERY=""
	case "$u" in *\?*) PG_QUERY=${u#*\?} u=${u%%\?*} ;; esac
	rest=${u#*://}
	authority=${rest%%/*}
	PG_DB=postgres
	[ "$rest" != "$authority" ] && [ -n "${rest#*/}" ] && PG_DB=${rest#*/}
	PG_BASE="${u%%://*}://$authority"
	authority=${authority##*@}  # drop user:password
	authority=${authority%%,*}  # first of several hosts
	if [[ "$authority" == \[*\]* ]]; then # [ipv6]:port
		PG_HOST=${authority%%]*}
		PG_HOST=${PG_HOST#[}
		PG_PORT=${authority##*]}
		PG_PORT=${PG_PORT#:}
	else
		PG_HOST=${authority%%:*}
		PG_PORT=""
		[[ "$authority" == *:* ]] && PG_PORT=${authority##*:}
	fi
	PG_HOST=${PG_HOST:-localhost}
	PG_PORT=${PG_PORT:-5432}
}


pg_wait() {
	for _ in $(seq 1 60); do
		pg_reachable && return 0
		sleep 0.5
	done
	return 1
}


# pg_start_cluster VER NAME: starts a Debian cluster and records that we did.
pg_start_cluster() {
	log "starting PostgreSQL cluster $1/$2 (pg_ctlcluster)"
	pg_ctlcluster --skip-systemctl-redirect "$1" "$2" start ||
		die "pg_ctlcluster $1 $2 start failed (see /var/log/postgresql/postgresql-$1-$2.log)"
	echo "$1 $2" >"$RUN/postgres.cluster"
}

# pg_trust_loopback VER NAME: lets every local role log in over TCP from
# 127.0.0.1/::1 without a password (the project's default DATABASE_URLs have
# none). Only done on a cluster this script installed.
pg_trust_loopback() {
	local hba="/etc/postgresql/$1/$2/pg_hba.conf" tmp
	[ -f "$hba" ] || return 0
	grep -q 'lifecycle scripts/stack.sh' "$hba" && return 0
	tmp=$(mktemp)
	{
		echo "# added by lifecycle scripts/stack.sh: local development only"
		echo "host    all    all    127.0.0.1/32    trust"
		echo "host    all    all    ::1/128         trust"
		cat "$hba"
	} >"$tmp"
	cat "$tmp" >"$hba"
	rm -f "$tmp"
	log "pg_hba.conf: trust for 127.0.0.1/32 and ::1/128 ($hba)"
}

ensure_postgres() {
	parse_pg_url
	if pg_reachable; then
		log "PostgreSQL: reachable at $PG_HOST:$PG_PORT"
		ensure_database
		return 0
	fi
	if ! pg_local; then
		die "PostgreSQL at $PG_HOST:$PG_PORT (DATABASE_URL) is not reachable; fix DATABASE_URL or start that server"
	fi
	local ver="" name="" installed=""
	if command -v pg_lsclusters >/dev/null 2>&1 && [ -n "$(pg_lsclusters -h 2>/dev/null)" ]; then
		# The Debian cluster configured for the URL's port.
		read -r ver name < <(pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }') || true
		[ -n "$ver" ] || die "no PostgreSQL cluster is configured for port $PG_PORT:
$(pg_lsclusters)
  start one yourself and set DATABASE_URL to it"
	elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "PostgreSQL: none installed; apt-get install postgresql (once)..."
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
		read -r ver name < <(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }') || true
		[ -n "$ver" ] || die "postgresql installed, but no cluster on port $PG_PORT:
$(pg_lsclusters 2>&1)"
		installed=1
		pg_trust_loopback "$ver" "$name"
	else
		die "PostgreSQL is not reachable at $PG_HOST:$PG_PORT and none is installed here.
  Install it (as root: apt-get install postgresql) or point DATABASE_URL at a server, e.g.
  DATABASE_URL='postgres://USER:PASSWORD@HOST:5432/$d_db?sslmode=disable' scripts/stack.sh up"
	fi
	if pg_lsclusters -h | awk -v v="$ver" -v n="$name" '$1 == v && $2 == n && $4 == "online" { f = 1 } END { exit !f }'; then
		if [ -n "$installed" ]; then # started by the package's install script
			pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload || true
			echo "$ver $name" >"$RUN/postgres.cluster"
		fi
	else
		pg_start_cluster "$ver" "$name"
	fi
	pg_wait || die "PostgreSQL cluster $ver/$name started but $PG_HOST:$PG_PORT does not answer"
	log "PostgreSQL: ready; use DATABASE_URL=$(sed -E 's#//([^:@/]*):[^@/]*@#//\1:***@#' <<<"$DATABASE_URL")"
	ensure_database
}

# Creates the database named in DATABASE_URL (e.g. lifecycle for the demo)
# when psql is installed and it does not exist yet.
ensure_database() {
	[ "$PG_DB" = postgres ] && return 0
	[[ "$PG_DB" =~ ^[A-Za-z0-9_]+$ ]] || return 0
	command -v psql >/dev/null 2>&1 || return 0
	local admin="$PG_BASE/postgres${PG_QUERY:+?$PG_QUERY}" found
	if ! found=$(psql -X -w -q -t -A -d "$admin" -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" 2>&1); then
		log "warning: could not check database $PG_DB: $found"
		return 0
	fi
	if [ "$found" != 1 ]; then
		psql -X -w -q -d "$admin" -c "CREATE DATABASE \"$PG_DB\"" >/dev/null &&
			log "PostgreSQL: created database $PG_DB"
	fi
}

# ---------------------------------------------------------------- Temporal

temporal_healthy() {
	"$BIN/temporal" operator cluster health --address "$TEMPORAL_ADDRESS" \
		--command-timeout 3s >/dev/null 2>&1
}

start_temporal() {
	local pid
	if pid=$(pid_alive "$RUN/temporal.pid" "$BIN/"); then
		log "Temporal: already running (pid $pid)"
		return 0
	fi
	local args=(server start-dev
		--db-filename "$DATA_DIR/temporal.db"
		--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal
		# Eager activities: an activity a workflow task schedules on its own
		# task queue comes back in the task's reply when the worker has a free
		# slot, without a trip through matching (off by default in the server).
		--dynamic-config-value system.enableActivityEagerExecution=true
		--ip "$TEMPORAL_IP" --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT"
		--log-level warn)
	[ "$TEMPORAL_NAMESPACE" != default ] && args+=(--namespace "$TEMPORAL_NAMESPACE")
	[ -n "$TEMPORAL_UI_CODEC_ENDPOINT" ] && args+=(--ui-codec-endpoint "$TEMPORAL_UI_CODEC_ENDPOINT")
	local sa
	for sa in "${SEARCH_ATTRIBUTES[@]}"; do args+=(--search-attribute "$sa"); done
	start_bg "$RUN/temporal.pid" "$LOGS/temporal.log" "$BIN/temporal" "${args[@]}"
	log "Temporal: started (pid $(cat "$RUN/temporal.pid")), log $(rel "$LOGS/temporal.log")"
}

# Registers the custom search attributes that are missing (start-dev does it
# at start; this catches a namespace or an attribute added later).
ensure_search_attributes() {
	local have sa missing=0
	have=$("$BIN/temporal" operator search-attribute list --address "$TEMPORAL_ADDRESS" \
		--namespace "$TEMPORAL_NAMESPACE" --command-timeout 10s 2>&1) ||
		die "temporal operator search-attribute list failed: $have"
	for sa in "${SEARCH_ATTRIBUTES[@]}"; do
		if ! grep -qw -- "${sa%%=*}" <<<"$have"; then
			missing=1
			"$BIN/temporal" operator search-attribute create --address "$TEMPORAL_ADDRESS" \
				--namespace "$TEMPORAL_NAMESPACE" --name "${sa%%=*}" --type "${sa#*=}" \
				--command-timeout 10s >/dev/null ||
				die "could not register search attribute ${sa%%=*}"
			log "Temporal: registered search attribute $sa"
		fi
	done
	[ "$missing" = 1 ] || log "Temporal: search attributes ${SEARCH_ATTRIBUTES[*]%%=*} present"
}

# ---------------------------------------------------------------- Mailpit

mailpit_healthy() {
	"$MAILPIT_BIN" readyz --listen "$MAILPIT_IP:$MAILPIT_HTTP_PORT" >/dev/null 2>&1 &&
		port_open "$MAILPIT_IP" "$MAILPIT_SMTP_PORT"
}

start_mailpit() {
	local pid
	if pid=$(pid_alive "$RUN/mailpit.pid" "$BIN/"); then
		log "Mailpit: already running (pid $pid)"
		return 0
	fi
	start_bg "$RUN/mailpit.pid" "$LOGS/mailpit.log" "$MAILPIT_BIN" \
		--smtp "$MAILPIT_IP:$MAILPIT_SMTP_PORT" --listen "$MAILPIT_IP:$MAILPIT_HTTP_PORT" \
		--max 0 --disable-version-check --database "$DATA_DIR/mailpit.db" \
		--smtp-auth-accept-any --smtp-auth-allow-insecure --smtp-disable-rdns
	log "Mailpit: started $(basename "$MAILPIT_BIN") (pid $(cat "$RUN/mailpit.pid")), log $(rel "$LOGS/mailpit.log")"
}

# The web UI is a real page only when the binary embeds the npm-built assets.
check_mailpit_ui() {
	local html js
	html=$(http_get "$MAILPIT_URL/" || true)
	js=$(http_get "$MAILPIT_URL/dist/app.js" | head -c 20000 || true)
	if [[ "$html" == *dist/app.js* ]] && [ "${#js}" -ge 10000 ]; then
		log "Mailpit: web UI serves its page and app.js"
	else
		log "warning: the Mailpit web UI at $MAILPIT_URL/ is blank (no dist/app.js); rebuild it with FORCE=1 scripts/tools.sh mailpit-ui"
	fi
}

# ---------------------------------------------------------------- commands

# Before starting anything: the ports of a service this stack is about to
# start must be free (a leftover server, or the other stack with overridden
# ports, would otherwise answer the health checks in its place).
preflight_ports() {
	local busy=()
	if ! pid_alive "$RUN/temporal.pid" "$BIN/" >/dev/null; then
		port_open "$TEMPORAL_IP" "$TEMPORAL_PORT" && busy+=("$TEMPORAL_IP:$TEMPORAL_PORT (TEMPORAL_PORT)")
		port_open "$TEMPORAL_IP" "$TEMPORAL_UI_PORT" && busy+=("$TEMPORAL_IP:$TEMPORAL_UI_PORT (TEMPORAL_UI_PORT)")
	fi
	if ! pid_alive "$RUN/mailpit.pid" "$BIN/" >/dev/null; then
		port_open "$MAILPIT_IP" "$MAILPIT_SMTP_PORT" && busy+=("$MAILPIT_IP:$MAILPIT_SMTP_PORT (MAILPIT_SMTP_PORT)")
		port_open "$MAILPIT_IP" "$MAILPIT_HTTP_PORT" && busy+=("$MAILPIT_IP:$MAILPIT_HTTP_PORT (MAILPIT_HTTP_PORT)")
	fi
	[ ${#busy[@]} -eq 0 ] && return 0
	die "in use by a process this stack did not start: ${busy[*]}
  stop that process, or choose other ports with the variables named"
}



cmd_up() {
	local t0=$SECONDS tools=(temporal mailpit)
	mkdir -p "$RUN" "$LOGS"
	[ "$MAILPIT_UI" = 1 ] && tools+=(mailpit-ui)
	"$ROOT/scripts/tools.sh" "${tools[@]}"
	preflight_ports
	ensure_postgres
	start_temporal
	start_mailpit
	wait_for Temporal temporal_healthy "$RUN/temporal.pid" "$LOGS/temporal.log"
	ensure_search_attributes
	wait_for Mailpit mailpit_healthy "$RUN/mailpit.pid" "$LOGS/mailpit.log"
	http_get "$TEMPORAL_UI_URL/" >/dev/null || log "warning: Temporal Web UI does not answer at $TEMPORAL_UI_URL/"
	[ "$MAILPIT_UI" = 1 ] && check_mailpit_ui
	log "up in $((SECONDS - t0))s: Temporal $TEMPORAL_ADDRESS (UI $TEMPORAL_UI_URL), Mailpit SMTP $MAILPIT_IP:$MAILPIT_SMTP_PORT (UI/API $MAILPIT_URL)"
	log "environment: eval \"\$(STACK=$STACK scripts/stack.sh env)\""
}

cmd_down() {
	stop_pid "$RUN/mailpit.pid" "$BIN/" Mailpit
	stop_pid "$RUN/temporal.pid" "$BIN/" Temporal
	if [ -f "$RUN/postgres.cluster" ]; then
		local ver name other d
		read -r ver name <"$RUN/postgres.cluster"
		# Another stack of this checkout still running keeps the cluster up and
		# takes over the duty to stop it.
		for d in "$ROOT"/.data/*/run; do
			[ "$d" = "$RUN" ] && continue
			if pid_alive "$d/temporal.pid" "$BIN/" >/dev/null || pid_alive "$d/mailpit.pid" "$BIN/" >/dev/null; then
				other=$d
				break
			fi
		done
		if [ -n "${other:-}" ]; then
			mv -f "$RUN/postgres.cluster" "$other/postgres.cluster"
			log "PostgreSQL $ver/$name: left running for the stack in $(rel "$other")"
		else
			pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" stop || true
			rm -f "$RUN/postgres.cluster"
			log "PostgreSQL $ver/$name: stopped (this script had started it)"
		fi
	fi
}

cmd_status() {
	local ok=0 pid
	echo "stack $STACK (data $(rel "$DATA_DIR"))"
	if pid=$(pid_alive "$RUN/temporal.pid" "$BIN/" 2>/dev/null); then
		if temporal_healthy; then
			echo "  temporal  up       pid $pid  grpc $TEMPORAL_ADDRESS  ui $TEMPORAL_UI_URL"
		else
			echo "  temporal  UNHEALTHY pid $pid  grpc $TEMPORAL_ADDRESS (see $(rel "$LOGS/temporal.log"))"
			ok=1
		fi
	else
		echo "  temporal  down"
		ok=1
	fi
	if pid=$(pid_alive "$RUN/mailpit.pid" "$BIN/" 2>/dev/null); then
		if mailpit_healthy; then
			echo "  mailpit   up       pid $pid  smtp $MAILPIT_IP:$MAILPIT_SMTP_PORT  ui/api $MAILPIT_URL"
		else
			echo "  mailpit   UNHEALTHY pid $pid (see $(rel "$LOGS/mailpit.log"))"
			ok=1
		fi
	else
		echo "  mailpit   down"
		ok=1
	fi
	parse_pg_url
	local owner="not started by this stack"
	[ -f "$RUN/postgres.cluster" ] && owner="cluster $(cat "$RUN/postgres.cluster") started by this stack"
	if pg_reachable; then
		echo "  postgres  up       $PG_HOST:$PG_PORT  ($owner)"
	else
		echo "  postgres  down     $PG_HOST:$PG_PORT"
		ok=1
	fi
	return $ok
}

cmd_env() {
	local v
	for v in \
		"TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS" \
		"DATABASE_URL=$DATABASE_URL" \
		"SMTP_HOST=$MAILPIT_IP" \
		"SMTP_PORT=$MAILPIT_SMTP_PORT" \
		"MAILPIT_API_URL=$MAILPIT_URL" \
		"TEMPORAL_UI_URL=$TEMPORAL_UI_URL" \
		"MAILPIT_UI_URL=$MAILPIT_URL"; do
		printf 'export %s=%s\n' "${v%%=*}" "$(sq "${v#*=}")"
	done
	[ "$TEMPORAL_NAMESPACE" != default ] && printf 'export TEMPORAL_NAMESPACE=%s\n' "$(sq "$TEMPORAL_NAMESPACE")"
	return 0
}

cmd_logs() {
	tail -n "${LINES:-50}" -F "$LOGS"/*.log
}

case "${1:-}" in
up) cmd_up ;;
down | stop) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
logs) cmd_logs ;;
restart) cmd_down && cmd_up ;;
*)
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
