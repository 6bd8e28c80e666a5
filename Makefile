# cnnlab — the two commands: `make run` (serve the dashboard) and `make test` (lint + all tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint unit bench chromium worker clean

# Re-installs only when a requirements file changed.
$(RUNTIME_STAMP): requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

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

lint: $(DEV_STAMP)
	$(PY) -m ruff check cnnlab pages tests benchmarks app.py

test: $(DEV_STAMP) chromium lint
	$(PY) -m pytest -q -ra

unit: $(DEV_STAMP)
	$(PY) -m pytest -q -ra -m "not browser"

bench: $(RUNTIME_STAMP)
	$(PY) benchmarks/bench_profile.py --json
	$(PY) benchmarks/bench_train.py --json
	$(PY) benchmarks/time_to_accuracy.py --json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache artifacts
