#!/usr/bin/env bash
# Stop the broker started by deploy/kafka/start.sh (found through its pid file) and wait until
# it has exited and freed its ports. Idempotent: nothing to do when it is not running.
# Env: CLOSEDLOOP_CACHE, CLOSEDLOOP_KAFKA_PORT, CLOSEDLOOP_KAFKA_CONTROLLER_PORT as for start.sh;
#      CLOSEDLOOP_KAFKA_PIDFILE and CLOSEDLOOP_KAFKA_NAME let stop-secure.sh stop its broker.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${CLOSEDLOOP_CACHE:-$repo/.cache}"
pidfile="${CLOSEDLOOP_KAFKA_PIDFILE:-$cache/kafka/kafka.pid}"
name="${CLOSEDLOOP_KAFKA_NAME:-kafka}"
port="${CLOSEDLOOP_KAFKA_PORT:-9092}"
controller_port="${CLOSEDLOOP_KAFKA_CONTROLLER_PORT:-9093}"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid="$(cat "$pidfile" 2>/dev/null || true)"
# Only signal the pid if it still is our broker (pids get recycled).
if [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] && grep -qa 'kafka\.Kafka' "/proc/$pid/cmdline"; then
  echo "stopping $name (pid $pid)"
  # SIGTERM lets the broker shut down cleanly (flushes logs, closes the metadata log).
  kill -TERM "$pid"
  for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$name did not stop within 30 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
else
  echo "$name is not running"
fi
rm -f "$pidfile"

for p in "$port" "$controller_port"; do
  for _ in $(seq 20); do port_open "$p" || break; sleep 0.5; done
  port_open "$p" && echo "$(basename "$0"): port $p is still in use (by another process?)" >&2
done
exit 0
