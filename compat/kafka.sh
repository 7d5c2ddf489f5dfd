#!/usr/bin/env bash
# compat/kafka.sh PORT DATA_DIR — run a single-node Apache Kafka 4.x (KRaft,
# broker+controller in one JVM) on 127.0.0.1:PORT in the foreground, with its
# data, config and log under DATA_DIR. Used by compat/run.sh --broker kafka to
# take the baseline that strom is compared against.
#
# Jars: .cache/kafka/libs, fetched from Maven Central by scripts/fetch-kafka.sh
# (KAFKA_VERSION overrides its pinned version).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${1:?usage: compat/kafka.sh PORT DATA_DIR}"
DIR="${2:?usage: compat/kafka.sh PORT DATA_DIR}"

command -v java >/dev/null || { echo "compat/kafka.sh: java not found (make system-deps)" >&2; exit 2; }
"$ROOT/scripts/fetch-kafka.sh" >&2
LIBS="$ROOT/.cache/kafka/libs"
compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null || { echo "compat/kafka.sh: no Kafka jars in $LIBS" >&2; exit 1; }
# A port for the KRaft controller listener, next to the broker's.
CPORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

mkdir -p "$DIR/data"
cat > "$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
# As franz-go's own CI runs Kafka: all three group protocols, share groups
# with a delivery-count limit its share ETL test does not hit.
group.coordinator.rebalance.protocols=classic,consumer,share
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=5
group.share.delivery.count.limit=10
PROPS

cat > "$DIR/log4j2.properties" <<'LOG'
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
LOG
if [ "${COMPAT_KAFKA_REQUEST_LOG:-0}" = 1 ]; then
    # Every request, one JSON line each, in DIR/requests.log (for finding
    # which APIs a test uses; see docs/compat.md).
    cat >> "$DIR/log4j2.properties" <<'LOG'
appender.req.type = File
appender.req.name = req
appender.req.fileName = ${sys:kafka.logs.dir}/requests.log
appender.req.layout.type = PatternLayout
appender.req.layout.pattern = %m%n
logger.req.name = kafka.request.logger
logger.req.level = DEBUG
logger.req.additivity = false
logger.req.appenderRef.req.ref = req
LOG
fi

JAVA_OPTS=(-Xms512m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
    -Dkafka.logs.dir="$DIR" -Dlog4j2.configurationFile="$DIR/log4j2.properties")
java "${JAVA_OPTS[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format \
    -t MkU3OEVBNTcwNTJENDM1Tk -c "$DIR/server.properties" >"$DIR/format.log" 2>&1 \
    || { cat "$DIR/format.log" >&2; exit 1; }
exec java "${JAVA_OPTS[@]}" -cp "$LIBS/*" kafka.Kafka "$DIR/server.properties"
