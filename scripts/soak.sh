#!/usr/bin/env bash
# `make soak`: `l2f soak` on a broker of its own (its own folder and ports, so it never
# disturbs the test broker), started fresh, killed and restarted on its data mid-year by the
# soak, and removed afterwards. Arguments go to `l2f soak` (default: 2,000 customers, 10 %
# faults, Marketo down 20 s, two connector kills, one broker restart).
#   SOAK_PROFILE=release|dev (default release)
set -euo pipefail
cd "$(dirname "$0")/.."
export L2F_BUILD="${SOAK_BUILD:-$PWD/target/soak-kafka}"
export KAFKA_PORT="${SOAK_KAFKA_PORT:-19392}"
export KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
export KAFKA_SASL_PORT=$((KAFKA_PORT + 2))
export KAFKA_TLS_PORT=$((KAFKA_PORT + 3))
kafka="$PWD/deploy/local/kafka/kafka.sh"
"$kafka" down >/dev/null 2>&1 || true
trap '"$kafka" down >/dev/null 2>&1 || true' EXIT
bootstrap="$("$kafka" up)"
profile="${SOAK_PROFILE:-release}"
flags=()
if [ "$profile" = release ]; then flags=(--release); fi
cargo build -q "${flags[@]}" -p l2f-cli
bin="target/$([ "$profile" = release ] && echo release || echo debug)/l2f"
L2F_KAFKA__BOOTSTRAP_SERVERS="$bootstrap" L2F_TOPICS__REPLICATION_FACTOR=1 "$bin" soak \
  --broker-restart "L2F_BUILD='$L2F_BUILD' KAFKA_PORT=$KAFKA_PORT KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT KAFKA_SASL_PORT=$KAFKA_SASL_PORT KAFKA_TLS_PORT=$KAFKA_TLS_PORT '$kafka' restart" \
  "$@"
