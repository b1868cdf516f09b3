#!/usr/bin/env bash
# Start a three-node Apache Kafka 4 cluster (KRaft) on 127.0.0.1 for development and CI: what a
# city runs, in miniature. Every node is broker and controller; the three controllers form a
# static 3-voter quorum, so the cluster survives the loss of any one node. Replication factor 3
# and min.insync.replicas 2 for every topic created without its own settings (the worker's,
# with CLOSEDLOOP_REPLICATION=3), for the consumer offsets and for the transaction state, as
# docs/KAFKA.md says a production cluster needs. The same jars as start.sh (deploy/kafka/fetch.sh).
#
#   start-cluster.sh            start every node that is not running, then wait until the
#                               cluster is whole: every node answers, every broker is
#                               registered, and every partition has all its replicas in sync
#   start-cluster.sh 2          start node 2 only (after stop-cluster.sh 2, or a kill -9),
#                               then wait as above: what a rolling restart does per node
#
# Per node, under the work dir: nodeN/data, nodeN/server.properties, nodeN/kafka.log (the
# previous run's beside it), nodeN/kafka.pid. Idempotent: nodes that run are only checked.
#
# Env: CLOSEDLOOP_CLUSTER_DIR (default <cache>/kafka-cluster),
#      CLOSEDLOOP_CLUSTER_PORTS (client ports, one per node; default 19092,19093,19094: clear
#        of the single broker's 9092/9093 and the secure one's 9094/9095),
#      CLOSEDLOOP_CLUSTER_CONTROLLER_PORTS (default 19192,19193,19194), as many as the above;
#        one port each gives a one-node cluster (replication 1), two a two-node one,
#      CLOSEDLOOP_CACHE (where fetch.sh keeps the jars), CLOSEDLOOP_KAFKA_START_TIMEOUT (120),
#      CLOSEDLOOP_CLUSTER_HEAP (256m per node: three JVMs share a 2-core CI machine),
#      CLOSEDLOOP_PYTHON (the python with kafka-python, for the readiness check).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=deploy/kafka/cluster-env.sh
source "$here/cluster-env.sh"
timeout="${CLOSEDLOOP_KAFKA_START_TIMEOUT:-120}"
heap="${CLOSEDLOOP_CLUSTER_HEAP:-256m}"
python="${CLOSEDLOOP_PYTHON:-$repo/.venv/bin/python}"
libs="$cache/kafka/libs"

# Replication as a city runs it, capped by the nodes there are.
replication=$(( nodes < 3 ? nodes : 3 ))
min_isr=$(( replication > 1 ? replication - 1 : 1 ))

fail() {
  echo "start-cluster.sh: $1" >&2
  if [[ "${2:-}" != --no-log ]]; then
    for node in $(seq "$nodes"); do
      [[ -f "$home/node$node/kafka.log" ]] || continue
      echo "---- last 20 lines of $home/node$node/kafka.log ----" >&2
      tail -n 20 "$home/node$node/kafka.log" >&2
    done
  fi
  exit 1
}

# The whole cluster, seen from its clients: every node answers, every broker is registered,
# and no partition lacks a replica in its ISR (a restarted node has caught up). Prints why not.
whole() {
  "$python" - "$bootstrap" "$nodes" <<'PY'
import sys
from kafka import KafkaAdminClient
bootstrap, nodes = sys.argv[1].split(","), int(sys.argv[2])
for server in bootstrap:  # each node on its own: a node that does not answer is not whole
    config = {"bootstrap_servers": server, "request_timeout_ms": 5000}
    if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG:  # kafka-python 3 waits 30 s
        config["bootstrap_timeout_ms"] = 5000
    admin = KafkaAdminClient(**config)
    try:
        brokers = admin.describe_cluster()["brokers"]
        if len(brokers) < nodes:
            sys.exit(f"{server} sees {len(brokers)} of {nodes} brokers")
        if server == bootstrap[-1]:
            # kafka-python 3 names the fields as the protocol does; 2.x had shorter names
            lagging = [f"{t.get('name', t.get('topic'))}-{p.get('partition_index')}"
                       for t in admin.describe_topics() for p in t["partitions"]
                       if len(p.get("isr_nodes", p.get("isr", ())))
                       < len(p.get("replica_nodes", p.get("replicas", ())))]
            if lagging:
                sys.exit(f"{len(lagging)} partitions not fully in sync, e.g. {lagging[0]}")
    finally:
        admin.close()
PY
}

