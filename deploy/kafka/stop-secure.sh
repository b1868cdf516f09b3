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
CLOSEDLOOP_KAFKA_PIDFILE="$home/kafka.pid" CLOSEDLOOP_KAFKA_NAME="secure kafka" \
  CLOSEDLOOP_KAFKA_PORT="${CLOSEDLOOP_SECURE_KAFKA_PORT:-9094}" \
  CLOSEDLOOP_KAFKA_CONTROLLER_PORT="${CLOSEDLOOP_SECURE_KAFKA_CONTROLLER_PORT:-9095}" \
  exec bash "$here/stop.sh"
