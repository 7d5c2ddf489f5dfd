#!/usr/bin/env bash
# A strom cluster on this machine: etcd and three brokers (node ids 1, 2, 3 on
# 127.0.0.1:19092, 19093, 19094; etcd on 127.0.0.1:2379), for people trying
# cluster mode and for the tests that inject faults into one.
#
#   scripts/local-cluster.sh start-all     etcd, then every broker (each waited for)
#   scripts/local-cluster.sh stop-all      brokers (SIGTERM, controlled shutdown), then etcd
#   scripts/local-cluster.sh run           start-all, then wait; Ctrl-C stops all (`make cluster`)
#   scripts/local-cluster.sh start ID      start broker ID and wait until it answers
#   scripts/local-cluster.sh stop ID       SIGTERM, wait (bounded) for it to exit
#   scripts/local-cluster.sh kill ID       SIGKILL (kill -9)
#   scripts/local-cluster.sh pause ID      SIGSTOP (a hung broker: its etcd lease runs out)
#   scripts/local-cluster.sh resume ID     SIGCONT
#   scripts/local-cluster.sh etcd-start [N] / etcd-stop [N] / etcd-kill N
#                                          etcd member N (1-based), or every member
#   scripts/local-cluster.sh bootstrap     prints the bootstrap list (host:port,...)
#   scripts/local-cluster.sh etcd-endpoints prints etcd's client endpoints
#   scripts/local-cluster.sh status        one line per process: name, pid, state
#   scripts/local-cluster.sh pid NAME      the pid of broker-ID or etcd-N (exit 1 if not running)
#
# Processes are tracked by pid files under $CLUSTER_DIR/pids, never found by
# name; a pid file is trusted only while /proc/<pid>/cmdline still names this
# cluster's directory (a reused pid is not ours). Each process runs in its own
# session (setsid), so a Ctrl-C in the terminal reaches only this script, which
# then stops brokers before etcd.
#
# Settings (environment):
#   CLUSTER_DIR                 data, logs, pid files (default ./cluster-data)
#   CLUSTER_BROKER_PORTS        broker ports; node ids are 1..n in this order
#                               (default "19092 19093 19094")
#   CLUSTER_HOST                listen/advertised host (default 127.0.0.1)
#   CLUSTER_BROKER_HOSTS        one host per broker instead (default CLUSTER_HOST each)
#   CLUSTER_ETCD_HOSTS          one host per etcd member instead (default CLUSTER_HOST each)
#   CLUSTER_NETNS_PREFIX        run process NAME (broker-ID, etcd-N) in the network
#                               namespace ${CLUSTER_NETNS_PREFIX}NAME (`ip netns exec`;
#                               made by the caller, e.g. tests/cluster/netns.py)
#   CLUSTER_ID                  cluster.id (default strom-local)
#   CLUSTER_ETCD_CLIENT_PORTS   one port per etcd member (default "2379"; give
#                               three for a three-member etcd)
#   CLUSTER_ETCD_PEER_PORTS     etcd peer ports (default: client port + 1 each)
#   CLUSTER_ETCD_HEARTBEAT_MS / CLUSTER_ETCD_ELECTION_MS  etcd's (default 100 / 1000)
#   CLUSTER_SESSION_TIMEOUT_MS  broker.session.timeout.ms (default 9000, Kafka's)
#   CLUSTER_REPLICA_LAG_MS      replica.lag.time.max.ms (default 30000, Kafka's)
#   CLUSTER_OVERRIDES           more broker properties, "key=value key=value"
#   CLUSTER_START_TIMEOUT       seconds to wait for a process to answer (default 60)
#   CLUSTER_STOP_TIMEOUT        seconds to wait for a SIGTERM'd process (default 60;
#                               after that it is killed, with a warning)
#   CLUSTER_LOG_LEVEL           brokers' --log-level (default INFO)
#   STROM_PYTHON                the python that runs strom (default .venv/bin/python)
#   STROM_ETCD                  the etcd binary (default .cache/etcd/etcd, built by
#                               scripts/install-etcd.sh)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
CLUSTER_DIR="${CLUSTER_DIR:-./cluster-data}"
mkdir -p "$CLUSTER_DIR"
CLUSTER_DIR="$(cd "$CLUSTER_DIR" && pwd)"
HOST="${CLUSTER_HOST:-127.0.0.1}"
read -r -a BROKER_PORTS <<< "${CLUSTER_BROKER_PORTS:-19092 19093 19094}"
read -r -a ETCD_CLIENT_PORTS <<< "${CLUSTER_ETCD_CLIENT_PORTS:-2379}"
read -r -a BROKER_HOSTS <<< "${CLUSTER_BROKER_HOSTS:-}"
read -r -a ETCD_HOSTS <<< "${CLUSTER_ETCD_HOSTS:-}"
NETNS_PREFIX="${CLUSTER_NETNS_PREFIX:-}"
if [ -n "${CLUSTER_ETCD_PEER_PORTS:-}" ]; then
  read -r -a ETCD_PEER_PORTS <<< "$CLUSTER_ETCD_PEER_PORTS"
