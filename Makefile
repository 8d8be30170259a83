# Two commands matter: `make up` (the Pulumi program on the local stack, against the stand-in) and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
COLOR ?= green
STACK := $(if $(filter blue,$(COLOR)),local-blue,local)
# The Pulumi CLI for the operator targets: ours (scripts/pulumi-toolchain.sh) when built, else the one on PATH;
# the local stacks' file backend and passphrase either way.
PULUMI_ENV := eval "$$(bash scripts/pulumi-toolchain.sh env)"

.PHONY: help venv env up down status flip release test unit e2e lint bench pulumi-toolchain builder engine gotest

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "==> python venv $(VENV) (requirements-dev.txt)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed ## create the project venv with the pinned dependencies

env: venv ## install and start the local stand-in (dockerd, registry, sshd, haproxy, prometheus; cosign and the local signing key)
	@bash scripts/local-env.sh up

up: venv ## pulumi up --stack local on the stand-in (COLOR=blue: local-blue); builds the Pulumi toolchain on first use
	@bash scripts/up.sh $(STACK)

down: ## stop the local stand-in (containers, volumes and registry data are kept)
	@bash scripts/local-env.sh down

status: venv ## what runs where: the stand-in's parts, then the local stack against its hosts and haproxy
	@bash scripts/local-env.sh status
	@$(PULUMI_ENV) && $(PY) -m ops.cli status --stack local

flip: venv ## move traffic to COLOR through the local stack (make flip COLOR=blue): config, then pulumi up
	@$(PULUMI_ENV) && $(PY) -m ops.cli flip $(COLOR) --stack local --yes

release: venv ## a release of this checkout through the idle color of the local stacks (ops.cli release --stack local)
	@$(PULUMI_ENV) && $(PY) -m ops.cli release --stack local --yes

lint: venv ## ruff, mypy, shellcheck, actionlint (the GitHub workflows, with shellcheck on their run: blocks)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy
	@shellcheck scripts/*.sh .ci/run examples/app/common/*.sh bench/*.sh .github/scripts/*.sh
	@bash scripts/actionlint.sh run

unit: venv ## the fast tier: tests that start no process and open no socket (< 20 s)
	@$(VENV)/bin/pytest tests/unit -m "not live" -n 2 -q

e2e: env ## tests on dockerd, registry, sshd, haproxy and prometheus
	@DEVTOOLS_ENV_READY=1 $(VENV)/bin/pytest -m "e2e and not engine" -v

# Two sessions: the e2e session stops its own compose projects when it ends, so the engine tier does not run
# next to some sixty containers' health checks on a 2-core machine.
test: env lint pulumi-toolchain builder gotest ## everything: install what is missing, lint, then every test (unit, e2e, engine)
	@DEVTOOLS_ENV_READY=1 $(VENV)/bin/pytest -m "not engine" -v --durations=15
	@DEVTOOLS_ENV_READY=1 $(VENV)/bin/pytest -m engine -v --durations=5

gotest: pulumi-toolchain ## go vet and go test of our command provider (tools/pulumi-resource-command; loopback peers)
	@cd tools/pulumi-resource-command && T="$${DEVTOOLS_TOOLCHAIN:-/var/tmp/devtools-toolchain}" && \
	  export GOMODCACHE="$$T/go/mod" GOCACHE="$$T/go/build" GOFLAGS="-mod=readonly -buildvcs=false" \
	    GOTOOLCHAIN=local CGO_ENABLED=0 && go vet ./... && go test -count=1 -timeout 120s ./...

pulumi-toolchain: ## build the Pulumi CLI, language host, docker-build and command providers and cosign from the Go module proxy
	@bash scripts/pulumi-toolchain.sh install

builder: ## build and start the local BuildKit (buildx builder devtools-local) the docker-build provider uses
	@bash scripts/buildkit-local.sh up

engine: env pulumi-toolchain builder ## only the engine tier: the program and ops.cli on the real Pulumi engine
	@DEVTOOLS_ENV_READY=1 $(VENV)/bin/pytest -m engine -v

bench: env ## side-by-side measurements (see bench/README.md)
	@$(PY) -m bench
