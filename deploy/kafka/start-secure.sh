#!/usr/bin/env bash
# Start a second single-node Kafka 4 broker (KRaft), from the same jars as start.sh, that only
# speaks SASL_SSL with SCRAM-SHA-512: what the security test (tests/integration/test_security.py)
# and a developer trying the TLS/SCRAM settings connect to.
#
# At the first start it makes, in its work dir:
#   ca.pem / ca.key          a self-signed CA (openssl); clients trust ca.pem (CLOSEDLOOP_KAFKA_CA_FILE)
#   broker.p12               the broker's key and certificate (SAN IP:127.0.0.1, DNS:localhost),
#                            signed by that CA, as PKCS12 (openssl only, no keytool needed)
#   admin.password           the super user's password (inter-broker and administration)
#   app.password             the application user's password (CLOSEDLOOP_KAFKA_PASSWORD_FILE)
# and formats KRaft storage with the admin's SCRAM-SHA-512 credential (`--add-scram`). After the
# start, the admin creates the app user's SCRAM credential and its ACLs (StandardAuthorizer):
# ALL on topics and groups whose names start with $CLOSEDLOOP_SECURE_KAFKA_APP_PREFIX, nothing on
# the cluster. Passwords are random, in 0600 files, and never on a command line except the
# admin's in the one-off `format` (storage has to hold one credential before the broker runs).
#
# The client listener is SASL_SSL on 127.0.0.1:$port. The controller listener is PLAINTEXT on
# 127.0.0.1 only (KRaft cannot authenticate controllers with SCRAM, whose credentials live in
# the metadata it serves); its principal, ANONYMOUS, is a super user so the node can talk to
# itself. Prints the CA path. Idempotent: when this work dir's broker runs, it only checks it.
#
# Env: CLOSEDLOOP_SECURE_KAFKA_DIR (default <cache>/kafka-secure), CLOSEDLOOP_SECURE_KAFKA_PORT
#      (9094), CLOSEDLOOP_SECURE_KAFKA_CONTROLLER_PORT (9095), CLOSEDLOOP_SECURE_KAFKA_APP_USER
#      (closedloop), CLOSEDLOOP_SECURE_KAFKA_APP_PREFIX (closedloop), CLOSEDLOOP_CACHE (where
#      fetch.sh keeps the jars), CLOSEDLOOP_KAFKA_START_TIMEOUT (120), CLOSEDLOOP_KAFKA_HEAP
#      (512m), CLOSEDLOOP_PYTHON (the python with kafka-python, for set-up and readiness).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${CLOSEDLOOP_CACHE:-$repo/.cache}"
libs="$cache/kafka/libs"
home="${CLOSEDLOOP_SECURE_KAFKA_DIR:-$cache/kafka-secure}"
data="$home/data"
config="$home/server.properties"
log="$home/kafka.log"
pidfile="$home/kafka.pid"
port="${CLOSEDLOOP_SECURE_KAFKA_PORT:-9094}"
controller_port="${CLOSEDLOOP_SECURE_KAFKA_CONTROLLER_PORT:-9095}"
app_user="${CLOSEDLOOP_SECURE_KAFKA_APP_USER:-closedloop}"
app_prefix="${CLOSEDLOOP_SECURE_KAFKA_APP_PREFIX:-closedloop}"
timeout="${CLOSEDLOOP_KAFKA_START_TIMEOUT:-120}"
heap="${CLOSEDLOOP_KAFKA_HEAP:-1g}"
python="${CLOSEDLOOP_PYTHON:-$repo/.venv/bin/python}"
bootstrap="127.0.0.1:$port"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() {
  [[ -f "$pidfile" ]] || return 1
  local pid
  pid="$(cat "$pidfile")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] && grep -qa 'kafka\.Kafka' "/proc/$pid/cmdline"
}

fail() {
  echo "start-secure.sh: $1" >&2
  if [[ "${2:-}" != --no-log && -f "$log" ]]; then
    echo "---- last 40 lines of $log ----" >&2
    tail -n 40 "$log" >&2
  fi
  exit 1
}

# As the admin over SASL_SSL: "ready" lists topics; "setup" also creates the app user's SCRAM
# credential and ACLs (idempotent). Passwords are read from their files, never from argv.
admin_call() {
  SECURE_BOOTSTRAP="$bootstrap" SECURE_HOME="$home" SECURE_APP_USER="$app_user" \
  SECURE_APP_PREFIX="$app_prefix" "$python" - "$1" <<'PY'
import os, sys
from pathlib import Path
from kafka import KafkaAdminClient
from kafka.admin import (ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                         ResourcePattern, ResourceType, ScramMechanism,
                         UserScramCredentialUpsertion)
home = Path(os.environ["SECURE_HOME"])
config = {
    "bootstrap_servers": os.environ["SECURE_BOOTSTRAP"], "request_timeout_ms": 5000,
    "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_plain_username": "admin",
    "sasl_plain_password": (home / "admin.password").read_text().strip(),
    "ssl_cafile": str(home / "ca.pem"),
}
if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG:
    config["bootstrap_timeout_ms"] = 5000
admin = KafkaAdminClient(**config)
try:
    admin.list_topics()
    if sys.argv[1] == "setup":
        user, prefix = os.environ["SECURE_APP_USER"], os.environ["SECURE_APP_PREFIX"]
        password = (home / "app.password").read_text().strip()
        errors = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, password)])
        if any(errors.values()):
            sys.exit(f"creating the SCRAM credential of {user} failed: {errors}")
        acls = [ACL(f"User:{user}", "*", ACLOperation.ALL, ACLPermissionType.ALLOW,
                    ResourcePattern(kind, prefix, ACLResourcePatternType.PREFIXED))
                for kind in (ResourceType.TOPIC, ResourceType.GROUP,
                             ResourceType.TRANSACTIONAL_ID)]
        result = admin.create_acls(acls)
        if result.get("failed"):
            sys.exit(f"creating the ACLs of {user} failed: {result['failed']}")