else
  ETCD_PEER_PORTS=()
  for port in "${ETCD_CLIENT_PORTS[@]}"; do ETCD_PEER_PORTS+=("$((port + 1))"); done
fi
if [ "${#ETCD_PEER_PORTS[@]}" -ne "${#ETCD_CLIENT_PORTS[@]}" ]; then
  echo "local-cluster: CLUSTER_ETCD_PEER_PORTS needs one port per etcd member" >&2
  exit 2
fi
PYTHON="${STROM_PYTHON:-$root/.venv/bin/python}"
ETCD="${STROM_ETCD:-$root/.cache/etcd/etcd}"
START_TIMEOUT="${CLUSTER_START_TIMEOUT:-60}"
STOP_TIMEOUT="${CLUSTER_STOP_TIMEOUT:-60}"
PIDS="$CLUSTER_DIR/pids"
mkdir -p "$PIDS"

die() { echo "local-cluster: $*" >&2; exit 1; }

broker_count() { echo "${#BROKER_PORTS[@]}"; }
etcd_count() { echo "${#ETCD_CLIENT_PORTS[@]}"; }

broker_host() { echo "${BROKER_HOSTS[$(($1 - 1))]:-$HOST}"; }  # node id -> host
etcd_host() { echo "${ETCD_HOSTS[$(($1 - 1))]:-$HOST}"; }  # member -> host

broker_port() {  # node id -> port
  local id="$1"
  [[ "$id" =~ ^[0-9]+$ ]] && [ "$id" -ge 1 ] && [ "$id" -le "$(broker_count)" ] \
    || die "no broker $id (node ids are 1..$(broker_count))"
  echo "${BROKER_PORTS[$((id - 1))]}"
}

check_member() {
  local n="$1"
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$(etcd_count)" ] \
    || die "no etcd member $n (members are 1..$(etcd_count))"
}

bootstrap() {
  local out="" id
  for id in $(seq 1 "$(broker_count)"); do
    out="${out:+$out,}$(broker_host "$id"):${BROKER_PORTS[$((id - 1))]}"
  done
  echo "$out"
}

etcd_endpoints() {
  local out="" n
  for n in $(seq 1 "$(etcd_count)"); do
    out="${out:+$out,}$(etcd_host "$n"):${ETCD_CLIENT_PORTS[$((n - 1))]}"
  done
  echo "$out"
}

# -- processes ------------------------------------------------------------------------

# The pid in $PIDS/<name>.pid if that process is ours and has not exited
# (a zombie has exited: its parent just has not reaped it yet).
pid_of() {
  local file="$PIDS/$1.pid" pid state
  [ -f "$file" ] || return 1
  pid="$(cat "$file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  # One argument is this process's own path under $CLUSTER_DIR (etcd's data
  # dir, a broker's server.properties); broker-1 must not match broker-10.
  tr '\0' '\n' < "/proc/$pid/cmdline" | awk -v p="$CLUSTER_DIR/$1" \
    '$0 == p || index($0, p "/") == 1 { found = 1 } END { exit !found }' || return 1
  state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [ -n "$state" ] && [ "$state" != "Z" ] && [ "$state" != "X" ] || return 1
  echo "$pid"
}

state_of() {  # running | paused | stopped
  local pid state
  if ! pid="$(pid_of "$1")"; then echo stopped; return; fi
  state="$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)"
  if [ "$state" = "T" ]; then echo paused; else echo running; fi
}

