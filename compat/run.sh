#!/usr/bin/env bash
# compat/run.sh — run franz-go's kgo integration tests against a broker and
# report pass/fail per test. See docs/compat.md.
#
#   compat/run.sh                         start a fresh strom broker and test it
#   compat/run.sh --broker kafka          same against Apache Kafka 4.x (the baseline)
#   compat/run.sh --cluster               a fresh three-broker strom cluster (etcd + brokers
#                                         through scripts/local-cluster.sh), KGO_TEST_RF=3
#   compat/run.sh --bootstrap HOST:PORT   test a broker that is already running
#
# Options:
#   --run REGEX          top-level tests to run (go test -run; default: Test)
#   --records N          records per ETL test (KGO_TEST_RECORDS; franz-go's default 500000)
#   --package            one `go test` process for the whole package, tests in
#                        parallel as upstream runs them; fastest, but one hung
#                        test stalls every test after it until --timeout
#   --timeout DUR        budget for the whole run, after which the remaining tests
#                        are "not run" (30m); with --package, go test -timeout (20m)
#   --test-timeout DUR   per-test timeout (default 4m; not with --package)
#   --out FILE           results JSON (default compat/results.json,
#                        compat/results-kafka.json with --broker kafka,
#                        compat/results-cluster.json with --cluster)
#   --max-test-output MB go test -json output kept per test (256); a test that
#                        writes more is cut off there, which stops it (a failing
#                        TestTxnEtl once logged 5.4 GB). With --package, 8x this
#                        for the whole run
#
# By default every top-level test runs in its own process with its own timeout,
# and a broker this script started is restarted (fresh data) if a test kills
# it (with --cluster: the broker that died is restarted on its data). Exits 0
# whatever the tests did (it is a report); non-zero only when the harness
# fails: bad usage (2), broker did not start (3), franz-go could not be fetched
# or built (4), no test ran (5).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FRANZ_GO_VERSION="${FRANZ_GO_VERSION:-v1.22.3}"
CACHE="$ROOT/.cache/compat"
STARTUP_TIMEOUT="${COMPAT_STARTUP_TIMEOUT:-300}"
MAX_RESTARTS=5

BOOTSTRAP=""
BROKER="strom"
RUN="Test"
RECORDS=""
PACKAGE=0
TIMEOUT=""
TEST_TIMEOUT="4m"
OUT=""
MAX_OUTPUT_MB=256

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --bootstrap) BOOTSTRAP="${2:?}"; shift 2 ;;
        --bootstrap=*) BOOTSTRAP="${1#*=}"; shift ;;
        --broker) BROKER="${2:?}"; shift 2 ;;
        --broker=*) BROKER="${1#*=}"; shift ;;
        --cluster) BROKER="cluster"; shift ;;
        --run) RUN="${2:?}"; shift 2 ;;
        --records) RECORDS="${2:?}"; shift 2 ;;
        --package) PACKAGE=1; shift ;;
        --isolate) PACKAGE=0; shift ;;
        --timeout) TIMEOUT="${2:?}"; shift 2 ;;
        --test-timeout) TEST_TIMEOUT="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --max-test-output) MAX_OUTPUT_MB="${2:?}"; shift 2 ;;
        -h|--help) usage ;;
        *) echo "compat/run.sh: unknown argument: $1" >&2; usage ;;
    esac
done
case "$BROKER" in strom|kafka|cluster) ;; *) echo "compat/run.sh: --broker is strom or kafka" >&2; exit 2 ;; esac
if [ "$BROKER" = cluster ] && [ -n "$BOOTSTRAP" ]; then
    echo "compat/run.sh: --cluster starts its own cluster; for a running one give --bootstrap with KGO_TEST_RF=3 in the environment" >&2; exit 2
fi
if [ -n "$BOOTSTRAP" ]; then BROKER="external"; fi
if [ -z "$OUT" ]; then
    case "$BROKER" in
        kafka) OUT="$ROOT/compat/results-kafka.json" ;;
        cluster) OUT="$ROOT/compat/results-cluster.json" ;;
        *) OUT="$ROOT/compat/results.json" ;;
    esac
