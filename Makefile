# The README's two commands. Both create .venv on first use and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck chaos bench install clean

$(BIN)/toksta-worker: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/toksta-worker

## First command: simulator + one worker + one request of every kind, replies printed.
demo: install
	$(BIN)/toksta-worker demo

## Second command: the whole test suite (needs RabbitMQ and Redis; .ci/run starts them if missing).
test: install
	$(BIN)/ruff check worker tests bench
	$(BIN)/ruff format --check worker tests bench
	$(BIN)/mypy
	$(BIN)/pytest; code=$$?; if [ $$code -eq 5 ]; then echo "pytest ran no tests" >&2; exit 1; fi; exit $$code

lint: install
	$(BIN)/ruff check worker tests bench
	$(BIN)/ruff format --check worker tests bench

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .toksta-state .pytest_cache .mypy_cache .ruff_cache

## The full chaos run (>= 300 requests; private RabbitMQ node and Redis).
chaos: install
	$(BIN)/python -m worker.ops.chaos --full

bench: install
	for b in economy steady_state latency pipeline memory; do $(BIN)/python -m bench.$$b || exit 1; done