# Start "$@" in its own session, writing its pid to $PIDS/<name>.pid from
# inside (the pid of the process that then execs the command).
spawn() {
  local name="$1"; shift
  local log="$CLUSTER_DIR/$name.log"
  echo "--- $(date -u +%FT%TZ) starting $name" >> "$log"
  rm -f "$PIDS/$name.pid"
  # `ip netns exec` enters the namespace and execs the command: the pid stays the same.
  [ -z "$NETNS_PREFIX" ] || set -- ip netns exec "$NETNS_PREFIX$name" "$@"
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$PIDS/$name.pid" "$@" \
    >> "$log" 2>&1 < /dev/null &
  # The pid file is written by the child: wait for it (bounded).
  local deadline=$((SECONDS + 10))
  until [ -s "$PIDS/$name.pid" ] && [ "$(cat "$PIDS/$name.pid")" = "$!" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "$name did not start"
    kill -0 "$!" 2>/dev/null || break
    sleep 0.01  # the child writes its pid file within microseconds
  done
}

# SIGTERM (resuming it if paused, or the signal would wait), then wait up to
# $STOP_TIMEOUT for it to exit; a process still there is killed.
terminate() {
  local name="$1" pid
  pid="$(pid_of "$name")" || { rm -f "$PIDS/$name.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  kill -CONT "$pid" 2>/dev/null || true
  if ! wait_exit "$pid" "$STOP_TIMEOUT"; then
    echo "local-cluster: $name (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_exit "$pid" 10 || die "$name (pid $pid) survived SIGKILL"
  fi
  rm -f "$PIDS/$name.pid"
}

kill9() {
  local name="$1" pid
  pid="$(pid_of "$name")" || die "$name is not running"
  kill -KILL "$pid"
  wait_exit "$pid" 10 || die "$name (pid $pid) survived SIGKILL"
  rm -f "$PIDS/$name.pid"
}

wait_exit() {  # pid, seconds
  # Until the process is gone or a zombie. Not pid_of: a dying process loses
  # its cmdline (its memory) before it stops running, and "exited" then
  # would be early (a kill -9'd broker still ran when the script returned).
  local deadline=$((SECONDS + $2)) state
  while state="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" \
      && [ -n "$state" ] && [ "$state" != "Z" ] && [ "$state" != "X" ]; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05  # polling /proc: a process that is not our child has no exit event for us
  done
}

signal_to() {  # signal, name
  local pid
  pid="$(pid_of "$2")" || die "$2 is not running"
  kill "-$1" "$pid"
}

# Waits (bounded) until the process answers: etcd's /health says true, or a
# broker answers an ApiVersions request. Fails at once when it exits.
wait_ready() {  # kind (broker|etcd), name, port, host
  "$PYTHON" - "$1" "$2" "$3" "$4" "$START_TIMEOUT" "$PIDS/$2.pid" "$CLUSTER_DIR/$2.log" <<'EOF'
import json, os, socket, struct, sys, time, urllib.request
kind, name, port, host, timeout, pid_file, log = sys.argv[1:]
pid = int(open(pid_file).read())
deadline = time.monotonic() + float(timeout)

def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False

def ready():
    if kind == "etcd":
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=1) as r:
            return json.loads(r.read()).get("health") == "true"
    # ApiVersions v0, correlation id 1, null client id
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.settimeout(2)
        s.sendall(struct.pack(">ihhih", 10, 18, 0, 1, -1))
        head = s.recv(8)
        return len(head) == 8 and struct.unpack(">ii", head)[1] == 1

while True:
    if not alive():
        tail = open(log, errors="replace").read()[-3000:]
        sys.exit(f"local-cluster: {name} exited during start-up; end of {log}:\n{tail}")
    try:
        if ready():
            sys.exit(0)
    except (OSError, ValueError):
        pass
    if time.monotonic() > deadline:
        sys.exit(f"local-cluster: {name} did not answer on {host}:{port} within {timeout}s "
                 f"(log: {log})")
    time.sleep(0.1)  # polling a port: there is no event to wait on
EOF
}

# -- etcd -----------------------------------------------------------------------------

etcd_spawn() {  # member number
  local n="$1" name="etcd-$1" initial="" i
  [ -x "$ETCD" ] || die "no etcd at $ETCD: run scripts/install-etcd.sh (or set STROM_ETCD)"
  pid_of "$name" > /dev/null && { echo "$name already running"; return 0; }
  for i in $(seq 1 "$(etcd_count)"); do
    initial="${initial:+$initial,}etcd-$i=http://$(etcd_host "$i"):${ETCD_PEER_PORTS[$((i - 1))]}"
  done
  local client="http://$(etcd_host "$n"):${ETCD_CLIENT_PORTS[$((n - 1))]}"
  local peer="http://$(etcd_host "$n"):${ETCD_PEER_PORTS[$((n - 1))]}"
  # --initial-cluster* only matter the first time: a restart reads its data dir.
  spawn "$name" "$ETCD" --name "$name" --data-dir "$CLUSTER_DIR/$name" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$initial" --initial-cluster-state new \
    --initial-cluster-token "strom-${CLUSTER_ID:-strom-local}" \
    --heartbeat-interval "${CLUSTER_ETCD_HEARTBEAT_MS:-100}" \
    --election-timeout "${CLUSTER_ETCD_ELECTION_MS:-1000}" \
    --log-level warn
}

etcd_start() {  # [member]: a member alone needs the others for quorum, so start first, wait after
  local members n
  if [ $# -gt 0 ]; then check_member "$1"; members="$1"; else members="$(seq 1 "$(etcd_count)")"; fi
  for n in $members; do etcd_spawn "$n"; done
  for n in $members; do
    wait_ready etcd "etcd-$n" "${ETCD_CLIENT_PORTS[$((n - 1))]}" "$(etcd_host "$n")"
  done
}

etcd_stop() {
  local n
  if [ $# -gt 0 ]; then check_member "$1"; terminate "etcd-$1"; return; fi
  for n in $(seq "$(etcd_count)" -1 1); do terminate "etcd-$n"; done
}

# -- brokers --------------------------------------------------------------------------

write_properties() {  # node id -> path of its server.properties
  local id="$1" port dir file item
  port="$(broker_port "$id")"
  dir="$CLUSTER_DIR/broker-$id"
  file="$dir/server.properties"
  mkdir -p "$dir/data"
  {
    echo "# written by scripts/local-cluster.sh at each start; edit CLUSTER_* instead"
    echo "node.id=$id"
    echo "cluster.id=${CLUSTER_ID:-strom-local}"
    echo "listeners=PLAINTEXT://$(broker_host "$id"):$port"
    echo "log.dirs=$dir/data"
    echo "strom.metadata.etcd.endpoints=$(etcd_endpoints)"
    echo "broker.session.timeout.ms=${CLUSTER_SESSION_TIMEOUT_MS:-9000}"
    # Kafka's settings for a cluster of three.
    echo "default.replication.factor=3"
    echo "min.insync.replicas=2"
    echo "offsets.topic.replication.factor=3"
    echo "transaction.state.log.replication.factor=3"
    echo "transaction.state.log.min.isr=2"
    echo "unclean.leader.election.enable=false"
    echo "replica.lag.time.max.ms=${CLUSTER_REPLICA_LAG_MS:-30000}"
    for item in ${CLUSTER_OVERRIDES:-}; do echo "$item"; done
  } > "$file.tmp"
  mv "$file.tmp" "$file"
  echo "$file"
}

broker_start() {
  local id="$1" port file
  port="$(broker_port "$id")"
  if pid_of "broker-$id" > /dev/null; then echo "broker-$id already running"; return 0; fi
  [ -x "$PYTHON" ] || die "no python at $PYTHON: run make (or set STROM_PYTHON)"
  file="$(write_properties "$id")"
  spawn "broker-$id" "$PYTHON" -m strom serve --config "$file" \
    --log-level "${CLUSTER_LOG_LEVEL:-INFO}"
  wait_ready broker "broker-$id" "$port" "$(broker_host "$id")"
}

start_all() {
  local id
  etcd_start
  for id in $(seq 1 "$(broker_count)"); do broker_start "$id"; done
  echo "cluster up: bootstrap $(bootstrap); etcd $(etcd_endpoints); data and logs in $CLUSTER_DIR"
}

stop_all() {
  local id
  for id in $(seq "$(broker_count)" -1 1); do terminate "broker-$id"; done
  etcd_stop
}

status() {
  local name pid
  for name in $(for i in $(seq 1 "$(etcd_count)"); do echo "etcd-$i"; done) \
              $(for i in $(seq 1 "$(broker_count)"); do echo "broker-$i"; done); do
    pid="$(pid_of "$name" || echo -)"
    echo "$name $pid $(state_of "$name")"
  done
}

run_foreground() {
  local idle=""
  trap 'trap - INT TERM EXIT; [ -z "$idle" ] || kill "$idle" 2>/dev/null || true
        echo; echo "stopping the cluster"; stop_all; exit 0' INT TERM
  trap '[ -z "$idle" ] || kill "$idle" 2>/dev/null || true; stop_all' EXIT
  start_all
  echo "Ctrl-C stops every process (brokers first, then etcd)"
  # Idle until a signal: `wait` returns as soon as a trapped signal arrives.
  sleep infinity &
  idle=$!
  wait "$idle" || true
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  start-all) start_all ;;
  stop-all) stop_all ;;
  run) run_foreground ;;
  start) [ $# -eq 1 ] || die "usage: start ID"; broker_start "$1" ;;
  stop) [ $# -eq 1 ] || die "usage: stop ID"; broker_port "$1" > /dev/null; terminate "broker-$1" ;;
  kill) [ $# -eq 1 ] || die "usage: kill ID"; broker_port "$1" > /dev/null; kill9 "broker-$1" ;;
  pause) [ $# -eq 1 ] || die "usage: pause ID"; broker_port "$1" > /dev/null; signal_to STOP "broker-$1" ;;
  resume) [ $# -eq 1 ] || die "usage: resume ID"; broker_port "$1" > /dev/null; signal_to CONT "broker-$1" ;;
  etcd-start) etcd_start "$@" ;;
  etcd-stop) etcd_stop "$@" ;;
  etcd-kill) [ $# -eq 1 ] || die "usage: etcd-kill N"; check_member "$1"; kill9 "etcd-$1" ;;
  bootstrap) bootstrap ;;
  etcd-endpoints) etcd_endpoints ;;
  status) status ;;
  pid) [ $# -eq 1 ] || die "usage: pid NAME"; pid_of "$1" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