fi
# Go-style durations (90s, 20m, 1h) to seconds.
seconds() {
    case "$1" in
        *h) echo $(( ${1%h} * 3600 )) ;; *m) echo $(( ${1%m} * 60 )) ;; *s) echo $(( ${1%s} )) ;;
        *) echo "compat/run.sh: durations are like 90s, 20m or 1h, not '$1'" >&2; exit 2 ;;
    esac
}
if [ -z "$TIMEOUT" ]; then
    if [ "$PACKAGE" = 1 ]; then TIMEOUT="20m"; else TIMEOUT="30m"; fi
fi
BUDGET="$(seconds "$TIMEOUT")"
case "$MAX_OUTPUT_MB" in ''|*[!0-9]*) echo "compat/run.sh: --max-test-output is a number of MB" >&2; exit 2 ;; esac
MAX_OUTPUT=$((MAX_OUTPUT_MB * 1024 * 1024))
TEST_SECS="$(seconds "$TEST_TIMEOUT")"

log() { echo "compat: $*" >&2; }
for tool in go python3; do
    command -v "$tool" >/dev/null || { log "$tool not found"; exit 4; }
done

mkdir -p "$CACHE"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/strom-compat.XXXXXX")"
BROKER_PID=""

# scripts/local-cluster.sh with this run's cluster directory and ports.
cluster_sh() { CLUSTER_DIR="$WORK/cluster" "$ROOT/scripts/local-cluster.sh" "$@"; }
CLUSTER_UP=0
# shellcheck disable=SC2317  # called from the EXIT trap
stop_broker() {
    if [ "$CLUSTER_UP" = 1 ]; then
        cluster_sh stop-all >>"$WORK/broker.log" 2>&1 || log "stopping the cluster failed (see .cache/compat/last-broker.log)"
        CLUSTER_UP=0
    fi
    [ -n "$BROKER_PID" ] || return 0
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM -- "-$BROKER_PID" 2>/dev/null || kill -TERM "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.25; done
        kill -KILL -- "-$BROKER_PID" 2>/dev/null || kill -KILL "$BROKER_PID" 2>/dev/null || true
    fi
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
}
# shellcheck disable=SC2317
cleanup() {
    stop_broker
    local f
    for f in events.jsonl:last-run.jsonl stderr.log:last-run.stderr broker.log:last-broker.log \
             run/server.log:last-broker-server.log report.md:last-report.md; do
        if [ -f "$WORK/${f%%:*}" ]; then cp "$WORK/${f%%:*}" "$CACHE/${f##*:}" 2>/dev/null || true; fi
    done
    for f in "$WORK"/cluster/broker-*.log "$WORK"/cluster/etcd-*.log; do
        if [ -f "$f" ]; then cp "$f" "$CACHE/last-cluster-$(basename "$f")" 2>/dev/null || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- franz-go source, pinned, from the Go module proxy ----------------------
# A private module cache under .cache/compat (writable, so `make clean` can
# remove it) and a writable copy of the module to run its tests in.
export GOMODCACHE="$CACHE/gomod"
export GOFLAGS="-modcacherw -mod=mod"
SRC="$CACHE/franz-go-$FRANZ_GO_VERSION"
if [ ! -f "$SRC/pkg/kgo/helpers_test.go" ]; then
    log "fetching github.com/twmb/franz-go@$FRANZ_GO_VERSION"
    DL="$(cd "$WORK" && go mod download -json "github.com/twmb/franz-go@$FRANZ_GO_VERSION")" \
        || { log "go mod download failed"; exit 4; }
    MODDIR="$(printf '%s' "$DL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
    rm -rf "$SRC.tmp.$$"
    cp -r "$MODDIR" "$SRC.tmp.$$"
    chmod -R u+w "$SRC.tmp.$$"
    mv -T "$SRC.tmp.$$" "$SRC" 2>/dev/null || rm -rf "$SRC.tmp.$$"  # a concurrent run may have won
fi
log "building pkg/kgo tests (franz-go $FRANZ_GO_VERSION, $(go env GOVERSION))"
(cd "$SRC/pkg/kgo" && go test -c -o "$WORK/kgo.test" .) >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log" >&2; log "building the kgo tests failed"; exit 4; }
"$WORK/kgo.test" -test.list "$RUN" | grep '^Test' >"$WORK/listed" || true
[ -s "$WORK/listed" ] || { log "no test matches --run '$RUN'"; exit 5; }

# --- broker --------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# start_broker: a fresh broker (empty data dir) on $PORT; returns 1 if it did
# not come up within STARTUP_TIMEOUT.
start_broker() {
    if [ "$BROKER" = cluster ]; then
        rm -rf "$WORK/cluster"
        log "starting etcd and three strom brokers (scripts/local-cluster.sh) on $SEEDS"
        CLUSTER_UP=1
        CLUSTER_START_TIMEOUT="$STARTUP_TIMEOUT" cluster_sh start-all >>"$WORK/broker.log" 2>&1 || {
            log "the cluster did not start; its output:"
            tail -n 40 "$WORK/broker.log" >&2 || true
            return 1
        }
        return 0
    fi
    rm -rf "$WORK/run"
    mkdir -p "$WORK/run/data"
    if [ "$BROKER" = strom ]; then
        # franz-go's SASL tests (TestSCRAMAuth, TestSCRAMAuthBadCredentials,
        # TestOAuthAuth) get a SCRAM listener with a user written before the
        # first start, and an OAUTHBEARER listener with Kafka's unsecured
        # validator (the unsigned tokens TestOAuthAuth sends).
        "$STROM" storage format --override "log.dirs=$WORK/run/data" \
            --add-scram "SCRAM-SHA-256=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]" \
            >>"$WORK/broker.log" 2>&1
        setsid "$STROM" serve \
            --override "listeners=PLAINTEXT://127.0.0.1:$PORT,SCRAM://127.0.0.1:$SCRAM_PORT,OAUTH://127.0.0.1:$OAUTH_PORT" \
            --override "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SCRAM:SASL_PLAINTEXT,OAUTH:SASL_PLAINTEXT" \
            --override "listener.name.scram.sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512" \
            --override "listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER" \
            --override "listener.name.oauth.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler" \
            --override "log.dirs=$WORK/run/data" >>"$WORK/broker.log" 2>&1 </dev/null &
    else
        setsid "$ROOT/compat/kafka.sh" "$PORT" "$WORK/run" >>"$WORK/broker.log" 2>&1 </dev/null &
    fi
    BROKER_PID=$!
    log "started $BROKER (pid $BROKER_PID) on $SEEDS, waiting for the port"
    local deadline=$((SECONDS + STARTUP_TIMEOUT))
    until port_open 127.0.0.1 "$PORT"; do
        if ! kill -0 "$BROKER_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            log "$BROKER did not start listening on $SEEDS; its output:"
            tail -n 40 "$WORK/broker.log" >&2 || true
            return 1
        fi
        sleep 0.25
    done
}

BROKER_DESC="$BROKER"
if [ -n "$BOOTSTRAP" ]; then
    SEEDS="$BOOTSTRAP"
    BROKER_DESC="external broker at $BOOTSTRAP"
    port_open "${BOOTSTRAP%:*}" "${BOOTSTRAP##*:}" || { log "nothing answers on $BOOTSTRAP"; exit 3; }
elif [ "$BROKER" = cluster ]; then
    # Free ports, not local-cluster.sh's defaults: `make cluster` may be running.
    P1="$(free_port)"; P2="$(free_port)"; P3="$(free_port)"
    export CLUSTER_BROKER_PORTS="$P1 $P2 $P3"
    export CLUSTER_ETCD_CLIENT_PORTS="$(free_port)" CLUSTER_ETCD_PEER_PORTS="$(free_port)"
    export CLUSTER_LOG_LEVEL="${CLUSTER_LOG_LEVEL:-INFO}"
    # As compat/kafka.sh: a new group's first rebalance does not wait 3 s.
    export CLUSTER_OVERRIDES="${CLUSTER_OVERRIDES:-group.initial.rebalance.delay.ms=0}"
    [ -x "$ROOT/.venv/bin/python" ] || { log "no .venv: create it first (make serve)"; exit 3; }
    SEEDS="127.0.0.1:$P1,127.0.0.1:$P2,127.0.0.1:$P3"
    start_broker || exit 3
    v="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)"
    if [ -n "$v" ] && [ -n "$(git -C "$ROOT" status --porcelain -- strom 2>/dev/null)" ]; then v="$v + uncommitted changes"; fi
    BROKER_DESC="strom cluster: 3 brokers + etcd${v:+ (commit $v)}"
else
    PORT="$(free_port)"
    SEEDS="127.0.0.1:$PORT"
    if [ "$BROKER" = strom ]; then
        SCRAM_PORT="$(free_port)"; OAUTH_PORT="$(free_port)"
        SCRAM_USER=kgo; SCRAM_PASSWORD=kgo-secret
        export KGO_TEST_SCRAM="$SCRAM_USER:$SCRAM_PASSWORD:256"
        export KGO_TEST_SCRAM_SEEDS="127.0.0.1:$SCRAM_PORT" KGO_TEST_OAUTH_SEEDS="127.0.0.1:$OAUTH_PORT"
        STROM="$ROOT/.venv/bin/strom"
        [ -x "$STROM" ] || { log "$STROM not found: create the venv first (make serve / pip install -e .)"; exit 3; }
    fi
    start_broker || exit 3
    if [ "$BROKER" = kafka ]; then
        v="$(sed -n 's/.*Kafka version: \([^ ]*\).*/\1/p' "$WORK/run/server.log" 2>/dev/null | head -n1)"
        BROKER_DESC="Apache Kafka ${v:-4.x} (KRaft, single node)"
    else
        v="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)"
        if [ -n "$v" ] && [ -n "$(git -C "$ROOT" status --porcelain -- strom 2>/dev/null)" ]; then v="$v + uncommitted changes"; fi
        BROKER_DESC="strom${v:+ (commit $v)}"
    fi
fi

# --- tests -----------------------------------------------------------------
export KGO_SEEDS="$SEEDS" KGO_TEST_RF=1
if [ "$BROKER" = cluster ]; then KGO_TEST_RF=3; fi
if [ -n "$RECORDS" ]; then export KGO_TEST_RECORDS="$RECORDS"; fi
# Everything of this run stays in $WORK (concurrent runs must not mix) and is
# copied to .cache/compat/last-* at exit.
EVENTS="$WORK/events.jsonl"
STDERR="$WORK/stderr.log"
: >"$EVENTS"
: >"$STDERR"
: >"$WORK/crashed"
: >"$WORK/capped"
START=$SECONDS
cd "$SRC/pkg/kgo"
if [ "$PACKAGE" = 1 ]; then
    log "go test -run '$RUN' -timeout $TIMEOUT against $SEEDS (${KGO_TEST_RECORDS:-500000} records per ETL test)"
    go test -json -count=1 -run "$RUN" -timeout "$TIMEOUT" . 2>"$STDERR" \
        | head -c "$((MAX_OUTPUT * 8))" >"$EVENTS" || true
else
    # Client-only tests first: they take seconds, and a broker that hangs
    # tests must not spend the budget before they run.
    python3 "$ROOT/compat/report.py" --classify "$SRC" >"$WORK/classes"
    sed -n 's/^unit //p' "$WORK/classes" >"$WORK/unit"
    mapfile -t TESTS < <(grep -Fxf "$WORK/unit" "$WORK/listed" || true; grep -vFxf "$WORK/unit" "$WORK/listed" || true)
    log "${#TESTS[@]} tests, one process each (-timeout $TEST_TIMEOUT each, $TIMEOUT in all), against $SEEDS" \
        "(${KGO_TEST_RECORDS:-500000} records per ETL test)"
    restarts=0
    for t in "${TESTS[@]}"; do
        left=$((BUDGET - (SECONDS - START)))
        if [ "$left" -le 0 ]; then
            log "the $TIMEOUT budget is spent; $t and the tests after it are not run"
            echo "not run: the $TIMEOUT budget (--timeout) was spent first" >"$WORK/stopped"
            break
        fi
        before=$(stat -c %s "$EVENTS")
        # head -c bounds what a runaway test can log; when it stops reading, the
        # test dies of SIGPIPE on its next write.
        go tool test2json -t -p github.com/twmb/franz-go/pkg/kgo "$WORK/kgo.test" -test.v=test2json \
            -test.count=1 -test.run "^${t}\$" -test.timeout "$(( left < TEST_SECS ? left : TEST_SECS ))s" \
            2>>"$STDERR" | head -c "$MAX_OUTPUT" >>"$EVENTS" || true
        if [ $(( $(stat -c %s "$EVENTS") - before )) -ge "$MAX_OUTPUT" ]; then
            echo "$t" >>"$WORK/capped"
            echo >>"$EVENTS"  # the cut may have left half a line
            log "$t wrote more than $MAX_OUTPUT_MB MB of output; cut off there"
        fi
        if [ -n "$BROKER_PID" ] && ! kill -0 "$BROKER_PID" 2>/dev/null; then
            echo "$t" >>"$WORK/crashed"
            log "the broker exited during $t; the end of its output:"
            tail -n 15 "$WORK/broker.log" >&2 || true
            wait "$BROKER_PID" 2>/dev/null || true
            BROKER_PID=""
            restarts=$((restarts + 1))
            if [ "$restarts" -gt "$MAX_RESTARTS" ] || ! start_broker; then
                log "not restarting the broker again; the remaining tests are not run"
                echo "not run: the broker died and was not restarted" >"$WORK/stopped"
                break
            fi
        elif [ "$BROKER" = cluster ] && down="$(cluster_sh status | awk '$1 ~ /^broker-/ && $3 != "running" {sub("broker-", "", $1); print $1}')" \
                && [ -n "$down" ]; then
            echo "$t" >>"$WORK/crashed"
            for id in $down; do
                log "broker $id of the cluster exited during $t; the end of its output:"
                tail -n 15 "$WORK/cluster/broker-$id.log" >&2 || true
                restarts=$((restarts + 1))
                if [ "$restarts" -gt "$MAX_RESTARTS" ] || ! cluster_sh start "$id" >>"$WORK/broker.log" 2>&1; then
                    log "not restarting broker $id again; the remaining tests are not run"
                    echo "not run: a cluster broker died and was not restarted" >"$WORK/stopped"
                    break 2
                fi
            done
        elif [ -n "$BOOTSTRAP" ] && ! port_open "${BOOTSTRAP%:*}" "${BOOTSTRAP##*:}"; then
            echo "$t" >>"$WORK/crashed"
            log "nothing answers on $BOOTSTRAP any more (after $t); the remaining tests are not run"
            echo "not run: nothing answered on $BOOTSTRAP any more" >"$WORK/stopped"
            break
        fi
    done
fi
WALL=$((SECONDS - START))
cd "$ROOT"
if [ "$PACKAGE" = 1 ] && [ -n "$BROKER_PID" ] && ! kill -0 "$BROKER_PID" 2>/dev/null; then
    echo "(during the package run)" >>"$WORK/crashed"
    log "the broker exited during the run; the end of its output:"
    tail -n 20 "$WORK/broker.log" >&2 || true
fi

COMPARE=()
if [ "$BROKER" != kafka ] && [ -f "$ROOT/compat/results-kafka.json" ]; then
    COMPARE=(--compare "$ROOT/compat/results-kafka.json")
fi
SHORT="$BROKER"
if [ "$BROKER" = cluster ]; then SHORT="strom cluster"; fi
case "$BROKER_DESC" in "Apache Kafka "*) SHORT="Kafka ${BROKER_DESC#Apache Kafka }"; SHORT="${SHORT%% (*}" ;; esac
if [ "$PACKAGE" = 1 ]; then
    mode="package (one go test process, -timeout $TIMEOUT)"
else
    mode="isolated (one process per test, -timeout $TEST_TIMEOUT each, $TIMEOUT in all)"
fi
python3 "$ROOT/compat/report.py" --events "$EVENTS" --src "$SRC" --out "$OUT" "${COMPARE[@]}" \
    --listed "$WORK/listed" --crashed "$WORK/crashed" --stopped "$WORK/stopped" --capped "$WORK/capped" \
    --markdown "$WORK/report.md" \
    --meta "broker=$BROKER_DESC" --meta "broker_short=$SHORT" \
    --meta "franz_go=$FRANZ_GO_VERSION" --meta "go=$(go env GOVERSION)" \
    --meta "date=$(date -u +%Y-%m-%dT%H:%MZ)" --meta "wall_seconds=$WALL" \
    --meta "records=${KGO_TEST_RECORDS:-500000}" --meta "mode=$mode" --meta "run=$RUN" \
    --meta "host=$(nproc) cores" \
    || { log "report failed (raw events in .cache/compat/last-run.jsonl)"; exit 5; }
log "wrote ${OUT#"$ROOT"/}; raw go test events in .cache/compat/last-run.jsonl, broker output in .cache/compat/last-broker.log"
exit 0
