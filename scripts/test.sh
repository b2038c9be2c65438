#!/usr/bin/env bash
# make test: go vet and golangci-lint (scripts/lint.sh), then the whole test
# suite against the TEST stack (STACK=test: its own ports and .data/test, so
# a running demo is untouched), which is brought down afterwards. The exit
# code is go test's.
#
# Several `make test` runs in one checkout share the test stack: each one
# registers itself under .data/test/run/users/, and the last one to finish
# brings the stack down (under a lock, so none stops it under another).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
export STACK=test
started=$SECONDS
RUN="${STACK_DATA_DIR:-$ROOT/.data/test}/run"
USERS="$RUN/users"

finish() {
	local rc=$? f others=""
	if [ -n "${registered:-}" ]; then
		flock 9
		rm -f "$USERS/$$"
		for f in "$USERS"/*; do
			[ -e "$f" ] || continue
			if kill -0 "${f##*/}" 2>/dev/null; then others=1; else rm -f "$f"; fi
		done
		if [ -n "$others" ]; then
			echo "test stack left up: another make test is using it" >&2
		else
			scripts/stack.sh down 9>&- || true
		fi
		flock -u 9
	fi
	echo "make test: exit $rc, elapsed $((SECONDS - started))s" >&2
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== go vet ./..." >&2
go vet ./...
# The benchmark harness is a module of its own: the root's ./... misses it.
echo "== go vet ./... in tools/bench" >&2
go vet -C tools/bench ./...
scripts/lint.sh

# The erase test dumps the CRM with pg_dump, as an auditor would
# (e2e/erase_test.go); a machine whose PostgreSQL runs elsewhere may lack it.
if ! command -v pg_dump >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "== apt-get install postgresql-client (pg_dump, once)" >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null
	else
		echo "make test: pg_dump is missing; install it (apt-get install postgresql-client)" >&2
		exit 1
	fi
fi

echo "== test stack up" >&2
mkdir -p "$USERS"
exec 9>"$RUN/.test.lock"
flock 9
touch "$USERS/$$"
registered=1
scripts/stack.sh up 9>&-
flock -u 9
eval "$(scripts/stack.sh env)"
export LIFECYCLE_REQUIRE_STACK=1

if [ "${1:-}" = record-histories ]; then
	# Deliberate workflow change: replace the recorded replay histories with
	# fresh ones from the real dev server (see docs/journey.md).
	# The recorder replaces the current release's set only; older sets stay,
	# as journeys of every release may still be running.
	echo "== recording replay histories into workflows/testdata/histories/<current release>" >&2
	RECORD_HISTORIES=1 go test ./e2e/ -run 'TestSignupToOnboarding|TestUnsubscribeStopsMailAtOnce|TestEventAsUpdateWithStart|TestOutage|TestContactPolicy|TestDetractorAndRenewal' -count=1 -v 9>&- | grep -E 'recorded|^(--- |ok|FAIL)'
	exit "${PIPESTATUS[0]}"
fi

echo "== go test ./... (TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS SMTP_PORT=$SMTP_PORT)" >&2
go test ./... -count=1 -timeout 15m 9>&-

# A few seconds of fuzzing on top of the seeds that just ran: whatever the
# API accepts must be stored by the CRM (real PostgreSQL), sent by the mailer
# and accepted by the journey (api/fuzz_test.go). A failure fails the run
# and leaves the input in api/testdata/fuzz/.
for target in FuzzSignup FuzzEvent; do
	echo "== fuzz $target (5s)" >&2
	go test ./api -run '^$' -fuzz "^$target\$" -fuzztime 5s 9>&-
done
