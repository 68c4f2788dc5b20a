# lead-ml: two commands on a fresh machine (`make run`, `make test`); the rest are helpers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
# dvc.yaml calls `lead-ml`: the venv comes first on PATH for every target.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help install run test lint format bench test-spark clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv installs the locked stack in seconds where pip takes minutes; it is bootstrapped by pip.
$(BIN)/uv: $(BIN)/python
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"

$(STAMP): $(BIN)/uv pyproject.toml constraints.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install lead-ml with the pinned stack

run: install ## run the whole pipeline (dvc repro) on the synthetic CRM and print model vs BANT
	$(BIN)/dvc repro
	$(BIN)/lead-ml summary

test: install ## run the test suite
	$(BIN)/pytest -q -n auto

lint: install ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## apply ruff's formatting and import order
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove the venv and generated outputs
	rm -rf $(VENV) data/raw data/validated data/features models/model models/scorer reports mlruns mlflow.db
