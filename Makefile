# auditwatch — developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_SECONDS ?= 150
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: demo test lint typecheck unit bench soak servers clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[demo,test]'
	touch $@

## Run the whole job on embedded defaults: bundled broker, generated traffic with attacks,
## alerts printed and stored in demo-out/alerts.db, metrics on http://127.0.0.1:9108/metrics
demo: $(BIN)/.installed
	$(BIN)/auditwatch demo --duration $(DEMO_SECONDS)

## The whole suite: lint, types, unit and integration tests against real servers
test: $(BIN)/.installed servers lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check detector tests benchmarks
	$(BIN)/ruff format --check detector tests benchmarks

typecheck: $(BIN)/.installed
	$(BIN)/mypy detector

## Prometheus and Alertmanager tools (Debian packages) for the integration tests
servers:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null || ! command -v amtool >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager; \
	fi

## Every benchmark in one run -> BENCHMARKS.md (~40 min; BENCH_ARGS=--quick: a few minutes)
bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python -m benchmarks all $(BENCH_ARGS) --out BENCHMARKS.md

soak: $(BIN)/.installed servers
	AUDITWATCH_SOAK=long $(BIN)/python -m pytest -s tests/test_crash_soak.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
