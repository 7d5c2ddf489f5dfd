# strom — set-up and everyday commands. Every target works on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
CONFIG ?= config/server.properties

.PHONY: serve test lint typecheck unit interop interop-kafka system-deps kafka-jars compat clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

## serve: create .venv, install strom and run a broker on localhost:9092 with data in ./data
serve: $(STAMP)
	$(BIN)/strom serve --config $(CONFIG)

## system-deps: kcat and a JDK with Maven (apt-get, only what is missing)
system-deps:
	scripts/install-system-deps.sh

## kafka-jars: Apache Kafka's jars (tools, clients, server) from Maven Central into .cache/kafka
kafka-jars: system-deps
	scripts/fetch-kafka.sh

## test: install everything the tests need, then run the whole suite
test: $(TEST_STAMP) kafka-jars
	$(BIN)/ruff check strom tests
	$(BIN)/mypy
	$(BIN)/python -m pytest tests

## interop: the real-client tests only; interop-kafka runs them against Apache Kafka itself
interop: $(TEST_STAMP) kafka-jars
	$(BIN)/python -m pytest -m interop tests/interop

interop-kafka: $(TEST_STAMP) kafka-jars
	STROM_TEST_BOOTSTRAP=kafka $(BIN)/python -m pytest -m interop tests/interop

## unit: the sans-I/O and storage tests only (no system packages needed)
unit: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/protocol tests/storage

lint: $(TEST_STAMP)
	$(BIN)/ruff check strom tests

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .cache .mypy_cache .pytest_cache .ruff_cache
