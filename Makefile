# hmco — two commands: `make demo` and `make test`. Both build the venv from scratch when needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hmco-installed
PYTEST_ARGS ?=

.PHONY: install demo test lint format docs bench system-deps clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "hmco needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Ingest a day of synthetic 5-minute LMPs and an EIA sample into the embedded lake, run the seed's queries.
demo: $(STAMP)
	HMCO_HOME=$${HMCO_HOME:-.hmco} $(BIN)/hmco demo

## Lint, type-check and run the tests against real engines (PostgreSQL and SeaweedFS are started by the run).
test: $(STAMP) system-deps lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks examples
	$(BIN)/ruff format src tests benchmarks examples

## The documentation site (guides + API reference from the docstrings + CLI reference) into site/;
## --strict: a broken link or cross-reference fails the build. tests/test_docs.py runs the same build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

## Benchmarks (pytest-benchmark): rows/s and MB/s, each with its baseline measured in the same run.
bench: $(STAMP) system-deps
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[dev,bench]'
	$(BIN)/pytest benchmarks -p no:cacheprovider --benchmark-only --benchmark-columns=min,mean,max,rounds \
		--benchmark-sort=name $(PYTEST_ARGS)

## Debian's PostgreSQL server (catalog tests) and Maven (fetches the Trino server), installed only when missing.
system-deps:
	@scripts/ensure-system-deps.sh

clean:
	rm -rf $(VENV) .hmco site .pytest_cache .mypy_cache .ruff_cache .benchmarks
