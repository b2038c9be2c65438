#!/usr/bin/env bash
# make lint (and make test, after go vet): golangci-lint with .golangci.yml
# on the root module and on tools/bench, a module of its own that the root's
# ./... does not reach. A finding fails the run with the linter's message.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi

scripts/tools.sh golangci-lint
echo "== golangci-lint run ./..." >&2
.cache/bin/golangci-lint run ./...
echo "== golangci-lint run ./... in tools/bench" >&2
(cd tools/bench && ../../.cache/bin/golangci-lint run ./...)
