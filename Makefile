# The two commands the README starts with. Both build .venv when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/midika up --simulate

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Each benchmark prints JSON next to a baseline measured in the same run; see README "Benchmarks".
bench: $(STAMP)
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.ingest_pipeline
	$(BIN)/python -m bench.influx_write
	$(BIN)/python -m bench.simulate
	$(BIN)/python -m bench.query --readings 2000000

clean:
	rm -rf $(VENV) .midika .pytest_cache .mypy_cache .ruff_cache
