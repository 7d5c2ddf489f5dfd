#!/bin/bash
# A short look at strom alone under the soak's producers (bench/soak.py), for
# A/B runs while working on the produce path (issue 19): one strom with
# acks=all fsync'd, 5 processes x 10 librdkafka producers, 10,000 keyed 1 KiB
# records/s over 12 partitions, linger.ms 5. Prints the broker's CPU, its
# flush counters from /metrics and the pooled ack p50/p99/p99.9.
#
#   bench/soak-probe.sh SECONDS [--override k=v ...]
#   CONSUMER=1   also run the soak's tailing consumer
#   RETENTION=1  retention.bytes 32 MiB, checked every 5 s (segments deleted
#                under load; 16 MiB segments as in the soak)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=$1
shift
data=.cache/bench/soak-probe
port=19292
http=19293
rm -rf "$data"
mkdir -p "$data"
retention=()
if [ -n "${RETENTION:-}" ]; then
    retention=(--override log.retention.bytes=33554432 --override log.retention.check.interval.ms=5000)
fi
.venv/bin/strom serve --log-level WARNING --override listeners=PLAINTEXT://127.0.0.1:$port \
    --override "log.dirs=$data/d" --override num.partitions=12 \
    --override auto.create.topics.enable=true --override strom.acks.all.fsync=true \
    --override strom.http.listener=http://127.0.0.1:$http --override log.segment.bytes=16777216 \
    "${retention[@]}" "$@" > "$data/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true' EXIT
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
kcat -b 127.0.0.1:$port -P -t soak -K: <<< "k:v"
cpu0=$(awk '{print $14 + $15}' /proc/$broker/stat)
clients=()
if [ -n "${CONSUMER:-}" ]; then
    .venv/bin/python bench/loadgen.py soak-consumer --bootstrap 127.0.0.1:$port --topic soak \
        --duration $((duration + 3)) > "$data/consumer.out" 2> "$data/consumer.err" &
    clients+=($!)
    sleep 2  # assigned before the first record, as in bench/soak.py
fi
for i in 1 2 3 4 5; do
    .venv/bin/python bench/loadgen.py soak-producers --bootstrap 127.0.0.1:$port --topic soak \
        --duration "$duration" --producers 10 --rate 2000 --keys 100000 --size 1024 \
        --acks all --linger-ms 5 > "$data/producers$i.out" 2> "$data/producers$i.err" &
    clients+=($!)
done
wait "${clients[@]}"
cpu1=$(awk '{print $14 + $15}' /proc/$broker/stat)
echo "broker CPU: $(( (cpu1 - cpu0) * 10 )) ms"
curl -s http://127.0.0.1:$http/metrics | grep -E "^strom_log_flush_(duration_seconds_(count|sum|bucket)|syncfs)"
.venv/bin/python - "$data" <<'PY'
import glob, json, math, sys

bucket = math.log(1.02)  # loadgen.py's latency histogram: µs in 2% buckets
hist: dict[int, int] = {}
for name in glob.glob(f"{sys.argv[1]}/producers?.out"):
    for line in open(name):
        try:
            report = json.loads(line)
        except ValueError:
            continue
        for k, v in (report.get("hist") or {}).items():
            hist[int(k)] = hist.get(int(k), 0) + v
total = sum(hist.values())


def percentile(q: float) -> float:
    seen = 0
    for k in sorted(hist):
        seen += hist[k]
        if seen >= q * total:
            return math.exp((k + 0.5) * bucket) / 1000
    return float("nan")


print(f"acks {total}: p50 {percentile(0.5):.2f} p99 {percentile(0.99):.2f} "
      f"p99.9 {percentile(0.999):.2f} ms")
PY