[[ -x "$python" ]] && "$python" -c 'import kafka' 2>/dev/null \
  || fail "$python with kafka-python is required (make install, or set CLOSEDLOOP_PYTHON)" --no-log
wanted=("$@")
(( ${#wanted[@]} )) || mapfile -t wanted < <(seq "$nodes")
for node in "${wanted[@]}"; do
  [[ "$node" =~ ^[0-9]+$ ]] && (( node >= 1 && node <= nodes )) \
    || fail "no node $node (nodes 1 to $nodes)" --no-log
done

bash "$here/fetch.sh" >/dev/null
command -v java >/dev/null || fail "java (17+) is required" --no-log
mkdir -p "$home"
# One cluster id for every node's storage, made once and kept with the cluster.
if [[ ! -s "$home/cluster.id" ]]; then
  java -cp "$libs/*" kafka.tools.StorageTool random-uuid >"$home/cluster.id"
fi
cluster_id="$(cat "$home/cluster.id")"
voters=""
for node in $(seq "$nodes"); do
  voters+="${voters:+,}$node@127.0.0.1:${controller_ports[node - 1]}"
done

for node in "${wanted[@]}"; do
  dir="$home/node$node"
  port="${ports[node - 1]}"
  controller_port="${controller_ports[node - 1]}"
  if node_running "$node"; then
    echo "node $node already running (pid $(cat "$dir/kafka.pid")) on 127.0.0.1:$port"
    continue
  fi
  rm -f "$dir/kafka.pid"
  for p in "$port" "$controller_port"; do
    port_open "$p" && fail "port $p on 127.0.0.1 is taken by another process; set CLOSEDLOOP_CLUSTER_PORTS / CLOSEDLOOP_CLUSTER_CONTROLLER_PORTS" --no-log
  done
  mkdir -p "$dir/data"
  [[ -f "$dir/kafka.log" ]] && mv -f "$dir/kafka.log" "$dir/kafka.log.prev"
  # Rewritten on every start so changed ports take effect; the data dir keeps its storage.
  cat >"$dir/server.properties" <<PROPS
# Generated by deploy/kafka/start-cluster.sh: edits are overwritten on the next start.
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
# Each node its own rack, as each would be its own zone in a city: replicas are spread across
# racks, and a consumer with client.rack may fetch from the replica in its own.
broker.rack=rack$node
replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector

# A write is acknowledged (acks=all) once two of the three replicas hold it: one node may be
# down or restarting and nothing stops; a leader is never elected from a replica that fell
# out of sync, which could lose acknowledged records.
default.replication.factor=$replication
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replication
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replication
share.coordinator.state.topic.min.isr=$min_isr
unclean.leader.election.enable=false
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8
# The worker and the producers declare their topics with the partition count they agree on.
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
# A node's clean shutdown and its return (registration, unfencing) each wait on a few
# heartbeats to the controller: 2 s apiece by default, a quarter of that on loopback.
broker.heartbeat.interval.ms=500

# Three nodes on two shared cores: fewer threads than a server's defaults.
num.network.threads=2
num.io.threads=2
background.threads=2
num.replica.fetchers=1
log.cleaner.threads=1
PROPS
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    java -cp "$libs/*" -Dlog4j2.configurationFile="$here/log4j2.properties" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
      >>"$dir/kafka.log" 2>&1 || fail "formatting node $node's storage failed"
  fi
  echo "starting node $node on 127.0.0.1:$port (controller 127.0.0.1:$controller_port, log $dir/kafka.log)"
  # setsid: the node outlives the shell that started it; the inner bash records its own pid
  # and then becomes java, so the pid file names the node itself (what a kill -9 test kills).
  # TieredStopAtLevel=1 (the quick compiler only): a node starts in about half the CPU, which
  # is what a restart costs on two shared cores; a development cluster's peak is not measured.
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$dir/kafka.pid" \
    java "-Xmx$heap" "-Xms$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:TieredStopAtLevel=1 \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties" </dev/null >>"$dir/kafka.log" 2>&1 &
  for _ in $(seq 50); do [[ -s "$dir/kafka.pid" ]] && break; sleep 0.1; done
done

start=$SECONDS
until reason="$(whole 2>&1)"; do
  for node in "${wanted[@]}"; do
    node_running "$node" || fail "node $node exited during start-up"
  done
  (( SECONDS - start < timeout )) \
    || fail "the cluster is not whole after ${timeout}s: ${reason##*$'\n'}"
  sleep 1
done
echo "kafka cluster ready on $bootstrap ($nodes nodes, replication $replication, min.insync.replicas $min_isr; $((SECONDS - start)) s)"
