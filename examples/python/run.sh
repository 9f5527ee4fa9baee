#!/usr/bin/env bash
# The Python example end to end, as an operator would run it (called by `make test`):
#   the Marketo mock (`l2f mocks --only marketo`), a hand-written hub config in its own
#   directory with relative paths (catalog, Marketo secret file), `l2f topics apply` and
#   `l2f run` started from another directory, LeadCaptured leads written by
#   produce_leads.py (fastavro + confluent-kafka) with the schema from `l2f schemas show`;
#   then: the schema-id the producer wrote is the one `l2f schemas fingerprint` prints,
#   every complete lead is in Marketo (read back over the mock's admin API), the incomplete
#   one is dead-lettered naming the missing field (`l2f dlq list`), and `l2f run` exits 0
#   on SIGTERM.
# Topics and groups are named per run, so it can share a broker. Needs KAFKA_BOOTSTRAP
# (default 127.0.0.1:9092). Prints PASS/FAIL lines and "python-example: N passed, N failed".
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
BOOTSTRAP="${KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
COUNT=5
INCOMPLETE=1
RUN="$(date +%s)-$$"
WORK="$ROOT/build/examples-python/$RUN"
ETC="$WORK/etc"
mkdir -p "$ETC" "$WORK/cwd"

PY="$(examples/python/setup.sh)"
cargo build -q -p l2f-cli
L2F="$ROOT/target/debug/l2f"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

passed=0
failed=0
check() { # check NAME CONDITION-EXIT-CODE [DETAIL]
  if [ "$2" -eq 0 ]; then
    echo "PASS python-example $1"; passed=$((passed + 1))
  else
    echo "FAIL python-example $1${3:+: $3}"; failed=$((failed + 1))
  fi
}
finish() {
  echo "python-example: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# The Marketo mock, on a free loopback port.
env -u L2F_CONFIG "$L2F" mocks --only marketo --endpoints-file "$WORK/endpoints.json" \
  > "$WORK/mocks.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$WORK/endpoints.json" ] && break; sleep 0.1; done
MARKETO="$("$PY" -c 'import json,sys; e=json.load(open(sys.argv[1]))["endpoints"]; print(next(x["http"] for x in e if x["app"]=="marketo"))' "$WORK/endpoints.json")"

# The operator's configuration, in its own directory, with paths relative to it.
LEADS="py-leads-$RUN"
DLQ="py-dead-letters-$RUN"
cat > "$ETC/topics.toml" <<TOML
[defaults]
partitions = 2
replication_factor = 1
[[topic]]
name = "$LEADS"
retention = "1d"
[[topic]]
name = "$DLQ"
partitions = 1
retention = "1d"
TOML
printf 'l2f-marketo-secret\n' > "$ETC/marketo-secret"
cat > "$ETC/l2f.toml" <<TOML
[kafka]
bootstrap_servers = "$BOOTSTRAP"
security_protocol = "PLAINTEXT"
[consumer]
commit_interval = "200ms"
[retry]
initial = "100ms"
[dead_letter]
topic = "$DLQ"
[topics]
catalog = "topics.toml"
[connectors.marketo]
base_url = "$MARKETO"
client_id = "l2f-marketo-client"
client_secret = { file = "marketo-secret" }
topic = "$LEADS"
group = "py-marketo-$RUN"
TOML

set +e           # from here on every step is checked and reported
cd "$WORK/cwd"   # not the repository: every path comes from the config file
l2f() { env -u L2F_CONFIG RUST_LOG=warn "$L2F" "$@"; }

out="$(l2f topics apply --config "$ETC/l2f.toml" 2>&1)"; rc=$?
check "topics apply from another directory" "$rc" "$out"

l2f schemas show LeadCaptured > "$WORK/LeadCaptured.avsc"
HUB_ID="$(l2f schemas fingerprint "$WORK/LeadCaptured.avsc" | sed -n 's/^l2f.schema-id: //p')"

# `env` execs l2f, so $! is l2f's own pid (a backgrounded shell function would be a subshell).
env -u L2F_CONFIG RUST_LOG=warn "$L2F" run --config "$ETC/l2f.toml" --topics "$LEADS" \
  --group "py-audit-$RUN" --audit-out "$WORK/audit.jsonl" > "$WORK/run.log" 2>&1 &
RUN_PID=$!
pids+=($RUN_PID)

"$PY" "$ROOT/examples/python/produce_leads.py" --bootstrap "$BOOTSTRAP" --topic "$LEADS" \
  --schema "$WORK/LeadCaptured.avsc" --count "$COUNT" --incomplete "$INCOMPLETE" --run "$RUN" \
  > "$WORK/produce.log" 2>&1
rc=$?
check "produce_leads.py delivers $COUNT leads" "$rc" "$(tail -3 "$WORK/produce.log")"
PY_ID="$(sed -n 's/^schema-id //p' "$WORK/produce.log")"
[ -n "$HUB_ID" ] && [ "$PY_ID" = "$HUB_ID" ]
check "the producer's l2f.schema-id ($PY_ID) is l2f schemas fingerprint's ($HUB_ID)" $?

# Every complete lead reaches Marketo; the incomplete one is dead-lettered.
want=$((COUNT - INCOMPLETE))
in_marketo() {
  "$PY" - "$MARKETO" "$RUN" <<'PYEOF'
import json, sys, urllib.request
state = json.load(urllib.request.urlopen(sys.argv[1] + "/__admin/state"))
emails = {l.get("email") for l in (state.get("leads") or {}).values()}
print(sum(1 for e in emails if e and e.startswith(f"py-{sys.argv[2]}-")))
PYEOF
}
got=0
letters=""
for _ in $(seq 1 120); do
  got="$(in_marketo)"
  letters="$(l2f dlq list --config "$ETC/l2f.toml" 2>/dev/null)"
  if [ "$got" -ge "$want" ] && [ -n "$letters" ]; then break; fi
  sleep 0.5
done
[ "$got" -eq "$want" ]
check "the hub delivered $want complete leads to the Marketo mock (it holds $got)" $?
echo "$letters" | "$PY" -c '
import json, sys
lines = [json.loads(l) for l in sys.stdin if l.strip()]
ok = len(lines) == 1 and lines[0]["key"] == sys.argv[1] and "company" in lines[0]["error_message"] and ":" in lines[0]["position"]
sys.exit(0 if ok else 1)' "py-$RUN-0"
check "the incomplete lead is dead-lettered naming the missing company" $? "$letters"

kill -TERM "$RUN_PID"
wait "$RUN_PID"
rc=$?
pids=("${pids[@]/$RUN_PID}")
check "l2f run exits 0 on SIGTERM" "$rc" "$(tail -3 "$WORK/run.log")"
finish
