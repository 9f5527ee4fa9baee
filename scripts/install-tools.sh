#!/usr/bin/env bash
# Installs the command-line tools the project's scripts use beside its own, from Debian's
# packages, only when they are missing (idempotent: a second run installs nothing).
#   kcat   the librdkafka CLI that `make bench` times `l2f replay` against
#   time   GNU time (/usr/bin/time), for the peak memory (max RSS) of a benchmarked process
# Usage: scripts/install-tools.sh [TOOL...]   (default: all of the above)
set -euo pipefail
tools=("$@")
if [ ${#tools[@]} -eq 0 ]; then tools=(kcat time); fi
missing=()
for t in "${tools[@]}"; do
  case "$t" in
    kcat) command -v kcat >/dev/null 2>&1 || missing+=(kcat) ;;
    time) [ -x /usr/bin/time ] || missing+=(time) ;;
    *) echo "install-tools: unknown tool $t (known: kcat, time)" >&2; exit 2 ;;
  esac
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-tools: installing ${missing[*]} from Debian's packages" >&2
# A fresh machine has no package lists yet; refresh them once if the package is unknown.
if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
  $sudo apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
for t in "${missing[@]}"; do
  if [ "$t" = time ]; then bin=/usr/bin/time; else bin="$(command -v "$t" || true)"; fi
  [ -n "$bin" ] && [ -x "$bin" ] || { echo "install-tools: $t still missing" >&2; exit 1; }
done
