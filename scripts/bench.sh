#!/usr/bin/env bash
# `make bench`: figures to compare, each beside a baseline measured in the same run.
#  1. bus: l2f's producer and consume->no-op->commit loop vs kcat (librdkafka's own CLI) and
#     Kafka's own perf tools, at 200,000 and 1,000,000 records; the transactional stage's and
#     the source loop's records/s (starts the local Apache Kafka when KAFKA_BOOTSTRAP is unset);
#  2. contracts: Avro encode/decode vs serde_json on the same structs (criterion);
#  3. mocks: requests/s of each mock app under a bounded loopback load;
#  4. replay: `l2f replay` of 1,000,000 records to JSON lines vs `kcat -C -e` (scripts/bench-replay.sh).
#  5. zuora sink: orders/s through the connector beside the Zuora mock's ceiling for the same calls.
#  7. marketo sink: leads/s through the sink (300 a call) beside the mock's ceiling for the same call.
#  6. salesforce sink: records/s through the lead sink beside the mock's ceiling for the same call.
#  8. end to end: orders/s from the customers app's API to the subscription mirrored in Salesforce
#     and the customers app (the whole hub in-process, the mocks' rate limits lifted), latency
#     p50/p99/max at 200 orders/s offered, beside each app's mock ceiling for the calls one order
#     needs, measured in the same run, and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
kafka=deploy/local/kafka/kafka.sh
started=""
cleanup() { if [ -n "$started" ]; then "$kafka" down || true; fi; }
trap cleanup EXIT
if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  if ! "$kafka" status; then started=1; fi
  KAFKA_BOOTSTRAP="$("$kafka" up)"
fi
export KAFKA_BOOTSTRAP
scripts/install-tools.sh kcat
echo "== bus (Apache Kafka $("$kafka" version); load average $(cut -d' ' -f1-3 /proc/loadavg))"
cargo bench -q -p l2f-bus --bench bus
echo "== contracts (Avro encode/decode vs serde_json on the same structs, one thread)"
cargo bench -q -p l2f-contracts --bench codec
echo "== mocks (bounded loopback load; exits 1 if a mock serves < 10,000 req/s)"
cargo run -q --release -p l2f-mocks --example bench
echo "== replay (l2f replay to JSON lines vs kcat -C -e raw, same range, same run; exits 1 on a missed target)"
scripts/bench-replay.sh
echo "== zuora sink (orders/s through the connector beside the Zuora mock's ceiling for the same calls)"
cargo run -q --release -p l2f-connector-zuora --example zuora_bench
echo "== connectors (records/s through the sink beside the mock's ceiling for the same call, same run)"
cargo run -q --release -p l2f-connector-salesforce --example salesforce_bench
echo "== marketo sink (leads/s through the connector beside the Marketo mock's ceiling for the same call, same run)"
cargo run -q --release -p l2f-connector-marketo --example marketo_bench
echo "== end to end (orders/s customers app -> Zuora -> Salesforce + customers app, p50/p99 at 200 orders/s offered, beside the mocks' ceilings, same run)"
cargo run -q --release -p l2f-cli --example e2e_bench
