# lead-ml: two commands on a fresh machine (`make run`, `make test`); the rest are helpers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
# Some images set PYTHONDONTWRITEBYTECODE: every lead-ml call would then recompile
# mlflow, pandas and lightgbm imports (~15 s); an empty value lets Python cache them.
export PYTHONDONTWRITEBYTECODE :=
# dvc.yaml calls `lead-ml`: the venv comes first on PATH for every target.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help install run test lint format bench mutate test-spark clean

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

run: install ## run the whole pipeline (dvc repro) on params.yaml's source (the synthetic CRM by default), print model vs BANT
	$(BIN)/dvc repro
# DVC skips stages whose outputs come out the same: their runs may be missing
# from a new store (make clean deletes it); track logs only what it lacks.
	$(BIN)/lead-ml track --params params.yaml
	$(BIN)/lead-ml summary

test: install ## run the test suite (the Spark tests are left to test-spark)
# loadscope: a module's tests share one worker, so module fixtures (a whole DVC
# pipeline in test_pipeline_dvc.py) run once; loadgroup is broken on pytest 9.2.
# The slowest scopes go first (tests/conftest.py orders them; xdist's own order,
# by number of tests, would leave a pipeline for the end while a worker idles).
	$(BIN)/pytest -q -n auto --dist loadscope --no-loadscope-reorder -m "not spark" --durations=20

# Spark is an optional extra (~490 MB): installed at the pinned version only here.
test-spark: install ## install the [spark] extra and run the Spark tests (local[2], Java 17)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e ".[dev,spark]"
	PYSPARK_PYTHON=$(CURDIR)/$(BIN)/python $(BIN)/pytest -q -n 0 -m spark tests/test_spark.py

# The bench stage lives in bench/dvc.yaml, outside the default `dvc repro` (and its
# harness, bench/harness.py, outside the package); forced, because it measures the
# machine as well as the code. It needs ../shared/data for the X Education export.
bench: install ## benchmark the scorer on the synthetic CRM and X Education (11-23 min on 2 idle cores, Spark at 1M leads included): reports/bench.json
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c constraints.txt -e ".[dev,spark]"
	$(BIN)/dvc repro --force bench/dvc.yaml

# Outside CI like the bench: hours of CPU on two cores (niced, one module at a time).
mutate: install ## mutation testing of the core modules (mutmut, each against its fast tests): reports/mutation.json
	$(BIN)/python scripts/mutate.py $(MODULES)

lint: install ## ruff, mypy and the import-layer contract (no cycles, floors kept)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install ## apply ruff's formatting and import order
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove the venv and generated outputs (committed reports stay)
	rm -rf $(VENV) mutants data/raw data/tables data/validated data/audit data/features/features.parquet data/features/registry.json models/model models/scorer reports/rejects.csv mlruns mlflow.db
