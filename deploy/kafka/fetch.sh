#!/usr/bin/env bash
# Fetch the Apache Kafka broker (KRaft) jars from Maven Central into a local cache.
#
# Why Maven and not the release tarball: this machine (and CI) reach package registries only,
# and Maven Central carries every jar the broker needs. A tiny generated pom lists the broker
# plus a logging backend, and `dependency:copy-dependencies` resolves the runtime closure.
#
# Env: CLOSEDLOOP_CACHE (default <repo>/.cache), CLOSEDLOOP_KAFKA_VERSION (default below).
# Idempotent: does nothing when the jars of that version are already there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${CLOSEDLOOP_CACHE:-$repo/.cache}"
version="${CLOSEDLOOP_KAFKA_VERSION:-4.4.0}"
# Log4j 2 is Kafka 4's logging backend (kafka-server depends on log4j-core 2.25.5). No Kafka pom
# brings an slf4j binding, and kafka-clients pins slf4j-api 1.7, so the binding must be the
# slf4j 1.x one (log4j-slf4j-impl), not log4j-slf4j2-impl; without it the broker logs nothing.
log4j_version="${CLOSEDLOOP_LOG4J_VERSION:-2.25.5}"
libs="$cache/kafka/libs"
stamp="$libs/.complete-kafka-$version"

if [[ -f "$stamp" ]]; then
  echo "kafka $version jars already in $libs"
  exit 0
fi

for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "fetch.sh: '$tool' is required (Java 17+ and Maven)" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The pom exists only to describe what to resolve; nothing is built.
cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>closedloop.dev</groupId>
  <artifactId>kafka-broker-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- kafka_2.13 is the broker (kafka.Kafka, kafka.tools.StorageTool); its pom pulls in
         kafka-server, -storage, -raft, -metadata, the coordinators and the clients. -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$version</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$log4j_version</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$log4j_version</version>
    </dependency>
  </dependencies>
</project>
POM

echo "resolving org.apache.kafka:kafka_2.13:$version with Maven ..."
start=$SECONDS
# -B: batch mode (no prompts); -q: only errors. includeScope=runtime gives the compile+runtime
# closure, which is exactly the broker's classpath. Maven 3.8 still writes terminal escape
# codes in quiet mode, so its output is kept in a file and shown only when it fails.
if ! mvn -B -q -Dstyle.color=never -f "$work/pom.xml" \
    dependency:copy-dependencies \
    -DincludeScope=runtime \
    -DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1; then
  sed 's/\x1b\[[0-9;]*m//g' "$work/mvn.log" >&2
  echo "fetch.sh: Maven could not resolve kafka_2.13:$version (see above)" >&2
  exit 1
fi

# Swap the finished folder in at once so an interrupted run never leaves a half classpath.
mkdir -p "$cache/kafka"
rm -rf "$libs"
mv "$work/libs" "$libs"
touch "$stamp"
jars=("$libs"/*.jar)
echo "kafka $version: ${#jars[@]} jars in $libs ($((SECONDS - start)) s)"
