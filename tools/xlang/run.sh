#!/usr/bin/env bash
# Cross-implementation checks for every event schema (called by `make test`):
#   Rust writes each golden event (single-object encoding) ->
#   Apache Avro Java 1.12 and Python fastavro read it (finding the schema by their own
#   CRC-64-AVRO fingerprint), re-encode it byte-identically, and read it with the released
#   reader schema (schema resolution); their frames are then read back by Rust and compared
#   with the golden examples.
# Installs what it needs from the registries: Maven Central (avro) and PyPI (fastavro, into
# build/xlang-venv). Prints one PASS/FAIL line per check and closes with "N passed, F failed";
# exits non-zero on any failure.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT=build/xlang
HISTORY="$(ls -d schemas/history/v* | sort -V | head -n1)"
rm -rf "$OUT/rust" "$OUT/java" "$OUT/python" "$OUT/replay" "$OUT/results.txt" "$OUT/maven.log"
mkdir -p "$OUT"

echo "== setup: rust bridge, python venv, java (maven)"
cargo build -q -p l2f-contracts --example xlang
cargo build -q -p l2f-audit --example xlang_replay
if [ ! -x build/xlang-venv/bin/python ]; then python3 -m venv build/xlang-venv; fi
build/xlang-venv/bin/pip install -q --disable-pip-version-check -r tools/xlang/python/requirements.txt
if ! mvn -q -B -Dstyle.color=never -f tools/xlang/java/pom.xml package > "$OUT/maven.log" 2>&1; then
  cat "$OUT/maven.log"
  echo "xlang: 0 passed, 1 failed (maven build)"
  exit 1
fi
JAVA_CP="tools/xlang/java/target/l2f-xlang-0.1.0.jar:$(cat tools/xlang/java/target/classpath.txt)"

set +e
status=0
run() {
  "$@" 2>&1 | tee -a "$OUT/results.txt"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then status=1; fi
}
echo "== rust writes"
run cargo run -q -p l2f-contracts --example xlang -- write "$OUT/rust"
echo "== python (fastavro) reads rust, writes"
run build/xlang-venv/bin/python tools/xlang/python/check.py --schemas schemas --history "$HISTORY" --rust "$OUT/rust" --out "$OUT/python"
echo "== java (Apache Avro) reads rust, writes"
run java -cp "$JAVA_CP" dev.l2f.xlang.XlangCheck schemas "$HISTORY" "$OUT/rust" "$OUT/java"
echo "== rust reads python and java"
run cargo run -q -p l2f-contracts --example xlang -- read "$OUT/python"
run cargo run -q -p l2f-contracts --example xlang -- read "$OUT/java"

replay_expected=0
if [ -n "${KAFKA_BOOTSTRAP:-}" ]; then
  echo "== replay export: rust writes (l2f replay --format avro), java and python recompute the digest"
  replay_expected=3
  run cargo run -q -p l2f-audit --example xlang_replay -- "$OUT/replay"
  run java -cp "$JAVA_CP" dev.l2f.xlang.ReplayCheck "$OUT/replay/replay.avro" "$OUT/replay/replay.summary.json"
  run build/xlang-venv/bin/python tools/xlang/python/replay_check.py "$OUT/replay/replay.avro" "$OUT/replay/replay.summary.json"
elif [ -n "${CI:-}${REQUIRE_KAFKA:-}" ]; then
  echo "FAIL replay export checks: KAFKA_BOOTSTRAP is not set" | tee -a "$OUT/results.txt"
  status=1
else
  echo "skipped: the replay export checks need KAFKA_BOOTSTRAP (make test sets it)"
fi

passed=$(grep -c '^PASS' "$OUT/results.txt")
failed=$(grep -c '^FAIL' "$OUT/results.txt")
events=$(ls schemas/*.avsc | grep -vc common.avsc)
# Events added since the oldest release have no released reader schema to read them with.
unreleased=0
for f in schemas/*.avsc; do
  n=$(basename "$f")
  [ "$n" = common.avsc ] || [ -f "$HISTORY/$n" ] || unreleased=$((unreleased + 1))
done
# Per event: python 2, java 2, rust 2 (reads python, reads java), less the released-reader read
# of python and java for an unreleased event; plus the replay export's 3.
expected=$((events * 6 - unreleased * 2 + replay_expected))
if [ "$passed" -ne "$expected" ]; then
  echo "expected $expected passing checks for $events event schemas, got $passed"
  status=1
  if [ "$failed" -eq 0 ]; then failed=$((expected - passed)); fi
fi
echo "xlang: $passed passed, $failed failed"
exit $status
