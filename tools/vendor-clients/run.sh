#!/usr/bin/env bash
# Runs the vendors' own client libraries unchanged against the l2f mocks on free loopback
# ports over HTTPS, two per vendor where two can be had: jsforce (npm) and
# simple-salesforce (PyPI) for Salesforce; node-marketo-rest (npm) and marketorestpython
# (PyPI) for Marketo; mailgun.js (npm) and Mailgun's Python SDK (PyPI, plus plain requests
# as Mailgun's docs show) for Mailgun; Zuora's zuora-sdk (PyPI). A second mock process
# (Zuora only, simulated clock) serves zuora_time.py: renewals, invoices, payments and
# notices read through the SDK after `POST /__admin/clock`. Prints a closing
# `N passed, M failed` line.
#
# Installs what it needs under build/vendor-clients (npm ci, a Python venv).
# Server: $L2F_MOCKS_CMD if set; else `target/debug/l2f mocks` when that binary has the
# subcommand; else the crate's example server (built here with cargo).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$root/build/vendor-clients"
mkdir -p "$work"

install() {
  if ! cmp -s "$here/package-lock.json" "$work/package-lock.json" || [ ! -d "$work/node_modules" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$work/" || return 1
    (cd "$work" && npm ci --no-audit --no-fund --loglevel=error) || return 1
  fi
  if ! cmp -s "$here/requirements.txt" "$work/venv/requirements.txt"; then
    python3 -m venv "$work/venv" || return 1
    "$work/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" || return 1
    cp "$here/requirements.txt" "$work/venv/requirements.txt"
  fi
  cp "$here"/*.mjs "$here"/*.py "$work/"
}

if ! install; then
  echo "vendor clients: installation failed"
  echo "0 passed, 1 failed"
  exit 1
fi

if [ -n "${L2F_MOCKS_CMD:-}" ]; then
  read -r -a server <<<"$L2F_MOCKS_CMD"
elif [ -x "$root/target/debug/l2f" ] && "$root/target/debug/l2f" mocks --help >/dev/null 2>&1; then
  server=("$root/target/debug/l2f" mocks)
else
  (cd "$root" && cargo build --quiet -p l2f-mocks --example serve) || { echo "0 passed, 1 failed"; exit 1; }
  server=("$root/target/debug/examples/serve")
fi

run_dir="$(mktemp -d)"
endpoints="$run_dir/endpoints.json"
ca="$run_dir/ca.pem"
# Zuora's callouts go to a receiver the Zuora check starts on this port.
L2F_CALLOUT_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export L2F_CALLOUT_PORT
cat >"$run_dir/mocks.toml" <<TOML
[zuora]
callout_url = "http://127.0.0.1:$L2F_CALLOUT_PORT/zuora-callouts"
callout_username = "zuora"
callout_password = "l2f-callout-secret"
callout_attempts = 2
callout_retry_base_ms = 50
TOML
"${server[@]}" --config "$run_dir/mocks.toml" --endpoints-file "$endpoints" --ca-file "$ca" >"$run_dir/server.log" 2>&1 &
server_pid=$!
# The time-driven checks get their own process on a simulated clock.
sim_endpoints="$run_dir/sim-endpoints.json"
sim_ca="$run_dir/sim-ca.pem"
cat >"$run_dir/sim.toml" <<TOML
clock = { mode = "simulated", start = "2026-01-01T00:00:00Z" }
TOML
"${server[@]}" --only zuora --config "$run_dir/sim.toml" --endpoints-file "$sim_endpoints" --ca-file "$sim_ca" >"$run_dir/sim-server.log" 2>&1 &
sim_pid=$!
cleanup() {
  kill "$server_pid" "$sim_pid" 2>/dev/null
  wait "$server_pid" "$sim_pid" 2>/dev/null
  rm -rf "$run_dir"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
  [ -s "$endpoints" ] && [ -s "$sim_endpoints" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null || ! kill -0 "$sim_pid" 2>/dev/null; then
    echo "mock server exited early:"; cat "$run_dir/server.log" "$run_dir/sim-server.log"
    echo "0 passed, 1 failed"; exit 1
  fi
  sleep 0.1
done
if [ ! -s "$endpoints" ] || [ ! -s "$sim_endpoints" ]; then
  echo "mock servers did not report their endpoints in 30 s"
  echo "0 passed, 1 failed"; exit 1
fi

export L2F_MOCKS_ENDPOINTS="$endpoints" L2F_MOCKS_CA="$ca" NODE_EXTRA_CA_CERTS="$ca" REQUESTS_CA_BUNDLE="$ca"
passed=0
failed=0
run_one() {
  local out rc
  out="$(cd "$work" && timeout 120 "$@" 2>&1)"
  rc=$?
  printf '%s\n' "$out" | grep -E '^(PASS|FAIL) ' || true
  local p f
  p=$(printf '%s\n' "$out" | grep -c '^PASS ')
  f=$(printf '%s\n' "$out" | grep -c '^FAIL ')
  if [ "$rc" -ne 0 ] || [ "$p" -eq 0 ]; then
    echo "FAIL $* exited $rc:"; printf '%s\n' "$out" | grep -vE '^(PASS|FAIL) ' | tail -20
    f=$((f + 1))
  fi
  passed=$((passed + p))
  failed=$((failed + f))
}
py="$work/venv/bin/python"
run_one node salesforce.mjs
run_one "$py" salesforce.py
run_one node marketo.mjs
run_one "$py" marketo.py
run_one node mail.mjs
run_one "$py" mail.py
run_one "$py" zuora.py
run_one env L2F_MOCKS_ENDPOINTS="$sim_endpoints" L2F_MOCKS_CA="$sim_ca" REQUESTS_CA_BUNDLE="$sim_ca" "$py" zuora_time.py

echo "vendor-clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
