#!/usr/bin/env bash
# Stop the nodes of the cluster started by deploy/kafka/start-cluster.sh: all of them, or the
# ones named (`stop-cluster.sh 2`, one step of a rolling restart). Each node is stopped by
# stop.sh (SIGTERM, so it shuts down cleanly and hands its leaderships over while the others
# run; SIGKILL after 30 s), all at once: the last nodes of a cluster stopped one by one would
# wait for a controller quorum that has already left. Idempotent. Keeps the data: delete the
# work dir to start from nothing. Env as for start-cluster.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=deploy/kafka/cluster-env.sh
source "$here/cluster-env.sh"

wanted=("$@")
(( ${#wanted[@]} )) || mapfile -t wanted < <(seq "$nodes")
for node in "${wanted[@]}"; do
  [[ "$node" =~ ^[0-9]+$ ]] && (( node >= 1 && node <= nodes )) \
    || { echo "stop-cluster.sh: no node $node (nodes 1 to $nodes)" >&2; exit 1; }
done
stopping=()
for node in "${wanted[@]}"; do
  CLOSEDLOOP_KAFKA_PIDFILE="$home/node$node/kafka.pid" CLOSEDLOOP_KAFKA_NAME="node $node" \
    CLOSEDLOOP_KAFKA_PORT="${ports[node - 1]}" \
    CLOSEDLOOP_KAFKA_CONTROLLER_PORT="${controller_ports[node - 1]}" \
    bash "$here/stop.sh" &
  stopping+=($!)
done
status=0
for pid in "${stopping[@]}"; do wait "$pid" || status=1; done
exit "$status"
