#!/usr/bin/env bash
# Stop the broker started by deploy/kafka/start-secure.sh (found through the pid file in its
# work dir) and wait until it has exited and freed its ports. Idempotent. Keeps the work dir
# (CA, keystore, passwords, data); delete it to start from nothing.
# Env: CLOSEDLOOP_CACHE, CLOSEDLOOP_SECURE_KAFKA_DIR, CLOSEDLOOP_SECURE_KAFKA_PORT,
#      CLOSEDLOOP_SECURE_KAFKA_CONTROLLER_PORT as for start-secure.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${CLOSEDLOOP_CACHE:-$repo/.cache}"
home="${CLOSEDLOOP_SECURE_KAFKA_DIR:-$cache/kafka-secure}"
pidfile="$home/kafka.pid"
port="${CLOSEDLOOP_SECURE_KAFKA_PORT:-9094}"
controller_port="${CLOSEDLOOP_SECURE_KAFKA_CONTROLLER_PORT:-9095}"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid="$(cat "$pidfile" 2>/dev/null || true)"
# Only signal the pid if it still is our broker (pids get recycled).
if [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] && grep -qa 'kafka\.Kafka' "/proc/$pid/cmdline"; then
  echo "stopping secure kafka (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "secure kafka did not stop within 30 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
else
  echo "secure kafka is not running"
fi
rm -f "$pidfile"

for p in "$port" "$controller_port"; do
  for _ in $(seq 20); do port_open "$p" || break; sleep 0.5; done
  port_open "$p" && echo "stop-secure.sh: port $p is still in use (by another process?)" >&2
done
exit 0
