#!/usr/bin/env bash
# `make test`: every test of the workspace, the cross-implementation Avro checks, the
# vendor-SDK checks against the mocks and the Python producer example against the hub.
# Starts the local Apache Kafka when KAFKA_BOOTSTRAP is
# unset (and stops it afterwards); with REQUIRE_KAFKA=1 or CI set, Kafka tests never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
kafka=deploy/local/kafka/kafka.sh
started=""
cleanup() {
  if [ -n "$started" ]; then "$kafka" down || true; fi
}
trap cleanup EXIT
if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  # Stop the broker afterwards only if this run started it.
  if ! "$kafka" status; then started=1; fi
  KAFKA_BOOTSTRAP="$("$kafka" up)"
  KAFKA_SASL_BOOTSTRAP="$("$kafka" sasl-bootstrap)"
  KAFKA_TLS_BOOTSTRAP="$("$kafka" tls-bootstrap)"
  KAFKA_TLS_CA="$("$kafka" tls-ca)"
  export KAFKA_SASL_BOOTSTRAP KAFKA_TLS_BOOTSTRAP KAFKA_TLS_CA
fi
export KAFKA_BOOTSTRAP
KAFKA_VERSION="$("$kafka" version)"
export KAFKA_VERSION
echo "== Kafka integration tests run against Apache Kafka $KAFKA_VERSION (KRaft) at $KAFKA_BOOTSTRAP"

failed=0
step() {
  echo "== $*"
  if ! "$@"; then
    echo "!! failed: $*"
    failed=1
  fi
}
# promtool checks the alert rules (deploy/observability); required by that test under CI.
step scripts/install-tools.sh promtool
step cargo test --workspace
step cargo run -q -p l2f-cli -- schemas lint
step cargo run -q -p l2f-cli -- schemas check
step tools/xlang/run.sh
step tools/vendor-clients/run.sh
step examples/python/run.sh
# The bounded fault soak: a broker of its own (killed and restarted mid-year), each connector
# its own process (one SIGKILLed), every app failing 10 % of its calls, Marketo down 3 s.
step env SOAK_PROFILE=dev scripts/soak.sh --customers 60 --kills 1 --outage 3s --work-dir target/soak-test
if [ "$failed" -ne 0 ]; then
  echo "make test: FAILED"
  exit 1
fi
echo "make test: all passed"
