#!/usr/bin/env bash
# Local Apache Kafka for l2f's tests, demos and benchmarks.
#
# Resolves Apache Kafka (broker + kafka-tools) from Maven Central with the machine's Maven,
# formats KRaft storage and runs one combined broker+controller on loopback with the
# machine's Java. Nothing is installed outside the build folder; the jars are cached there
# (and in ~/.m2), so a second fetch is offline and fast.
#
#   kafka.sh up       start (or reuse) the broker; prints the bootstrap address on stdout
#   kafka.sh down     stop it and remove its data
#   kafka.sh kill     SIGKILL the broker (a crash: no clean shutdown), keeping its data
#   kafka.sh restart  kill, then start again on the same data (what a fault soak does)
#   kafka.sh status   exit 0 when it answers metadata requests
#   kafka.sh fetch    only resolve the jars
#   kafka.sh tool CLASS ARGS...   run a Kafka tool class (e.g. org.apache.kafka.tools.ProducerPerformance)
#   kafka.sh version  print the broker's version
#   kafka.sh sasl-bootstrap  print the SASL_PLAINTEXT listener's address (user l2f)
#   kafka.sh tls-bootstrap   print the SSL listener's address; tls-ca: its CA file
#
# Environment: L2F_BUILD (default <repo>/build), KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
# KAFKA_SASL_PORT (9094), KAFKA_TLS_PORT (9095).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
build="${L2F_BUILD:-$repo/build}/kafka"
lib="$build/lib"
data="$build/data"
logs="$build/logs"
pidfile="$build/kafka.pid"
port="${KAFKA_PORT:-9092}"
cport="${KAFKA_CONTROLLER_PORT:-9093}"
sport="${KAFKA_SASL_PORT:-9094}"
tport="${KAFKA_TLS_PORT:-9095}"
tls="$build/tls"
pomsum="$(cksum <"$here/pom.xml" | cut -d" " -f1)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
bootstrap="127.0.0.1:$port"
sasl_bootstrap="127.0.0.1:$sport"
tls_bootstrap="127.0.0.1:$tport"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }

fetch() {
  if [ -f "$lib/.complete-$version-$pomsum" ]; then return 0; fi
  command -v mvn >/dev/null || { log "mvn not found: Maven is needed to fetch Kafka"; exit 1; }
  command -v java >/dev/null || { log "java not found: Java 17+ is needed to run Kafka"; exit 1; }
  log "resolving Apache Kafka $version from Maven Central"
  mkdir -p "$lib"
  rm -f "$lib"/*.jar
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$lib" >"$build/fetch.log" 2>&1 \
    || { cat "$build/fetch.log" >&2; log "fetch failed"; exit 1; }
  touch "$lib/.complete-$version-$pomsum"
}

run_class() {
  local cls="$1"; shift
  java -Xmx512m -cp "$lib/*" -Dlog4j2.configurationFile="$here/log4j2.yaml" \
    -Dkafka.logs.dir="$logs" "$cls" "$@"
}

answers() {
  # A metadata round trip, not just an open port.
  run_class org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$bootstrap" \
    >/dev/null 2>&1
}

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid; pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# A CA and a broker certificate for 127.0.0.1/localhost, made once (openssl).
make_tls() {
  [ -f "$tls/broker-keystore.pem" ] && return 0
  command -v openssl >/dev/null || { log "openssl not found: needed for the TLS listener"; exit 1; }
  mkdir -p "$tls"
  (
    cd "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=l2f local test CA" \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout broker.key -out broker.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile san.ext -out broker.pem 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.pk8
    cat broker.pk8 broker.pem ca.pem >broker-keystore.pem
  )
}

up() {
  fetch
  make_tls
  mkdir -p "$logs"
  if running_pid >/dev/null && answers; then
    log "reusing running broker $version at $bootstrap"
    echo "$bootstrap"
    return 0
  fi
  if running_pid >/dev/null; then down; fi
  mkdir -p "$data"
  local props="$build/server.properties"
  sed -e "s#@DATA@#$data#g" -e "s#@PORT@#$port#g" -e "s#@CPORT@#$cport#g" -e "s#@SPORT@#$sport#g" \
    -e "s#@TPORT@#$tport#g" -e "s#@TLS@#$tls#g" \
    "$here/server.properties" >"$props"
  if [ ! -f "$data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(run_class kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    run_class kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$props" \
      --add-scram 'SCRAM-SHA-256=[name=l2f,password=l2f-test-secret]' \
      --add-scram 'SCRAM-SHA-512=[name=l2f,password=l2f-test-secret]' \
      >"$logs/format.log" 2>&1 || { cat "$logs/format.log" >&2; exit 1; }
  fi
  log "starting Apache Kafka $version (KRaft, combined broker+controller) on $bootstrap"
  # setsid: the broker must outlive the make recipe's shell and not get its signals.
  setsid java -Xms512m -Xmx1g -XX:+UseG1GC -cp "$lib/*" \
    -Dlog4j2.configurationFile="$here/log4j2.yaml" -Dkafka.logs.dir="$logs" \
    kafka.Kafka "$props" >"$logs/server.out" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local deadline=$((SECONDS + 90))
  until answers; do
    if ! running_pid >/dev/null; then
      tail -n 40 "$logs/server.out" >&2
      log "broker exited during start"; exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 40 "$logs/server.out" >&2
      log "broker did not answer metadata requests within 90 s"; exit 1
    fi
    sleep 1
  done
  log "Apache Kafka $version ready at $bootstrap"
  echo "$bootstrap"
}

down() {
  local pid
  if pid="$(running_pid)"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped broker (pid $pid)"
  fi
  rm -rf "$data" "$pidfile"
}

# A crash: SIGKILL, no controlled shutdown; the data stays for the next `up`.
crash() {
  local pid
  if pid="$(running_pid)"; then
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    log "killed broker (pid $pid, SIGKILL); data kept in $data"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  kill) crash ;;
  restart) crash; up ;;
  status) answers ;;
  fetch) fetch ;;
  version) echo "$version" ;;
  sasl-bootstrap) echo "$sasl_bootstrap" ;;
  tls-bootstrap) echo "$tls_bootstrap" ;;
  tls-ca) echo "$tls/ca.pem" ;;
  tool) shift; fetch; run_class "$@" ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
