"""Tiny harness shared by the Python vendor-client checks: each check prints one
`PASS name` or `FAIL name: why` line, which run.sh counts."""
import json
import os
import traceback


def endpoint(app, scheme="https"):
    with open(os.environ["L2F_MOCKS_ENDPOINTS"]) as f:
        ep = next(e for e in json.load(f)["endpoints"] if e["app"] == app)
    return ep[scheme]


def check(name, fn):
    try:
        fn()
        print(f"PASS {name}", flush=True)
    except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
        print(f"FAIL {name}: {e!r} {traceback.format_exc(limit=3)}", flush=True)