finally:
    admin.close()
PY
}

if running; then
  if admin_call ready >/dev/null 2>&1; then
    echo "secure kafka already running (pid $(cat "$pidfile")) on $bootstrap"
    echo "CA: $home/ca.pem"
    exit 0
  fi
  echo "secure kafka process $(cat "$pidfile") exists but does not answer yet; waiting"
else
  rm -f "$pidfile"
  for p in "$port" "$controller_port"; do
    if port_open "$p"; then
      fail "port $p on 127.0.0.1 is taken; set CLOSEDLOOP_SECURE_KAFKA_PORT / CLOSEDLOOP_SECURE_KAFKA_CONTROLLER_PORT" --no-log
    fi
  done
  bash "$here/fetch.sh" >/dev/null
  for tool in java openssl; do
    command -v "$tool" >/dev/null || fail "'$tool' is required (Debian: openjdk-17-jre-headless, openssl)" --no-log
  done
  [[ -x "$python" ]] && "$python" -c 'import kafka' 2>/dev/null \
    || fail "$python with kafka-python is required (make install, or set CLOSEDLOOP_PYTHON)" --no-log

  mkdir -p "$home"
  chmod 700 "$home"
  umask 077
  for user in admin app; do
    [[ -s "$home/$user.password" ]] || openssl rand -hex 24 >"$home/$user.password"
  done
  [[ -s "$home/keystore.password" ]] || openssl rand -hex 24 >"$home/keystore.password"
  if [[ ! -s "$home/broker.p12" ]]; then
    echo "making a self-signed CA and the broker's certificate in $home"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=closedloop test CA" \
      -keyout "$home/ca.key" -out "$home/ca.pem" 2>/dev/null || fail "openssl: CA" --no-log
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$home/broker.key" -out "$home/broker.csr" 2>/dev/null \
      || fail "openssl: broker key" --no-log
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' \
      >"$home/broker.ext"
    openssl x509 -req -in "$home/broker.csr" -CA "$home/ca.pem" -CAkey "$home/ca.key" \
      -CAcreateserial -days 30 -extfile "$home/broker.ext" -out "$home/broker.pem" 2>/dev/null \
      || fail "openssl: signing the broker certificate" --no-log
    openssl pkcs12 -export -in "$home/broker.pem" -inkey "$home/broker.key" \
      -certfile "$home/ca.pem" -name broker -out "$home/broker.p12" \
      -passout "file:$home/keystore.password" || fail "openssl: PKCS12 keystore" --no-log
  fi

  mkdir -p "$data"
  [[ -f "$log" ]] && mv -f "$log" "$log.prev"
  # The file holds the admin's and the keystore's passwords: 0600 (umask), in a 0700 dir.
  cat >"$config" <<PROPS
# Generated by deploy/kafka/start-secure.sh: edits are overwritten on the next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=SASL_SSL://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=SASL_SSL://127.0.0.1:$port
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
log.dirs=$data

sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$home/admin.password")";
ssl.keystore.type=PKCS12
ssl.keystore.location=$home/broker.p12
ssl.keystore.password=$(cat "$home/keystore.password")
ssl.truststore.type=PEM
ssl.truststore.location=$home/ca.pem
ssl.client.auth=none

authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:ANONYMOUS

default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS

  if [[ ! -f "$data/meta.properties" ]]; then
    cluster_id="$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid)"
    echo "formatting $data (cluster id $cluster_id) with the admin's SCRAM-SHA-512 credential"
    java -cp "$libs/*" -Dlog4j2.configurationFile="$here/log4j2.properties" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$config" \
      --add-scram "SCRAM-SHA-512=[name=admin,password=$(cat "$home/admin.password")]" \
      >>"$log" 2>&1 || fail "formatting the storage failed"
  fi

  echo "starting secure kafka on $bootstrap (SASL_SSL, SCRAM-SHA-512; controller 127.0.0.1:$controller_port, log $log)"
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" \
    java "-Xmx$heap" "-Xms$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$config" </dev/null >>"$log" 2>&1 &
  for _ in $(seq 50); do [[ -s "$pidfile" ]] && break; sleep 0.1; done
fi

start=$SECONDS
until port_open "$port" && admin_call ready >/dev/null 2>&1; do
  running || { rm -f "$pidfile"; fail "the broker exited during start-up"; }
  (( SECONDS - start < timeout )) || fail "the broker did not answer on $bootstrap within ${timeout}s"
  sleep 1
done
admin_call setup || fail "creating the app user $app_user failed"
echo "secure kafka ready on $bootstrap (pid $(cat "$pidfile"), $((SECONDS - start)) s)"
echo "user $app_user (password file $home/app.password), ACLs on topics, groups and transactional ids '$app_prefix*'"
echo "CA: $home/ca.pem"
