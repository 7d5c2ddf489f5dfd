#!/usr/bin/env bash
# Installs the system packages the test suite needs, only those missing:
# kcat (librdkafka's CLI) and librdkafka-dev, a JDK and Maven (to fetch and run Kafka's own tools),
# nftables (the network-partition tests);
# then etcd (cluster mode's metadata store), built from its Go module.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v java >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# nft: the partition tests drop traffic between network namespaces (tests/cluster/netns.py).
command -v nft >/dev/null 2>&1 || missing+=(nftables)
# librdkafka-dev: the benchmarks' C load generator (bench/rdkgen_src/) builds against it.
[ -f /usr/include/librdkafka/rdkafka.h ] || missing+=(librdkafka-dev)
# chromium: the web console's browser tests (tests/console) drive it headless.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$here/install-etcd.sh"
