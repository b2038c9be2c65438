#!/usr/bin/env bash
# A real Temporal server (go.temporal.io/server, pinned in
# tools/temporal-server/go.mod) with PostgreSQL persistence and SQL
# (PostgreSQL) visibility, one process running every service, plus a Mailpit
# of its own — on ports of its own, so it runs beside the demo, test and
# bench stacks. `make cluster-test` runs `scripts/cluster.sh test`.
#
#   scripts/cluster.sh test     up, e2e tests, bench (limits, signups, events,
#                               broadcast), a side-by-side table, down (also on failure)
#   scripts/cluster.sh up       build what is missing, fresh databases + schemas,
#                               server config, start, namespace + search attributes, Mailpit
#   scripts/cluster.sh down     stop what `up` started (PID files only), drop its databases
#   scripts/cluster.sh status   what runs; exit 0 only when all is healthy
#   scripts/cluster.sh env      `export VAR=value` lines for the e2e tests / the worker
#   scripts/cluster.sh logs     tail the logs
#   scripts/cluster.sh tools    build .cache/bin/temporal-server and temporal-sql-tool only
#   scripts/cluster.sh compare DEV.json REAL.json   the side-by-side table of two bench results
#
# Knobs: DATABASE_URL (the PostgreSQL server; default the test stack's
# postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable), CLUSTER_DB and
# CLUSTER_VISIBILITY_DB (temporal_cluster, temporal_cluster_visibility:
# dropped and created by every `up` of a stopped cluster, dropped by `down`
# unless CLUSTER_KEEP_DBS=1), CLUSTER_FRONTEND_PORT (7283; the other
# services' ports follow from it, see docs/local-stack.md),
# CLUSTER_MAILPIT_SMTP_PORT (1066), CLUSTER_MAILPIT_HTTP_PORT (8066),
# CLUSTER_HISTORY_SHARDS (4), CLUSTER_LOG_LEVEL (warn), CLUSTER_TIMEOUT
# (seconds to wait for health, 180), CLUSTER_DATA_DIR (.data/cluster).
# `test` only: CLUSTER_E2E=0 / CLUSTER_BENCH=0 skip a part,
# CLUSTER_E2E_FLAGS (extra `go test` flags, e.g. '-run TestSignup'),
# CLUSTER_BENCH_FLAGS (replace the bench's phases/sizes), CLUSTER_DEV_BENCH=1
# (then run the same bench on a dev server of its own, scripts/stack.sh on
# :7273 and Mailpit :1056/:8056, data .data/cluster-dev, for the side-by-side
# table), else CLUSTER_DEV_RESULTS (a dev-server results JSON to compare with;
# default the newest .data/bench/results/*.json of `make bench` with figures in common).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_PREFIX=cluster
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

BIN="$ROOT/.cache/bin"
TOOLS_MOD="$ROOT/tools/temporal-server"
SERVER_MOD=go.temporal.io/server
# Bump when the way the binaries are built changes.
RECIPE=1

IP=127.0.0.1
FRONTEND_PORT=${CLUSTER_FRONTEND_PORT:-7283}
# The Temporal defaults (7233 frontend, 7234 history, 7235 matching, 7239
# worker, 6933.. membership, 7243 HTTP) shifted by the frontend's offset.
off=$((FRONTEND_PORT - 7233))
HISTORY_PORT=$((7234 + off)) MATCHING_PORT=$((7235 + off)) WORKER_PORT=$((7239 + off))
FRONTEND_MEMBER_PORT=$((6933 + off)) HISTORY_MEMBER_PORT=$((6934 + off))
MATCHING_MEMBER_PORT=$((6935 + off)) WORKER_MEMBER_PORT=$((6939 + off))
HTTP_PORT=$((7243 + off))
MAILPIT_SMTP_PORT=${CLUSTER_MAILPIT_SMTP_PORT:-1066}
MAILPIT_HTTP_PORT=${CLUSTER_MAILPIT_HTTP_PORT:-8066}
NAMESPACE=default
SHARDS=${CLUSTER_HISTORY_SHARDS:-4}
SERVER_LOG_LEVEL=${CLUSTER_LOG_LEVEL:-warn}
TIMEOUT=${CLUSTER_TIMEOUT:-180}
DB=${CLUSTER_DB:-temporal_cluster}
VIS_DB=${CLUSTER_VISIBILITY_DB:-temporal_cluster_visibility}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
DATA_DIR=${CLUSTER_DATA_DIR:-$ROOT/.data/cluster}
RUN="$DATA_DIR/run"
LOGS="$DATA_DIR/log"
CONF="$DATA_DIR/config"

