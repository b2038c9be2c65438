# shellcheck shell=bash
# Helpers shared by scripts/stack.sh and scripts/demo.sh (sourced, not run).
# Background processes are tracked by PID files only: nothing here looks
# processes up by name.

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
LOG_PREFIX=${LOG_PREFIX:-stack}

log() { printf '[%s] %s\n' "$LOG_PREFIX" "$*" >&2; }
die() {
	printf '[%s] ERROR: %s\n' "$LOG_PREFIX" "$*" >&2
	exit 1
}

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

# port_open HOST PORT: something accepts TCP connections there.
port_open() {
	# shellcheck disable=SC2016 # $0 and $1 are expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# http_get URL: prints the body of a 200 response, fails otherwise. Uses curl
# when installed, else plain bash (/dev/tcp, HTTP/1.0; http://host:port/path).
http_get() (
	url=$1
	if command -v curl >/dev/null 2>&1; then
		exec curl -fsS --max-time 5 "$url" 2>/dev/null
	fi
	rest=${url#http://}
	hostport=${rest%%/*}
	path=/
	[ "$rest" != "$hostport" ] && path=/${rest#*/}
	host=${hostport%:*}
	port=${hostport##*:}
	exec 3<>"/dev/tcp/$host/$port" || exit 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$hostport" >&3
	resp=$(timeout 5 cat <&3) || exit 1
	case "${resp%%$'\r'*}" in
	HTTP/*" 200"*) ;;
	*) exit 1 ;;
	esac
	printf '%s' "${resp#*$'\r\n\r\n'}"
)

# alive PID: the process exists and is not a zombie.
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	[ -r "/proc/$1/stat" ] || return 0
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# pid_alive PIDFILE EXE_PREFIX: prints the PID when the file names a live
# process whose executable starts with EXE_PREFIX (so a recycled PID of some
# other program is never taken for ours). A stale file is removed.
pid_alive() {
	local f=$1 prefix=$2 pid exe
	[ -f "$f" ] || return 1
	pid=$(head -n1 "$f" 2>/dev/null || true)
	if [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid"; then
		if [ -e "/proc/$pid/exe" ]; then
			exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
			exe=${exe% (deleted)} # binary replaced by a rebuild while running
			if [[ "$exe" == "$prefix"* ]]; then
				echo "$pid"
				return 0
			fi
		elif [ ! -d /proc/self ]; then # no procfs: trust the PID file
			echo "$pid"
			return 0
		fi
	fi
	log "removing stale PID file ${f#"$ROOT"/}"
	rm -f "$f"
	return 1
}

# start_bg PIDFILE LOGFILE EXE ARGS...: runs EXE in its own session (Ctrl-C in
# the terminal does not reach it), stdin from /dev/null, output appended to
# LOGFILE, and writes its PID to PIDFILE.
start_bg() {
	local pidfile=$1 logfile=$2
	shift 2
	mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
	rm -f "$pidfile"
	printf '\n=== %s starting: %s\n' "$(date '+%F %T')" "$*" >>"$logfile"
	local launcher=()
	command -v setsid >/dev/null 2>&1 && launcher=(setsid)
	# The shell writes its own PID, then execs the program under that PID.
	# shellcheck disable=SC2016 # expanded by the inner sh
	"${launcher[@]}" sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$logfile" 2>&1 </dev/null &
	for _ in $(seq 1 50); do
		[ -s "$pidfile" ] && return 0
		sleep 0.1
	done
	die "could not start $1 (no PID file ${pidfile#"$ROOT"/})"
}

# stop_pid PIDFILE EXE_PREFIX NAME: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
	local f=$1 prefix=$2 name=$3 pid
	if ! pid=$(pid_alive "$f" "$prefix"); then
		log "$name: not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 300); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		log "$name (pid $pid) did not stop within 30s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	rm -f "$f"
	log "$name: stopped (pid $pid)"
}

# sq VALUE: VALUE single-quoted for the shell.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# Shared by the stack scripts (stack.sh, cluster.sh); they set ROOT, BIN,
# TIMEOUT and, for PostgreSQL, PG_HOST and PG_PORT.

# rel PATH: PATH relative to the repository, for messages.
rel() { printf '%s' "${1#"$ROOT"/}"; }

pg_local() { case "$PG_HOST" in 127.0.0.1 | localhost | ::1) return 0 ;; esac; return 1; }

pg_reachable() {
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -t 3 -d "$DATABASE_URL" >/dev/null 2>&1
	else
		port_open "$PG_HOST" "$PG_PORT"
	fi
}

# tail_log FILE: the last lines written since the latest start.
tail_log() {
	local n
	n=$(grep -n '^=== .* starting: ' "$1" 2>/dev/null | tail -n1 | cut -d: -f1)
	tail -n +"${n:-1}" "$1" 2>/dev/null | tail -n 40 >&2 || true
}

# wait_for NAME CHECK PIDFILE LOGFILE
wait_for() {
	local name=$1 check=$2 pidfile=$3 logfile=$4 deadline=$((SECONDS + TIMEOUT))
	until "$check"; do
		if ! pid_alive "$pidfile" "$BIN/" >/dev/null; then
			log "$name exited during start; last lines of $(rel "$logfile"):"
			tail_log "$logfile"
			exit 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "$name not healthy after ${TIMEOUT}s; last lines of $(rel "$logfile"):"
			tail_log "$logfile"
			exit 1
		fi
		sleep 0.25
	done
}
