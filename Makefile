# `make run` and `make test` set up .venv on first use; PYTHON must be 3.11 or newer.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
ARGS ?=

# Deployment tools live in venvs of their own: their pins clash with the test suite's.
TOOLS := .local/tools
SAM := $(TOOLS)/sam/bin/sam
CHECKOV := $(TOOLS)/checkov/bin/checkov
SAM_CLI_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30

.PHONY: run test lint tools bench clean build-IngestFunction

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(INSTALLED)
	$(BIN)/python -m login_ingest.local $(ARGS)

bench: $(INSTALLED)
	$(BIN)/python -m login_ingest.local.bench $(ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/mypy

$(SAM):
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/sam/bin/python -m pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/checkov/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)

tools: $(SAM) $(CHECKOV)

test: lint tools
	$(BIN)/python -m pytest

# Called by `sam build` (template.yaml: BuildMethod makefile) with ARTIFACTS_DIR set: the
# function's code without the local and operations tooling, and its requirements as
# Lambda's Linux wheels.
LAMBDA_PYTHON := 3.12
build-IngestFunction:
	cp handler.py "$(ARTIFACTS_DIR)/"
	tar -c --exclude=login_ingest/local --exclude=login_ingest/dlq --exclude=__pycache__ login_ingest | tar -x -C "$(ARTIFACTS_DIR)"
	if [ -d certs ]; then cp -r certs "$(ARTIFACTS_DIR)/"; fi
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target "$(ARTIFACTS_DIR)" \
		--platform manylinux2014_x86_64 --implementation cp --python-version $(LAMBDA_PYTHON) \
		--only-binary=:all: --no-compile -r requirements.txt
	rm -rf "$(ARTIFACTS_DIR)/bin"  # console scripts, with this machine's interpreter path

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
