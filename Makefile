# Two commands matter: `make up` (deploy the example application to the local stand-in) and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
COLOR ?= green
STACK ?= local
# Release id: the commit, plus a content hash when the application or compose files have local changes
# (a host refuses to reuse a release id for different content).
TAG ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)$(shell git diff --quiet HEAD -- examples compose 2>/dev/null || echo "-dirty-$$(git diff HEAD -- examples compose | sha256sum | cut -c1-8)")

.PHONY: help venv env up down status flip test unit e2e lint bench pulumi-toolchain builder engine stack

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt
	@echo "==> python venv $(VENV) (requirements-dev.txt)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed ## create the project venv with the pinned dependencies

env: venv ## install and start the local stand-in (dockerd, registry, sshd, haproxy, prometheus)
	@bash scripts/local-env.sh up

up: env ## build, push, roll out and validate a release on the local stand-in, served through the proxy
	@mkdir -p reports
	@$(PY) -m ops.build --tag $(TAG) --out reports/pins-$(TAG).json
	@$(PY) -m ops.ship --pins reports/pins-$(TAG).json --project $(COLOR)
	@source scripts/local.env && live=$$(cat "$$DEVTOOLS_STATE/live-color" 2>/dev/null || echo green) && \
		echo "==> release $(TAG) validated on $(COLOR); the load balancer serves $$live at http://127.0.0.1:$$LB_PORT/" && \
		curl -fsS -D - -o /dev/null "http://127.0.0.1:$$LB_PORT/health" | grep -i '^x-served-by' && \
		echo "    MCP: curl -X POST http://127.0.0.1:$$LB_PORT/mcp -d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}'" && \
		if [ "$$live" != "$(COLOR)" ]; then echo "    traffic is on $$live: make flip COLOR=$(COLOR) to move it"; fi

down: ## stop the local stand-in (containers, volumes and registry data are kept)
	@bash scripts/local-env.sh down

status: ## what runs where
	@bash scripts/local-env.sh status

flip: ## route the proxy to COLOR (make flip COLOR=blue)
	@bash scripts/local-env.sh flip $(COLOR)

lint: venv ## ruff, mypy, shellcheck, actionlint (the GitHub workflows, with shellcheck on their run: blocks)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy
	@shellcheck scripts/*.sh .ci/run examples/app/common/*.sh bench/*.sh .github/scripts/*.sh
	@bash scripts/actionlint.sh run

unit: venv ## the fast tier: tests that start no process and open no socket (< 20 s)
	@$(VENV)/bin/pytest tests/unit -m "not live" -q

e2e: env ## tests on dockerd, registry, sshd, haproxy and prometheus
	@DEVTOOLS_ENV_READY=1 $(VENV)/bin/pytest -m "e2e and not engine" -v

# Two sessions: the e2e session stops its own compose projects when it ends, so the engine tier does not run
# next to some sixty containers' health checks on a 2-core machine.
test: env lint pulumi-toolchain builder ## everything: install what is missing, lint, then every test (unit, e2e, engine)
	@DEVTOOLS_ENV_READY=1 $(VENV)/bin/pytest -m "not engine" -v --durations=15
	@DEVTOOLS_ENV_READY=1 $(VENV)/bin/pytest -m engine -v --durations=5

pulumi-toolchain: ## build the Pulumi CLI, language host, docker-build and command providers from the Go module proxy
	@bash scripts/pulumi-toolchain.sh install

builder: ## build and start the local BuildKit (buildx builder devtools-local) the docker-build provider uses
	@bash scripts/buildkit-local.sh up

engine: env pulumi-toolchain builder ## only the engine tier: the program and ops.cli on the real Pulumi engine
	@DEVTOOLS_ENV_READY=1 $(VENV)/bin/pytest -m engine -v

stack: env pulumi-toolchain builder ## pulumi up --stack local (STACK=local-blue for the standby color)
	@$(PY) -m ops.build --vendor-only
	@eval "$$(bash scripts/pulumi-toolchain.sh env)" && \
		pulumi stack select --create $(STACK) --non-interactive && pulumi up --stack $(STACK) --yes --non-interactive

bench: env ## side-by-side measurements (see bench/README.md)
	@$(PY) -m bench
