# Development and CI entry points. `make test` on a fresh machine does everything: creates the
# venv, fetches and starts Kafka and PostgreSQL, then runs the whole test suite.
#
#   make help           list these targets (what plain `make` does)
#   make demo           install, then `closedloop demo`: a simulated city, no services needed
#   make install        .venv with the package (editable) and the dev tools
#   make services       Kafka 4 (KRaft, 127.0.0.1:9092) and PostgreSQL (127.0.0.1:55432)
#   make services-stop  stop both
#   make test           pytest against those services (and, for the console, Debian's Chromium)
#   make browser        Debian's chromium and chromium-driver for the console's browser tests
#   make lint           ruff, and mypy --strict on the packages
#   make check          lint + test
#   make deploy-check   validate deploy/: promtool (config, rules, rule tests), the compose
#                       file against the Compose Specification, Kubernetes manifests, Grafana

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin

# The services' addresses; override in the environment to run them elsewhere.
CLOSEDLOOP_KAFKA_PORT ?= 9092
CLOSEDLOOP_PG_PORT ?= 55432
CLOSEDLOOP_KAFKA ?= 127.0.0.1:$(CLOSEDLOOP_KAFKA_PORT)
CLOSEDLOOP_TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:$(CLOSEDLOOP_PG_PORT)/closedloop_test
export CLOSEDLOOP_KAFKA_PORT CLOSEDLOOP_PG_PORT CLOSEDLOOP_KAFKA CLOSEDLOOP_TEST_DATABASE_URL

PYTEST_ARGS ?=

.PHONY: help demo install services services-stop test lint check typecheck-tree deploy-tools deploy-check browser

# Plain `make` lists the targets (the comment block at the top of this file) and runs nothing.
help:
	@sed -n '/^#   make /,/^$$/s/^#  //p' $(firstword $(MAKEFILE_LIST))

install: $(VENV)/.installed

# Reinstalls only when pyproject.toml changes: the install is editable, so code edits need none.
$(VENV)/.installed: pyproject.toml
	@if [[ ! -x $(BIN)/python ]]; then \
	  py=""; \
	  for c in python3.13 python3.12 python3.11 python3; do \
	    if command -v $$c >/dev/null && $$c -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then \
	      py=$$c; break; \
	    fi; \
	  done; \
	  if [[ -z "$$py" ]]; then echo "make install: Python 3.11 or newer is required" >&2; exit 1; fi; \
	  echo "creating $(VENV) with $$($$py -V)"; \
	  $$py -m venv $(VENV) || { echo "make install: '$$py -m venv' failed (Debian: apt-get install python3-venv)" >&2; exit 1; }; \
	fi
	@echo "installing closedloop and its dependencies into $(VENV) (log: $(VENV)/install.log)"
	@# setuptools always says a few lines about editable installs; keep them in the log, and
	@# show the whole log only if the install fails.
	@{ $(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip "setuptools>=77" wheel \
	   && $(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"; \
	 } > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; echo "make install failed" >&2; exit 1; }
	@touch $@

demo: install
	$(BIN)/closedloop demo

services:
	bash deploy/kafka/fetch.sh
	bash deploy/kafka/start.sh
	bash deploy/postgres/start.sh

# Stops both even when one of them fails to stop.
services-stop:
	@status=0; \
	bash deploy/kafka/stop.sh || status=1; \
	bash deploy/postgres/stop.sh || status=1; \
	exit $$status

test: install deploy-tools services browser
	$(BIN)/pytest -q $(PYTEST_ARGS)

# The console's tests drive Debian's Chromium with Debian's chromium-driver (Playwright's own
# browser download cannot be reached here), with a CJK font so Chinese pages render in the
# screenshots. Installed when missing and run as root; otherwise the browser tests say how
# (and fail under CI).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [[ $$(id -u) -eq 0 ]]; then \
	    echo "installing chromium, chromium-driver and fonts-noto-cjk (Debian's packages)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -q && apt-get install -y -q chromium chromium-driver fonts-noto-cjk; \
	  else \
	    echo "make browser: chromium or chromium-driver is missing: as root, apt-get install chromium chromium-driver fonts-noto-cjk" >&2; \
	  fi; \
	fi

# mypy cannot follow the editable install's import hook that maps closedloop.schemas onto
# schemas/, so it reads the packages through a tree of symlinks with the installed names.
# (Its messages name files as build/typecheck/closedloop/<package>/...)
typecheck-tree:
	@mkdir -p build/typecheck/closedloop
	@for pkg in schemas agents streams; do ln -sfn ../../../$$pkg build/typecheck/closedloop/$$pkg; done

# Runs every checker and fails at the end if any failed, so one run reports everything.
lint: install typecheck-tree
	@status=0; \
	echo "ruff check ."; $(BIN)/ruff check . || status=1; \
	echo "mypy --strict on the core: closedloop.schemas, closedloop.agents, closedloop.streams"; \
	MYPYPATH=build/typecheck $(BIN)/mypy --strict -p closedloop.schemas -p closedloop.agents \
	  -p closedloop.streams || status=1; \
	exit $$status

check: lint test

# The validators of deploy/ that pip installs (promtool comes from Debian's `prometheus`
# package: .ci/run installs it when missing). Reinstalled only when the list changes.
deploy-tools: $(VENV)/.deploy-tools

$(VENV)/.deploy-tools: deploy/requirements.txt $(VENV)/.installed
	@command -v promtool >/dev/null || { \
	  echo "installing promtool (Debian's prometheus package)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends prometheus; }
	$(BIN)/python -m pip install -q --disable-pip-version-check -r deploy/requirements.txt
	@touch $@

# Every check of deploy/, each reported, failing at the end if any failed. The pytest part
# (tests/deploy) holds what the tools cannot know: runbook links, metric names and labels,
# Grafana panels and datasource, compose wiring, ACLs and probes. About half a minute.
deploy-check: install deploy-tools
	@command -v promtool >/dev/null || { echo "deploy-check: promtool is missing (Debian: apt-get install prometheus)" >&2; exit 1; }
	@status=0; \
	echo "promtool check config + rules"; \
	promtool check config deploy/prometheus/prometheus.yml || status=1; \
	promtool check rules deploy/prometheus/rules.yml || status=1; \
	echo "promtool test rules"; \
	(cd deploy/prometheus && promtool test rules rules_test.yml) || status=1; \
	echo "check-jsonschema: deploy/compose.yaml against the Compose Specification"; \
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml || status=1; \
	echo "kubernetes-validate --strict: deploy/k8s built-in kinds (1.29 and 1.37)"; \
	for v in 1.29 1.37; do \
	  $(BIN)/kubernetes-validate --strict --quiet -k $$v deploy/k8s/worker.yaml || status=1; \
	done; \
	echo "deploy/k8s generated files up to date"; \
	$(BIN)/python deploy/k8s/generate.py --check || status=1; \
	echo "pytest tests/deploy"; \
	$(BIN)/pytest -q tests/deploy || status=1; \
	exit $$status
