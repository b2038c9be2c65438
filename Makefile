# Local development of the lifecycle campaigns. `make` alone lists the targets.
# The stack (Temporal dev server, Mailpit, PostgreSQL) is run by
# scripts/stack.sh; see docs/local-stack.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help tools up stop status build lint demo test record-histories bench cluster-test

help: ## show this list
	@echo "make targets:"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z-]*:.*## / { printf "  %-8s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

tools: ## build temporal, mailpit and mailpit-ui (web UI) into .cache/bin
	scripts/tools.sh temporal mailpit mailpit-ui

up: ## start the demo stack (Temporal :7233/:8233, Mailpit :1025/:8025, PostgreSQL)
	STACK=demo scripts/stack.sh up

stop: ## stop the demo worker, the API and the demo stack
	scripts/demo.sh stop-worker
	STACK=demo scripts/stack.sh down

status: ## show what runs, for the demo and the test stack
	@STACK=demo scripts/stack.sh status || true
	@STACK=test scripts/stack.sh status || true

build: ## build bin/worker, bin/starter and bin/api
	go build -o bin/ ./worker ./starter ./cmd/api

lint: ## golangci-lint (.golangci.yml) on the root module and tools/bench
	scripts/lint.sh

demo: ## demo stack + bin/worker in the background + bin/starter demo
	scripts/demo.sh

test: ## go vet and lint, then go test ./... against the test stack (up, test, down)
	scripts/test.sh

record-histories: ## re-record the replay histories (workflows/testdata/histories) from the real dev server
	scripts/test.sh record-histories

bench: ## benchmarks on a stack of their own (Temporal :7263, Mailpit :1046/:8046), writes docs/benchmarks.md
	tools/bench/run.sh

cluster-test: ## e2e tests + bench on a real Temporal server (PostgreSQL, :7283; Mailpit :1066/:8066), then down
	scripts/cluster.sh test
