# Sourced by start-cluster.sh and stop-cluster.sh: the cluster's work dir, nodes and ports
# (see start-cluster.sh for the variables), and two checks on them.
# shellcheck shell=bash

cache="${CLOSEDLOOP_CACHE:-$repo/.cache}"
home="${CLOSEDLOOP_CLUSTER_DIR:-$cache/kafka-cluster}"
IFS=, read -r -a ports <<<"${CLOSEDLOOP_CLUSTER_PORTS:-19092,19093,19094}"
IFS=, read -r -a controller_ports <<<"${CLOSEDLOOP_CLUSTER_CONTROLLER_PORTS:-19192,19193,19194}"
nodes=${#ports[@]}
if (( nodes == 0 || nodes != ${#controller_ports[@]} )); then
  echo "$(basename "$0"): CLOSEDLOOP_CLUSTER_PORTS and CLOSEDLOOP_CLUSTER_CONTROLLER_PORTS must name as many ports (one per node)" >&2
  exit 1
fi
bootstrap=""
for p in "${ports[@]}"; do bootstrap+="${bootstrap:+,}127.0.0.1:$p"; done

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Is node N's java running? The pid file alone could name a recycled pid.
node_running() {
  local pidfile="$home/node$1/kafka.pid" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(cat "$pidfile")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] && grep -qa 'kafka\.Kafka' "/proc/$pid/cmdline"
}
