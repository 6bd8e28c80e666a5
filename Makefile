# cnnlab — the two commands: `make run` (serve the dashboard) and `make test` (lint + all tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# requirements*.txt say what cnnlab needs (ranges); requirements.lock pins the exact versions the
# tests passed with (as pip constraints: it adds nothing, it only fixes versions). Refresh it on
# purpose with `make lock`. torch stays at what the machine provides (2.14.1 / torchvision 0.29.1).
LOCK := requirements.lock
# pip-compile does not read pip's global constraint: pass the machine's torch cap when it has one.
MACHINE_CAP := $(if $(wildcard /etc/xdg/pip/constraints.txt),-c /etc/xdg/pip/constraints.txt)
CONSTRAINTS := $(if $(wildcard $(LOCK)),-c $(LOCK))
LINT_PATHS := cnnlab pages tests benchmarks scripts app.py serve.py

.PHONY: run test lint unit bench chromium servers worker clean lock

# Re-installs only when a requirements file or the lock changed.
$(RUNTIME_STAMP): requirements.txt $(wildcard $(LOCK))
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt $(CONSTRAINTS)
	@touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt $(wildcard $(LOCK))
	$(PY) -m pip install -q -r requirements-dev.txt $(CONSTRAINTS)
	@touch $@

# Re-resolve requirements*.txt with pip-tools' pip-compile (existing pins are kept unless
# PIP_ARGS=--upgrade), then install exactly that. Review the diff before committing.
lock: $(DEV_STAMP)
	$(PY) -m piptools compile --quiet --strip-extras --allow-unsafe --no-header --no-emit-index-url --no-emit-find-links $(MACHINE_CAP) $(PIP_ARGS) \
		-o $(LOCK).new requirements-dev.txt
	@{ sed -n '1,3p' $(LOCK); cat $(LOCK).new; } > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK) && rm $(LOCK).new
	$(PY) -m pip install -q -r requirements-dev.txt -c $(LOCK)
	@touch $(RUNTIME_STAMP) $(DEV_STAMP)
	@echo "wrote $(LOCK): $$(grep -c '==' $(LOCK)) pinned packages"

run: $(RUNTIME_STAMP)
	@PY=$(PY) PORT=$(PORT) scripts/serve.sh

worker: $(RUNTIME_STAMP)
	$(PY) -m cnnlab worker

chromium:
	@if [ ! -x /usr/bin/chromium ] || ! dpkg -s fonts-noto-color-emoji >/dev/null 2>&1; then \
		echo "installing Debian's chromium (and an emoji font) for the browser tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null; \
	fi
	@/usr/bin/chromium --version 2>/dev/null

# Redis and PostgreSQL for the "more machines" tests (tests/servers.py starts them on loopback).
servers:
	@if ! command -v redis-server >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing Debian's redis-server and postgresql for the store and queue tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server postgresql >/dev/null; \
	fi
	@redis-server --version | cut -d' ' -f1-3; ls -d /usr/lib/postgresql/*/bin | head -1

# ruff (lint + format check) over the whole tree; mypy over cnnlab/ (settings in pyproject.toml).
lint: $(DEV_STAMP)
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)
	$(PY) -m mypy

test: $(DEV_STAMP) chromium servers lint
	$(PY) -m pytest -q -ra

unit: $(DEV_STAMP)
	$(PY) -m pytest -q -ra -m "not browser"

bench: $(RUNTIME_STAMP)
	$(PY) benchmarks/bench_profile.py --json
	$(PY) benchmarks/bench_features.py --json
	$(PY) benchmarks/bench_train.py --json
	$(PY) benchmarks/time_to_accuracy.py --json
	$(PY) benchmarks/cli_start.py --json
	$(PY) benchmarks/run_latency.py --json
	$(PY) benchmarks/page_latency.py --json
	$(PY) benchmarks/watch_cost.py --json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache artifacts
