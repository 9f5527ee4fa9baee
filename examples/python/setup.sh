#!/usr/bin/env bash
# Installs the example's pinned packages (requirements.txt, from PyPI) into build/examples-venv
# and prints the venv's python. Idempotent: a second run only checks the pins.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$ROOT/build/examples-venv"
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/examples/python/requirements.txt" >&2
echo "$VENV/bin/python"