ADDRESS="$IP:$FRONTEND_PORT"
MAILPIT_URL="http://$IP:$MAILPIT_HTTP_PORT"
SERVER_BIN="$BIN/temporal-server"
SQL_TOOL="$BIN/temporal-sql-tool"
CLI="$BIN/temporal"
MAILPIT_BIN="$BIN/mailpit"

# The same custom search attributes as scripts/stack.sh registers on the dev server.
SEARCH_ATTRIBUTES=(JourneyStage=Keyword LeadScore=Int CustomerID=Keyword CampaignVersion=Keyword)


# ---------------------------------------------------------------- build

pinned_server() {
	local v
	v=$(awk -v m="$SERVER_MOD" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$TOOLS_MOD/go.mod")
	[ -n "$v" ] || die "$SERVER_MOD is not required in tools/temporal-server/go.mod"
	printf '%s\n' "$v"
}

server_stamp() {
	printf '%s@%s %s go.sum:%s recipe:%s\n' "$SERVER_MOD" "$(pinned_server)" "$(go env GOVERSION)" \
		"$(sha256sum "$TOOLS_MOD/go.sum" | cut -c1-16)" "$RECIPE"
}

# Builds .cache/bin/temporal-server (go.temporal.io/server/cmd/server) and
# .cache/bin/temporal-sql-tool (cmd/tools/sql) when missing or when the stamp
# (pinned version, Go version, go.sum hash, recipe) changed.
build_server() {
	local s t0
	mkdir -p "$BIN"
	s=$(server_stamp)
	(
		# The lock of scripts/tools.sh: one build into .cache/bin at a time.
		exec 8>"$BIN/.lock"
		flock 8
		if [ "${FORCE:-0}" != 1 ] && [ -x "$SERVER_BIN" ] && [ -x "$SQL_TOOL" ] &&
			[ "$(cat "$BIN/.temporal-server.stamp" 2>/dev/null)" = "$s" ]; then
			exit 0
		fi
		log "building Temporal server $(pinned_server) and temporal-sql-tool (3-5 minutes on 2 cores from an empty Go build cache, seconds from a warm one)..."
		t0=$(date +%s)
		rm -rf "$BIN/.temporal-server.build"
		mkdir -p "$BIN/.temporal-server.build"
		(cd "$TOOLS_MOD" && go build -buildvcs=false -ldflags '-s -w' -o "$BIN/.temporal-server.build/" \
			go.temporal.io/server/cmd/server go.temporal.io/server/cmd/tools/sql)
		mv -f "$BIN/.temporal-server.build/server" "$SERVER_BIN"
		mv -f "$BIN/.temporal-server.build/sql" "$SQL_TOOL"
		rmdir "$BIN/.temporal-server.build"
		printf '%s\n' "$s" >"$BIN/.temporal-server.stamp"
		log "built .cache/bin/temporal-server and .cache/bin/temporal-sql-tool in $(($(date +%s) - t0))s"
	)
}

cmd_tools() {
	build_server
	# The CLI (operator commands: namespace, search attributes, health) and Mailpit.
	"$ROOT/scripts/tools.sh" temporal mailpit
}

# The schema files ship in the server module (downloaded into the module cache).
schema_dir() {
	local d
	d=$(cd "$TOOLS_MOD" && go mod download "$SERVER_MOD" && go list -m -f '{{.Dir}}' "$SERVER_MOD") ||
		die "cannot locate $SERVER_MOD in the module cache"
	[ -d "$d/schema/postgresql/v12/temporal/versioned" ] || die "no schema/postgresql/v12 in $d"
	printf '%s/schema/postgresql/v12\n' "$d"
}

# ---------------------------------------------------------------- PostgreSQL

# Splits DATABASE_URL into PG_HOST PG_PORT PG_USER PG_PASSWORD (percent-escapes
# in the user and password are decoded).
parse_pg_url() {
	local u=${DATABASE_URL%%\?*} rest authority userinfo=""
	rest=${u#*://}
	authority=${rest%%/*}
	if [[ "$authority" == *@* ]]; then
		userinfo=${authority%@*}
		authority=${authority##*@}
	fi
	authority=${authority%%,*}
	PG_USER=${userinfo%%:*}
	PG_PASSWORD=""
	[[ "$userinfo" == *:* ]] && PG_PASSWORD=${userinfo#*:}
	PG_USER=$(printf '%b' "${PG_USER//%/\\x}")
	PG_PASSWORD=$(printf '%b' "${PG_PASSWORD//%/\\x}")
	PG_USER=${PG_USER:-postgres}
	if [[ "$authority" == \[*\]* ]]; then
		PG_HOST=${authority%%]*}
		PG_HOST=${PG_HOST#[}
		PG_PORT=${authority##*]}
		PG_PORT=${PG_PORT#:}
	else
		PG_HOST=${authority%%:*}
		PG_PORT=""
		[[ "$authority" == *:* ]] && PG_PORT=${authority##*:}
	fi
	PG_HOST=${PG_HOST:-127.0.0.1}
	[ "$PG_HOST" = localhost ] && PG_HOST=127.0.0.1
	PG_PORT=${PG_PORT:-5432}
}



# The server found as scripts/stack.sh finds it: DATABASE_URL when it answers,
# else the local Debian cluster for its port (started, and stopped by `down`).
ensure_postgres() {
	parse_pg_url
	if pg_reachable; then
		log "PostgreSQL: reachable at $PG_HOST:$PG_PORT (user $PG_USER)"
		return 0
	fi
	pg_local && command -v pg_lsclusters >/dev/null 2>&1 ||
		die "PostgreSQL at $PG_HOST:$PG_PORT (DATABASE_URL) is not reachable; start it (make up starts or installs a local one) or set DATABASE_URL"
	local ver name
	read -r ver name < <(pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }') || true
	[ -n "${ver:-}" ] || die "PostgreSQL is not reachable at $PG_HOST:$PG_PORT and no local cluster is configured for that port"
	log "starting PostgreSQL cluster $ver/$name (pg_ctlcluster)"
	pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start || die "pg_ctlcluster $ver $name start failed"
	echo "$ver $name" >"$RUN/postgres.cluster"
	for _ in $(seq 1 60); do
		pg_reachable && return 0
		sleep 0.5
	done
	die "PostgreSQL cluster $ver/$name started but $PG_HOST:$PG_PORT does not answer"
}

# sql_tool DB ARGS...: temporal-sql-tool on DATABASE_URL's server (the
# password goes by environment, not on the command line).
sql_tool() {
	local db=$1
	shift
	SQL_PASSWORD="$PG_PASSWORD" "$SQL_TOOL" --plugin postgres12 --ep "$PG_HOST" -p "$PG_PORT" \
		-u "$PG_USER" --db "$db" "$@"
}

# Fresh databases with the v12 schemas, as the server's own Makefile
# (install-schema-postgresql12) and the auto-setup image do: create, the
# versioning tables at 0.0, then every versioned step.
setup_databases() {
	local schemas t0=$SECONDS
	schemas=$(schema_dir)
	local pair db dir
	for pair in "$DB:temporal" "$VIS_DB:visibility"; do
		db=${pair%%:*} dir=${pair#*:}
		sql_tool "$db" drop-database -f >/dev/null 2>&1 || true
		sql_tool "$db" create-database >>"$LOGS/schema.log" 2>&1 || die "create database $db failed (see $(rel "$LOGS/schema.log"))"
		sql_tool "$db" setup-schema -v 0.0 >>"$LOGS/schema.log" 2>&1 || die "setup-schema $db failed (see $(rel "$LOGS/schema.log"))"
		sql_tool "$db" update-schema -d "$schemas/$dir/versioned" >>"$LOGS/schema.log" 2>&1 ||
			die "update-schema $db failed (see $(rel "$LOGS/schema.log"))"
	done
	log "PostgreSQL: databases $DB and $VIS_DB created, schemas $SERVER_MOD@$(pinned_server)/schema/postgresql/v12/{temporal,visibility} applied in $((SECONDS - t0))s"
}

drop_databases() {
	[ -x "$SQL_TOOL" ] || return 0
	parse_pg_url
	pg_reachable || return 0
	local db
	for db in "$DB" "$VIS_DB"; do
		sql_tool "$db" drop-database -f >/dev/null 2>&1 || log "warning: could not drop database $db"
	done
	log "PostgreSQL: dropped $DB and $VIS_DB"
}

# ---------------------------------------------------------------- config

yq() { printf "'%s'" "${1//\'/\'\'}"; } # YAML single-quoted scalar

write_config() {
	mkdir -p "$CONF"
	local store name
	{
		echo "# Written by scripts/cluster.sh up: a development-style single-process"
		echo "# Temporal $(pinned_server) (every service in one process), PostgreSQL persistence"
		echo "# and SQL visibility. Format: config/development-postgres12.yaml of the server module."
		echo "log:"
		echo "  stdout: true"
		echo "  level: $SERVER_LOG_LEVEL"
		echo "persistence:"
		echo "  defaultStore: postgres-default"
		echo "  visibilityStore: postgres-visibility"
		echo "  numHistoryShards: $SHARDS"
		echo "  datastores:"
		for store in "postgres-default:$DB:20" "postgres-visibility:$VIS_DB:10"; do
			IFS=: read -r name db conns <<<"$store"
			echo "    $name:"
			echo "      sql:"
			echo "        pluginName: postgres12"
			echo "        databaseName: $(yq "$db")"
			echo "        connectAddr: $(yq "$PG_HOST:$PG_PORT")"
			echo "        connectProtocol: tcp"
			echo "        user: $(yq "$PG_USER")"
			echo "        password: $(yq "$PG_PASSWORD")"
			echo "        maxConns: $conns"
			echo "        maxIdleConns: $conns"
			echo "        maxConnLifetime: 1h"
		done
		cat <<EOF
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "$IP"
  pprof:
    port: 0
services:
  frontend:
    rpc:
      grpcPort: $FRONTEND_PORT
      membershipPort: $FRONTEND_MEMBER_PORT
      bindOnIP: "$IP"
      httpPort: $HTTP_PORT
  history:
    rpc:
      grpcPort: $HISTORY_PORT
      membershipPort: $HISTORY_MEMBER_PORT
      bindOnIP: "$IP"
  matching:
    rpc:
      grpcPort: $MATCHING_PORT
      membershipPort: $MATCHING_MEMBER_PORT
      bindOnIP: "$IP"
  worker:
    rpc:
      grpcPort: $WORKER_PORT
      membershipPort: $WORKER_MEMBER_PORT
      bindOnIP: "$IP"
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "$ADDRESS"
      httpAddress: "$IP:$HTTP_PORT"
dcRedirectionPolicy:
  policy: noop
archival:
  history:
    state: disabled
  visibility:
    state: disabled
namespaceDefaults:
  archival:
    history:
      state: disabled
    visibility:
      state: disabled
publicClient:
  hostPort: "$ADDRESS"
dynamicConfigClient:
  filepath: "$CONF/dynamicconfig.yaml"
  pollInterval: 10s
EOF
	} >"$CONF/cluster.yaml"
	{
		echo "# Written by scripts/cluster.sh up: deploy/temporal-dynamicconfig.yaml (the"
		echo "# product's deployment settings), then what the local cluster adds."
		echo
		cat "$ROOT/deploy/temporal-dynamicconfig.yaml"
		cat <<'EOF'

# Visibility API rate per frontend (default 10/s): the e2e tests poll
# ListWorkflowExecutions; the CLI dev server raises it to 100 as well.
frontend.namespaceRPS.visibility:
  - value: 100
EOF
	} >"$CONF/dynamicconfig.yaml"
	"$SERVER_BIN" validate-dynamic-config "$CONF/dynamicconfig.yaml" >>"$LOGS/schema.log" 2>&1 ||
		die "invalid dynamic config $(rel "$CONF/dynamicconfig.yaml"): $(tail -n 5 "$LOGS/schema.log")"
}

# ---------------------------------------------------------------- services

temporal_healthy() {
	"$CLI" operator cluster health --address "$ADDRESS" --command-timeout 3s >/dev/null 2>&1
}

namespace_ready() {
	"$CLI" operator namespace describe --address "$ADDRESS" --namespace "$NAMESPACE" --command-timeout 3s >/dev/null 2>&1
}

mailpit_healthy() {
	"$MAILPIT_BIN" readyz --listen "$IP:$MAILPIT_HTTP_PORT" >/dev/null 2>&1 && port_open "$IP" "$MAILPIT_SMTP_PORT"
}

start_server() {
	start_bg "$RUN/temporal.pid" "$LOGS/temporal.log" "$SERVER_BIN" \
		--root "$DATA_DIR" --config config --env cluster --allow-no-auth start
	log "Temporal server: started (pid $(cat "$RUN/temporal.pid")), log $(rel "$LOGS/temporal.log")"
}



# retry SECONDS WHAT CMD...: CMD until it succeeds (the namespace registry
# and the search-attribute caches catch up within seconds).
retry() {
	local secs=$1 what=$2 out deadline
	shift 2
	deadline=$((SECONDS + secs))
	until out=$("$@" 2>&1); do
		[ "$SECONDS" -lt "$deadline" ] || die "$what failed after ${secs}s: $out"
		sleep 1
	done
}

# Registers the namespace and the search attributes on a fresh cluster.
register() {
	namespace_ready || retry 60 "namespace create $NAMESPACE" "$CLI" operator namespace create --address "$ADDRESS" \
		--namespace "$NAMESPACE" --retention 24h --command-timeout 10s
	log "Temporal: namespace $NAMESPACE registered"
	local sa
	for sa in "${SEARCH_ATTRIBUTES[@]}"; do
		retry 60 "search attribute ${sa%%=*}" "$CLI" operator search-attribute create --address "$ADDRESS" \
			--namespace "$NAMESPACE" --name "${sa%%=*}" --type "${sa#*=}" --command-timeout 10s
	done
	log "Temporal: search attributes ${SEARCH_ATTRIBUTES[*]} registered"
}

search_attributes_present() {
	local have sa
	have=$("$CLI" operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE" --command-timeout 5s 2>&1) || return 1
	for sa in "${SEARCH_ATTRIBUTES[@]}"; do
		grep -qw -- "${sa%%=*}" <<<"$have" || return 1
	done
}

preflight_ports() {
	local busy=() p
	if ! pid_alive "$RUN/temporal.pid" "$BIN/" >/dev/null; then
		for p in "$FRONTEND_PORT" "$HISTORY_PORT" "$MATCHING_PORT" "$WORKER_PORT" "$HTTP_PORT" \
			"$FRONTEND_MEMBER_PORT" "$HISTORY_MEMBER_PORT" "$MATCHING_MEMBER_PORT" "$WORKER_MEMBER_PORT"; do
			port_open "$IP" "$p" && busy+=("$IP:$p")
		done
	fi
	if ! pid_alive "$RUN/mailpit.pid" "$BIN/" >/dev/null; then
		for p in "$MAILPIT_SMTP_PORT" "$MAILPIT_HTTP_PORT"; do
			port_open "$IP" "$p" && busy+=("$IP:$p")
		done
	fi
	[ ${#busy[@]} -eq 0 ] && return 0
	die "in use by a process this script did not start: ${busy[*]}
  stop it, or move the cluster with CLUSTER_FRONTEND_PORT / CLUSTER_MAILPIT_SMTP_PORT / CLUSTER_MAILPIT_HTTP_PORT"
}

cmd_up() {
	local t0=$SECONDS pid
	mkdir -p "$RUN" "$LOGS"
	cmd_tools
	preflight_ports
	ensure_postgres
	if pid=$(pid_alive "$RUN/temporal.pid" "$BIN/"); then
		log "Temporal server: already running (pid $pid)"
	else
		setup_databases
		write_config
		# First start on the fresh databases: register the namespace and the
		# search attributes, then restart, so that every service's namespace
		# registry and search-attribute cache start with them (otherwise they
		# catch up within a minute, and the first tests would race them).
		start_server
		wait_for "Temporal server" temporal_healthy "$RUN/temporal.pid" "$LOGS/temporal.log"
		log "Temporal server: healthy after $((SECONDS - t0))s; registering"
		register
		stop_pid "$RUN/temporal.pid" "$BIN/" "Temporal server"
		start_server
		wait_for "Temporal server" temporal_healthy "$RUN/temporal.pid" "$LOGS/temporal.log"
	fi
	wait_for "namespace $NAMESPACE" namespace_ready "$RUN/temporal.pid" "$LOGS/temporal.log"
	wait_for "search attributes" search_attributes_present "$RUN/temporal.pid" "$LOGS/temporal.log"
	if pid=$(pid_alive "$RUN/mailpit.pid" "$BIN/"); then
		log "Mailpit: already running (pid $pid)"
	else
		rm -f "$DATA_DIR"/mailpit.db*
		start_bg "$RUN/mailpit.pid" "$LOGS/mailpit.log" "$MAILPIT_BIN" \
			--smtp "$IP:$MAILPIT_SMTP_PORT" --listen "$IP:$MAILPIT_HTTP_PORT" \
			--max 0 --disable-version-check --database "$DATA_DIR/mailpit.db" \
			--smtp-auth-accept-any --smtp-auth-allow-insecure --smtp-disable-rdns
		log "Mailpit: started (pid $(cat "$RUN/mailpit.pid")), log $(rel "$LOGS/mailpit.log")"
	fi
	wait_for Mailpit mailpit_healthy "$RUN/mailpit.pid" "$LOGS/mailpit.log"
	log "up in $((SECONDS - t0))s: Temporal $(pinned_server) $ADDRESS (PostgreSQL $PG_HOST:$PG_PORT, databases $DB, $VIS_DB), Mailpit SMTP $IP:$MAILPIT_SMTP_PORT, API $MAILPIT_URL"
	log "environment: eval \"\$(scripts/cluster.sh env)\""
}

cmd_down() {
	stop_pid "$RUN/mailpit.pid" "$BIN/" Mailpit
	stop_pid "$RUN/temporal.pid" "$BIN/" "Temporal server"
	if [ "${CLUSTER_KEEP_DBS:-0}" = 1 ]; then
		log "PostgreSQL: keeping $DB and $VIS_DB (CLUSTER_KEEP_DBS=1)"
	else
		drop_databases
	fi
	if [ -f "$RUN/postgres.cluster" ]; then
		local ver name
		read -r ver name <"$RUN/postgres.cluster"
		pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" stop || true
		rm -f "$RUN/postgres.cluster"
		log "PostgreSQL $ver/$name: stopped (this script had started it)"
	fi
}

cmd_status() {
	local ok=0 pid
	echo "real Temporal cluster (data $(rel "$DATA_DIR"))"
	if pid=$(pid_alive "$RUN/temporal.pid" "$BIN/" 2>/dev/null) && temporal_healthy; then
		echo "  temporal  up       pid $pid  grpc $ADDRESS  http $IP:$HTTP_PORT  ($("$SERVER_BIN" --version 2>/dev/null))"
	elif [ -n "${pid:-}" ]; then
		echo "  temporal  UNHEALTHY pid $pid (see $(rel "$LOGS/temporal.log"))"
		ok=1
	else
		echo "  temporal  down"
		ok=1
	fi
	if pid=$(pid_alive "$RUN/mailpit.pid" "$BIN/" 2>/dev/null) && mailpit_healthy; then
		echo "  mailpit   up       pid $pid  smtp $IP:$MAILPIT_SMTP_PORT  api $MAILPIT_URL"
	else
		echo "  mailpit   down"
		ok=1
	fi
	return $ok
}

cmd_env() {
	local v
	for v in "TEMPORAL_ADDRESS=$ADDRESS" "DATABASE_URL=$DATABASE_URL" "SMTP_HOST=$IP" \
		"SMTP_PORT=$MAILPIT_SMTP_PORT" "MAILPIT_API_URL=$MAILPIT_URL"; do
		printf 'export %s=%s\n' "${v%%=*}" "$(sq "${v#*=}")"
	done
}

# ---------------------------------------------------------------- test

# compare DEV.json REAL.json: a markdown table of the figures both runs have
# (same phase and name), each with its fraction of its limit.
cmd_compare() {
	command -v jq >/dev/null 2>&1 || {
		log "jq is not installed: no side-by-side table (apt-get install jq)"
		return 0
	}
	jq -r -n --slurpfile d "$1" --slurpfile r "$2" '
		def n: if . == null then "–" elif . >= 100 then (. | round | tostring)
			elif . >= 10 then ((. * 10 | round) / 10 | tostring) else ((. * 100 | round) / 100 | tostring) end;
		def cell(f): if f == null then "–" else (f.value | n) + " " + f.unit
			+ (if (f.fraction // 0) > 0 then " (" + ((f.fraction * 100 | round) / 100 | tostring) + "×)" else "" end)
			+ (if (f.p50 // 0) > 0 then ", p50 " + ((f.p50 / 1e6) | round | tostring) + " ms" else "" end) end;
		($d[0].figures | map({key: (.phase + "|" + .name), value: .}) | from_entries) as $dev
		| "| phase | figure | dev server (SQLite) | real server (PostgreSQL) | real ÷ dev |",
		  "|---|---|---:|---:|---:|",
		  ($r[0].figures[] as $f
		   | ($dev[$f.phase + "|" + $f.name]) as $g
		   | "| \($f.phase) | \($f.name | gsub("\\(same dev server\\)"; "(same server)") | gsub("\\|"; "\\|")) | \(cell($g)) | \(cell($f)) | "
		     + (if $g != null and $g.value > 0 then ((($f.value / $g.value) * 100 | round) / 100 | tostring) + "×" else "–" end) + " |")'
}

# The dev server stack of CLUSTER_DEV_BENCH=1: scripts/stack.sh with ports
# and a data dir of its own (not .data/bench, which a `make bench` of
# someone else may be using).
DEV_DATA="$DATA_DIR-dev"
DEV_TEMPORAL_PORT=${CLUSTER_DEV_TEMPORAL_PORT:-7273}
DEV_SMTP_PORT=${CLUSTER_DEV_MAILPIT_SMTP_PORT:-1056}
DEV_HTTP_PORT=${CLUSTER_DEV_MAILPIT_HTTP_PORT:-8056}
dev_stack() {
	STACK=test TEMPORAL_PORT=$DEV_TEMPORAL_PORT TEMPORAL_UI_PORT=$((DEV_TEMPORAL_PORT + 1000)) \
		MAILPIT_SMTP_PORT=$DEV_SMTP_PORT MAILPIT_HTTP_PORT=$DEV_HTTP_PORT STACK_DATA_DIR="$DEV_DATA" \
		DATABASE_URL="$DATABASE_URL" "$ROOT/scripts/stack.sh" "$@"
}

# run_bench DATA TEMPORAL SMTP MAILPIT_URL TEMPORAL_BIN: the harness of `make
# bench` with the phases of CLUSTER_BENCH_FLAGS; its report goes to
# DATA/benchmarks.md (docs/benchmarks.md's generated part stays the one of
# make bench), its raw results to DATA/results/. -data is also where it
# reads run/temporal.pid and run/mailpit.pid for its CPU columns.
run_bench() {
	local data=$1 rc
	rm -f "$data/benchmarks.md"
	set +e
	# shellcheck disable=SC2086 # a list of flags
	"$DATA_DIR/bin/lifecycle-bench" -temporal "$2" -smtp "$3" -mailpit "$4" -temporal-bin "$5" \
		-postgres "${BENCH_POSTGRES_URL:-$DATABASE_URL}" -data "$data" -worker-bin "$DATA_DIR/bin/worker" \
		-profiles "$data/profiles" -out "$data/benchmarks.md" \
		${CLUSTER_BENCH_FLAGS:--phases limits,signups,events,broadcast} 2>&1 | tee -a "$LOGS/bench.log"
	rc=${PIPESTATUS[0]}
	set -e
	return "$rc"
}

newest() { ls -t "$1"/results/*.json 2>/dev/null | head -n1 || true; }

# comparable DIR REAL: the newest results JSON in DIR/results with at least
# one figure (phase and name) that REAL has too (make bench runs of other
# phases, e.g. broadcast-scale, have none).
comparable() {
	local f
	command -v jq >/dev/null 2>&1 || return 0
	for f in $(ls -t "$1"/results/*.json 2>/dev/null); do
		if jq -e -n --slurpfile a "$f" --slurpfile b "$2" \
			'([$a[0].figures[]? | .phase + "|" + .name] - ([$a[0].figures[]? | .phase + "|" + .name] - [$b[0].figures[]? | .phase + "|" + .name])) | length > 0' >/dev/null 2>&1; then
			printf '%s\n' "$f"
			return 0
		fi
	done
}

cmd_test() {
	local t e2e_rc=skipped bench_rc=skipped dev_rc=skipped e2e_s=0 bench_s=0 dev_s=0 up_s results dev
	cd "$ROOT"
	T0=$SECONDS DEV_STARTED=""
	trap 'rc=$?; log "stopping what was started"; cmd_down || true; [ -z "$DEV_STARTED" ] || dev_stack down || true
		log "make cluster-test: exit $rc, $((SECONDS - T0))s end to end"; exit $rc' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	if ! command -v pg_dump >/dev/null 2>&1; then
		log "warning: pg_dump is missing (e2e TestErase* dump the CRM with it; apt-get install postgresql-client)"
	fi
	cmd_up
	up_s=$((SECONDS - T0))
	eval "$(cmd_env)"
	export LIFECYCLE_REQUIRE_STACK=1
	mkdir -p "$LOGS"
	: >"$LOGS/bench.log"

	if [ "${CLUSTER_E2E:-1}" != 0 ]; then
		t=$SECONDS
		log "== go test ./e2e/... against Temporal $ADDRESS (real server) ${CLUSTER_E2E_FLAGS:-}"
		set +e
		# shellcheck disable=SC2086 # a list of flags
		go test ./e2e/... -count=1 -timeout 40m ${CLUSTER_E2E_FLAGS:-} 2>&1 | tee "$LOGS/e2e.log"
		e2e_rc=${PIPESTATUS[0]}
		set -e
		[ "$e2e_rc" = 0 ] ||
			log "e2e FAILED (exit $e2e_rc): $(grep -E '^\s*--- FAIL|^panic: |^FAIL\s' "$LOGS/e2e.log" | head -n 20 | tr -s ' \t' ' ' | tr '\n' ';')"
		e2e_s=$((SECONDS - t))
	fi

	if [ "${CLUSTER_BENCH:-1}" != 0 ]; then
		t=$SECONDS
		log "== bench (${CLUSTER_BENCH_FLAGS:-phases limits,signups,events,broadcast}) against Temporal $ADDRESS (real server)"
		mkdir -p "$DATA_DIR/bin"
		go build -o "$DATA_DIR/bin/" ./worker
		go build -C tools/bench -o "$DATA_DIR/bin/" ./cmd/lifecycle-bench
		bench_rc=0
		run_bench "$DATA_DIR" "$ADDRESS" "$IP:$MAILPIT_SMTP_PORT" "$MAILPIT_URL" "$SERVER_BIN" || bench_rc=$?
		bench_s=$((SECONDS - t))
		results=$(newest "$DATA_DIR")
		log "bench report: $(rel "$DATA_DIR/benchmarks.md"), raw results: $(rel "${results:-none}")"

		if [ "${CLUSTER_DEV_BENCH:-0}" = 1 ]; then
			# The same phases on the dev server, right after, on the same
			# machine; the real server is stopped first so that it idles on no core.
			t=$SECONDS
			cmd_down
			log "== the same bench against a dev server (scripts/stack.sh, :$DEV_TEMPORAL_PORT, $(rel "$DEV_DATA"))"
			if ! pid_alive "$DEV_DATA/run/temporal.pid" "$BIN/" >/dev/null; then
				rm -f "$DEV_DATA"/temporal.db* "$DEV_DATA"/mailpit.db*
			fi
			DEV_STARTED=1
			dev_stack up
			dev_rc=0
			run_bench "$DEV_DATA" "$IP:$DEV_TEMPORAL_PORT" "$IP:$DEV_SMTP_PORT" "http://$IP:$DEV_HTTP_PORT" "$CLI" || dev_rc=$?
			dev_stack down
			DEV_STARTED=""
			dev_s=$((SECONDS - t))
			dev=$(newest "$DEV_DATA")
		else
			dev=${CLUSTER_DEV_RESULTS:-}
			[ -n "$dev" ] || [ -z "$results" ] || dev=$(comparable "$ROOT/.data/bench" "$results")
		fi
		if [ -n "$results" ] && [ -n "$dev" ]; then
			log "side by side with the dev server's run $(rel "$dev") (also in $(rel "$DATA_DIR/side-by-side.md")):"
			cmd_compare "$dev" "$results" | tee "$DATA_DIR/side-by-side.md"
		elif [ -n "$results" ]; then
			log "no dev-server results to compare with (CLUSTER_DEV_BENCH=1, or make bench first, or CLUSTER_DEV_RESULTS)"
		fi
	fi
	log "summary: up ${up_s}s, e2e ${e2e_s}s (exit $e2e_rc), bench ${bench_s}s (exit $bench_rc), dev-server bench ${dev_s}s (exit $dev_rc)"
	local r
	for r in "$e2e_rc" "$bench_rc" "$dev_rc"; do
		[ "$r" = 0 ] || [ "$r" = skipped ] || exit 1
	done
}

case "${1:-}" in
test) cmd_test ;;
up) cmd_up ;;
down | stop) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
logs) tail -n "${LINES:-50}" -F "$LOGS"/*.log ;;
tools) cmd_tools ;;
compare)
	[ $# -eq 3 ] || die "usage: scripts/cluster.sh compare DEV.json REAL.json"
	cmd_compare "$2" "$3"
	;;
*)
	sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
