#!/usr/bin/env bash
# Builds the local-stack tools and the linter into .cache/bin/ from the
# pinned tools modules (tools/temporal, tools/mailpit, tools/golangci-lint),
# so their dependency graphs stay out of the product's go.mod. A binary is
# rebuilt only when it is missing or when its stamp (pinned version + Go
# version + go.sum hash) changed.
#
#   scripts/tools.sh                 temporal + mailpit (plain: SMTP and API, blank web UI)
#   scripts/tools.sh mailpit-ui      mailpit with its web UI built with npm
#   scripts/tools.sh temporal mailpit mailpit-ui
#   scripts/tools.sh golangci-lint   the linter run by make lint and make test
#   FORCE=1 scripts/tools.sh ...     rebuild even if the stamp matches
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/.cache/bin"
SRC="$ROOT/.cache/src"
# Bump when the way a binary is built changes, so existing builds are redone.
RECIPE=2

log() { printf '[tools] %s\n' "$*" >&2; }
die() { printf '[tools] ERROR: %s\n' "$*" >&2; exit 1; }

if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		export PATH="/usr/local/go/bin:$PATH"
	else
		die "go is not installed (expected on PATH or at /usr/local/go/bin/go)"
	fi
fi

# pinned MODULE_DIR MODULE -> the version the tools module's go.mod pins.
pinned() {
	local v
	v=$(awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$1/go.mod")
	[ -n "$v" ] || die "$2 is not required in $1/go.mod"
	printf '%s\n' "$v"
}

# stamp MODULE_DIR MODULE EXTRA... -> the string recorded next to a binary.
stamp() {
	local dir=$1 mod=$2
	shift 2
	printf '%s@%s %s go.sum:%s recipe:%s %s\n' "$mod" "$(pinned "$dir" "$mod")" \
		"$(go env GOVERSION)" "$(sha256sum "$dir/go.sum" | cut -c1-16)" "$RECIPE" "$*"
}

# up_to_date NAME STAMP -> true when .cache/bin/NAME exists with that stamp.
up_to_date() {
	[ "${FORCE:-0}" != 1 ] && [ -x "$BIN/$1" ] && [ -f "$BIN/.$1.stamp" ] &&
		[ "$(cat "$BIN/.$1.stamp")" = "$2" ]
}

finish() { # NAME STAMP STARTED_AT
	mv -f "$BIN/$1.tmp" "$BIN/$1"
	printf '%s\n' "$2" >"$BIN/.$1.stamp"
	log "built .cache/bin/$1 in $(($(date +%s) - $3))s"
}

build_temporal() {
	local dir="$ROOT/tools/temporal" mod=github.com/temporalio/cli s v t0
	s=$(stamp "$dir" "$mod")
	if up_to_date temporal "$s"; then return 0; fi
	v=$(pinned "$dir" "$mod")
	log "building temporal CLI $v (first build takes a few minutes)..."
	t0=$(date +%s)
	(cd "$dir" && go build -buildvcs=false \
		-ldflags "-s -w -X github.com/temporalio/cli/temporalcli.Version=${v#v}" \
		-o "$BIN/temporal.tmp" github.com/temporalio/cli/cmd/temporal)
	finish temporal "$s" "$t0"
}

mailpit_ldflags() { printf -- '-s -w -X github.com/axllent/mailpit/config.Version=%s' "$1"; }

build_mailpit() {
	local dir="$ROOT/tools/mailpit" mod=github.com/axllent/mailpit s v t0
	s=$(stamp "$dir" "$mod")
	if up_to_date mailpit "$s"; then return 0; fi
	v=$(pinned "$dir" "$mod")
	log "building mailpit $v (no web UI assets)..."
	t0=$(date +%s)
	(cd "$dir" && go build -buildvcs=false -ldflags "$(mailpit_ldflags "$v")" \
		-o "$BIN/mailpit.tmp" github.com/axllent/mailpit)
	finish mailpit "$s" "$t0"
}

build_golangci_lint() {
	local dir="$ROOT/tools/golangci-lint" mod=github.com/golangci/golangci-lint/v2 s v t0
	s=$(stamp "$dir" "$mod")
	if up_to_date golangci-lint "$s"; then return 0; fi
	v=$(pinned "$dir" "$mod")
	log "building golangci-lint $v (first build takes a minute or two)..."
	t0=$(date +%s)
	# Built from a tools module, the binary's main module is not golangci-lint:
	# without a date it would report its version as "(devel)".
	(cd "$dir" && go build -buildvcs=false \
		-ldflags "-s -w -X main.version=${v#v} -X main.commit=tools/golangci-lint -X main.date=n/a" \
		-o "$BIN/golangci-lint.tmp" github.com/golangci/golangci-lint/v2/cmd/golangci-lint)
	finish golangci-lint "$s" "$t0"
}

ensure_npm() {
	if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then return 0; fi
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "node/npm missing: installing Debian packages nodejs npm..."
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
		return 0
	fi
	die "node and npm are needed to build the Mailpit web UI; install them (apt-get install nodejs npm) or use the plain 'mailpit' binary"
}

build_mailpit_ui() {
	local dir="$ROOT/tools/mailpit" mod=github.com/axllent/mailpit s v t0 moddir work
	s=$(stamp "$dir" "$mod" ui)
	if up_to_date mailpit-ui "$s"; then return 0; fi
	v=$(pinned "$dir" "$mod")
	ensure_npm
	log "building mailpit-ui $v (web UI assets with npm, then go build)..."
	t0=$(date +%s)
	moddir=$(cd "$dir" && go mod download "$mod" && go list -m -f '{{.Dir}}' "$mod")
	if [ -z "$moddir" ] || [ ! -f "$moddir/package-lock.json" ]; then
		die "no module source for $mod@$v"
	fi
	work="$SRC/mailpit"
	rm -rf "$work"
	mkdir -p "$SRC"
	cp -R "$moddir" "$work"
	chmod -R u+w "$work" # the module cache is read-only
	(
		cd "$work"
		npm ci --no-audit --no-fund --loglevel=error
		npm run build
		if [ ! -s server/ui/dist/app.js ] || [ ! -s server/ui/dist/app.css ]; then
			die "npm run build produced no server/ui/dist/app.js / app.css"
		fi
		go build -buildvcs=false -ldflags "$(mailpit_ldflags "$v")" -o "$BIN/mailpit-ui.tmp" .
		rm -rf node_modules # ~300 MB, only needed for the asset build
	)
	finish mailpit-ui "$s" "$t0"
}

mkdir -p "$BIN"
# One build at a time: concurrent make test runs would otherwise write the
# same .tmp binary; the one that waited finds it up to date.
exec 8>"$BIN/.lock"
flock 8
[ $# -gt 0 ] || set -- temporal mailpit
for t in "$@"; do
	case "$t" in
	temporal) build_temporal ;;
	mailpit) build_mailpit ;;
	mailpit-ui) build_mailpit_ui ;;
	golangci-lint) build_golangci_lint ;;
	all) build_temporal; build_mailpit; build_mailpit_ui; build_golangci_lint ;;
	*) die "unknown tool '$t' (temporal, mailpit, mailpit-ui, golangci-lint, all)" ;;
	esac
done
