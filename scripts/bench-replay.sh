#!/usr/bin/env bash
# Replay benchmark (part of `make bench`; runs alone against KAFKA_BOOTSTRAP too):
# produces BENCH_REPLAY_RECORDS (default 1,000,000) Avro LeadCaptured records, keyed, into a
# fresh 6-partition topic; then, in the same run and alternately (kcat, l2f, kcat, l2f),
#   kcat -C -e      dumps the topic raw (payloads) to a file          (the baseline)
#   l2f replay      decodes every record to JSON lines, with the digest and summary
# and prints the best time of each, the ratio (target ≤ 2.0) and l2f's peak RSS
# (target < 200 MB). Exits 1 when a target is missed or the replay lost a record.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${KAFKA_BOOTSTRAP:?set KAFKA_BOOTSTRAP (make bench starts the local broker)}"
n="${BENCH_REPLAY_RECORDS:-1000000}"
out=build/bench-replay
mkdir -p "$out"
scripts/install-tools.sh kcat time
cargo build -q --release -p l2f-cli --bin l2f
cargo build -q --release -p l2f-audit --example bench_produce
topic="bench-replay-$(date +%s)-$RANDOM"
produce=target/release/examples/bench_produce
cleanup() {
  "$produce" "$KAFKA_BOOTSTRAP" "$topic" delete 2>/dev/null || true
  rm -f "$out/kcat.raw" "$out/replay.jsonl"
}
trap cleanup EXIT
"$produce" "$KAFKA_BOOTSTRAP" "$topic" "$n" 6

# measure NAME CMD...: wall seconds and max RSS (KiB) of CMD, appended to $out/NAME.txt
measure() {
  local name="$1"; shift
  /usr/bin/time -f "%e %M" -a -o "$out/$name.txt" "$@"
}
rm -f "$out/kcat.txt" "$out/l2f.txt"
for round in 1 2; do
  measure kcat kcat -C -q -b "$KAFKA_BOOTSTRAP" -t "$topic" -o beginning -e > "$out/kcat.raw"
  L2F_KAFKA__BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP" measure l2f \
    target/release/l2f replay --topic "$topic" -o "$out/replay.jsonl" \
    --summary "$out/summary.json" -q
done
records=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['records'])" "$out/summary.json")
digest=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['digest'])" "$out/summary.json")
kcat_bytes=$(stat -c %s "$out/kcat.raw")
l2f_bytes=$(stat -c %s "$out/replay.jsonl")
python3 - "$n" "$records" "$out/kcat.txt" "$out/l2f.txt" "$kcat_bytes" "$l2f_bytes" "$digest" <<'PY'
import sys
n, records = int(sys.argv[1]), int(sys.argv[2])
def best(path):
    rows = [tuple(map(float, l.split())) for l in open(path) if l.strip()]
    return min(r[0] for r in rows), max(r[1] for r in rows), [r[0] for r in rows]
k_t, k_rss, k_all = best(sys.argv[3])
l_t, l_rss, l_all = best(sys.argv[4])
kb, lb = int(sys.argv[5]), int(sys.argv[6])
ratio = l_t / k_t
print(f"kcat -C -e (raw)       {k_t:6.2f} s  {n / k_t:>10,.0f} rec/s  peak RSS {k_rss / 1024:6.1f} MB  {kb / 1e6:7.1f} MB written  (runs: {k_all})")
print(f"l2f replay (JSON)      {l_t:6.2f} s  {n / l_t:>10,.0f} rec/s  peak RSS {l_rss / 1024:6.1f} MB  {lb / 1e6:7.1f} MB written  (runs: {l_all})")
print(f"ratio l2f/kcat {ratio:.2f} (target <= 2.0); l2f peak RSS {l_rss / 1024:.1f} MB (target < 200); records {records}/{n}; digest {sys.argv[7]}")
ok = ratio <= 2.0 and l_rss / 1024 < 200 and records == n
print("replay bench: " + ("targets met" if ok else "TARGET MISSED"))
sys.exit(0 if ok else 1)
PY
