#!/usr/bin/env bash
# Fetches Apache Kafka's jars (server, tools, clients, Kafka Streams and the
# log4j2/slf4j runtime the tools log through) from Maven Central into
# .cache/kafka/libs/.
#
# Idempotent: does nothing when the jars of this version are already there.
# Needs java and mvn (scripts/install-system-deps.sh installs them); reads no stdin.
#
#   KAFKA_VERSION=4.4.0 scripts/fetch-kafka.sh      # version override
#   scripts/fetch-kafka.sh --force                   # fetch again
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
LOG4J_VERSION="${LOG4J_VERSION:-2.24.3}"
SLF4J_VERSION="${SLF4J_VERSION:-2.0.17}"

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache"
dest="$cache/kafka"
libs="$dest/libs"
stamp="$dest/.fetched-$KAFKA_VERSION"

if [ "${1:-}" != "--force" ] && [ -f "$stamp" ] \
  && [ -f "$libs/kafka_2.13-$KAFKA_VERSION.jar" ] \
  && [ -f "$libs/kafka-tools-$KAFKA_VERSION.jar" ] \
  && [ -f "$libs/kafka-clients-$KAFKA_VERSION.jar" ] \
  && [ -f "$libs/kafka-streams-$KAFKA_VERSION.jar" ]; then
  exit 0
fi

for tool in java mvn; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "fetch-kafka: '$tool' not found; run scripts/install-system-deps.sh" >&2
    exit 1
  fi
done

work="$cache/kafka-fetch"
mkdir -p "$work"
cat >"$work/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>strom.local</groupId>
  <artifactId>kafka-fetch</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-storage</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-streams</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-1.2-api</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF

echo "fetch-kafka: Apache Kafka $KAFKA_VERSION jars -> ${libs#"$root"/}"
tmp="$dest/libs.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
# -B: batch mode (no prompts, no colours); runtime scope: what the tools run with.
log="$work/mvn.log"
if ! mvn -B -q -Dstyle.color=never -f "$work/pom.xml" dependency:copy-dependencies \
  -DoutputDirectory="$tmp" -DincludeScope=runtime </dev/null >"$log" 2>&1; then
  cat "$log" >&2
  rm -rf "$tmp"
  echo "fetch-kafka: mvn failed (log: ${log#"$root"/})" >&2
  exit 1
fi
rm -rf "$libs"
mv "$tmp" "$libs"
rm -f "$dest"/.fetched-*
touch "$stamp"
echo "fetch-kafka: $(find "$libs" -name "*.jar" | wc -l) jars"
