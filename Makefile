# strom — set-up and everyday commands. Every target works on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
CLUSTER_STAMP := $(VENV)/.installed-cluster
BENCH_STAMP := $(VENV)/.installed-bench
CONFIG ?= config/server.properties

.PHONY: serve cluster test lint typecheck unit interop interop-kafka interop-cluster system-deps kafka-jars compat compat-kafka compat-cluster compat-librdkafka clean \
	bench bench-quick bench-fleet bench-soak bench-views bench-fetch-sessions bench-failover bench-cluster bench-cores demo fuzz jepsen dist dist-check screenshots

$(STAMP): pyproject.toml setup.py strom/protocol/records/_walk.c strom/protocol/fast/_produce.c strom/storage/_fsync.c
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

$(CLUSTER_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[cluster]'
	touch $@

## cluster: etcd and three brokers on localhost (node ids 1-3 on 127.0.0.1:19092-19094, etcd on 127.0.0.1:2379), data in ./cluster-data; Ctrl-C stops all
cluster: $(CLUSTER_STAMP)
	scripts/install-etcd.sh
	scripts/local-cluster.sh run

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
	$(BIN)/python -m pytest --durations=30 tests

## interop: the real-client tests only; interop-kafka runs them against Apache Kafka itself
interop: $(TEST_STAMP) kafka-jars
	$(BIN)/python -m pytest -m interop tests/interop

interop-kafka: $(TEST_STAMP) kafka-jars
	STROM_TEST_BOOTSTRAP=kafka $(BIN)/python -m pytest -m interop tests/interop

## interop-cluster: the same against etcd + three strom brokers (scripts/local-cluster.sh), topics at replication factor 3
interop-cluster: $(TEST_STAMP) kafka-jars
	scripts/install-etcd.sh
	STROM_TEST_BOOTSTRAP=cluster $(BIN)/python -m pytest -m interop tests/interop

## jepsen: 100 mixed faults (kill -9, SIGSTOP, etcd member loss, network partitions between namespaces, a slow disk; as root) under idempotent acks=all producers and a consumer group, then every acknowledged record checked; prints faults by kind, recovery p50/p99, acknowledged/lost/duplicated; against strom, then against three Apache Kafka 4.4 KRaft nodes, the baseline (~1 h); JEPSEN_TARGET=strom|kafka for one; JEPSEN_ARGS for --faults/--kinds/--dir
jepsen: $(TEST_STAMP) $(CLUSTER_STAMP) system-deps kafka-jars
	$(BIN)/python -m tests.cluster.jepsen $(JEPSEN_ARGS)

## fuzz: a million fuzz frames (schema-drawn, mutated client captures, random) against a strom subprocess; FUZZ_ARGS for --frames/--connections/--seed
fuzz: $(TEST_STAMP)
	$(BIN)/python -m tests.fuzz $(FUZZ_ARGS)

## unit: the sans-I/O and storage tests only (no system packages needed)
unit: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/protocol tests/storage

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $@

# The C load generator over librdkafka (Debian's librdkafka-dev); bench/run.py also builds it.
RDKGEN := build/rdkgen
$(RDKGEN): $(wildcard bench/rdkgen_src/*.c bench/rdkgen_src/*.h)
	@test -f /usr/include/librdkafka/rdkafka.h || scripts/install-system-deps.sh
	mkdir -p build
	cc -O2 -Wall -o $@ bench/rdkgen_src/*.c -lrdkafka -lpthread -lm

## bench: strom vs Apache Kafka vs Tansu on this machine, 3 rounds (~40 min), with the many-client rows (fleet, 1,000 producers, 10,000 idle connections, a group of 50); results in bench/results/
bench: $(BENCH_STAMP) kafka-jars $(RDKGEN)
	$(BIN)/python bench/run.py

## bench-quick: Kafka and strom, 2 rounds, small sizes (< 10 min on a quiet machine)
bench-quick: $(BENCH_STAMP) kafka-jars $(RDKGEN)
	$(BIN)/python bench/run.py --quick

## bench-fleet: the fleet row alone: 50 producers × 200 records/s, 1 KiB, acks=all, idempotent, linger.ms=0, pooled ack latency, Kafka, strom and strom without fsync (Kafka's durability), 3 rounds (~5 min); FLEET_ARGS for more run.py options
bench-fleet: $(BENCH_STAMP) kafka-jars $(RDKGEN)
	$(BIN)/python bench/run.py --brokers kafka,strom,strom-nofsync --rounds 3 --only fleet --out bench/results/fleet $(FLEET_ARGS)

## bench-soak: 50 producers, keyed records, retention crossed under load, 30 min per broker
bench-soak: $(BENCH_STAMP) kafka-jars
	$(BIN)/python bench/soak.py --minutes 30

## bench-views: restore a view from 1,000,000 events on strom and Apache Kafka
bench-views: $(TEST_STAMP) kafka-jars
	$(BIN)/python bench/views_restore.py

## bench-fetch-sessions: bytes per idle fetch of a 1,000-partition consumer, sessionless and in a KIP-227 session
bench-fetch-sessions: $(TEST_STAMP)
	$(BIN)/python bench/fetch_sessions.py

## bench-failover: kill -9 / SIGTERM a partition leader under an acks=all producer: strom's three-broker cluster vs Kafka's three-node KRaft (~10 min); FAILOVER_ARGS for --rounds/--brokers/--modes
bench-failover: $(BENCH_STAMP) $(CLUSTER_STAMP) kafka-jars
	scripts/install-etcd.sh
	$(BIN)/python bench/failover.py $(FAILOVER_ARGS)

## bench-cluster: three strom brokers vs three Apache Kafka brokers, alternating rounds: produce acks=all RF 3 MiB/s, end-to-end p99 at 5 MiB/s, failover (kill -9 of a leader), follower catch-up after 1 GiB (~15 min); CLUSTER_BENCH_ARGS for --rounds/--catchup-bytes/--quick
bench-cluster: $(BENCH_STAMP) $(CLUSTER_STAMP) kafka-jars
	scripts/install-etcd.sh
	$(BIN)/python bench/cluster_bench.py $(CLUSTER_BENCH_ARGS)

## bench-cores: strom on 1 vs 2 cores (one broker process, pinned or not, vs strom.processes=2), quiet and beside a CPU hog, then Kafka vs strom bulk rows beside a CPU hog (~30 min); results bench/results/cores*-latest.md and bench/results/busy/
bench-cores: $(BENCH_STAMP) $(CLUSTER_STAMP) kafka-jars
	scripts/install-etcd.sh
	$(BIN)/python bench/cores.py
	$(BIN)/python bench/cores.py --busy
	$(BIN)/python bench/busy.py -- $(BIN)/python bench/run.py --brokers kafka,strom --rounds 3 --strom-rev HEAD \
		--only produce_acks1_rdkafka,produce_acksall_rdkafka,consume_rdkafka,small_rdkafka --out bench/results/busy

## demo: the shop: strom and four services that only talk through events, narrated
demo: $(STAMP)
	$(BIN)/python -m examples.shop.demo

## screenshots: the web console's main pages in headless chromium against a throw-away strom, into docs/img/console-*.png
screenshots: $(TEST_STAMP) system-deps
	$(BIN)/python scripts/console-screenshots.py

## compat: franz-go's kgo integration tests against a fresh strom broker; prints a table, writes compat/results.json (docs/compat.md)
compat: $(STAMP)
	compat/run.sh $(COMPAT_ARGS)

## compat-kafka: the same against Apache Kafka 4.x, the baseline; writes compat/results-kafka.json
compat-kafka: kafka-jars
	compat/run.sh --broker kafka $(COMPAT_ARGS)

## compat-cluster: the same against a three-broker strom cluster (etcd + brokers via scripts/local-cluster.sh, KGO_TEST_RF=3); writes compat/results-cluster.json
compat-cluster: $(CLUSTER_STAMP)
	scripts/install-etcd.sh
	compat/run.sh --cluster $(COMPAT_ARGS)

## compat-librdkafka: librdkafka 2.15.1's own test suite (built from npm's bundled sources) against a three-broker strom cluster; writes compat/results-librdkafka-cluster.json; LIBRDKAFKA_ARGS e.g. --tests 0001,0012 or --broker kafka
compat-librdkafka: $(CLUSTER_STAMP) kafka-jars
	scripts/install-etcd.sh
	$(BIN)/python compat/librdkafka.py --cluster $(LIBRDKAFKA_ARGS)

DIST_STAMP := $(VENV)/.installed-dist

$(DIST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dist]'
	touch $@

## dist: the sdist and a wheel built from it (C extension included) in dist/, by python -m build
dist: $(DIST_STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

## dist-check: install dist/'s wheel in a fresh virtualenv (no pip warnings), start strom.testing.EmbeddedBroker from it, show pip's message on Python 3.10 (~1 min, needs PyPI)
dist-check: dist
	PYTHON=$(PYTHON) scripts/dist-check.sh

lint: $(TEST_STAMP)
	$(BIN)/ruff check strom tests

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .cache .mypy_cache .pytest_cache .ruff_cache
