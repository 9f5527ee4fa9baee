"""Python side of the cross-implementation checks (fastavro).

For every event schema in schemas/: read the frame the Rust codec wrote (single-object
encoding), check its fingerprint against fastavro's own CRC-64-AVRO of the schema's Parsing
Canonical Form, decode it, re-encode it with fastavro and require identical bytes, write the
Python frame for Rust to read, and decode the Rust bytes with the oldest released schema as
reader (schema resolution). Prints PASS/FAIL lines; exits 1 on any failure.
"""
import argparse
import io
import json
import os
import sys

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def load_catalog(directory):
    """Returns {event name: self-contained schema dict}, named types inlined at first use."""
    with open(os.path.join(directory, "common.avsc")) as fh:
        common = json.load(fh)
    defs = {}
    for t in common:
        defs[f'{t["namespace"]}.{t["name"]}'] = t
    out = {}
    for fname in sorted(os.listdir(directory)):
        if not fname.endswith(".avsc") or fname == "common.avsc":
            continue
        with open(os.path.join(directory, fname)) as fh:
            event = json.load(fh)
        out[fname[:-5]] = inline(event, defs, set(), event.get("namespace"))
    return out


def inline(node, defs, seen, ns):
    if isinstance(node, str):
        if node in PRIMITIVES:
            return node
        full = node if "." in node else f"{ns}.{node}"
        if full in seen or full not in defs:
            return full
        seen.add(full)
        return inline(defs[full], defs, seen, ns)
    if isinstance(node, list):
        return [inline(b, defs, seen, ns) for b in node]
    node = dict(node)
    t = node.get("type")
    if t in ("record", "enum", "fixed"):
        ns = node.get("namespace", ns)
        full = node["name"] if "." in node["name"] else f"{ns}.{node['name']}"
        seen.add(full)
        if t == "record":
            node["fields"] = [dict(f, type=inline(f["type"], defs, seen, ns)) for f in node["fields"]]
        return node
    if t == "array":
        node["items"] = inline(node["items"], defs, seen, ns)
    elif t == "map":
        node["values"] = inline(node["values"], defs, seen, ns)
    elif not isinstance(t, str) or t not in PRIMITIVES:
        node["type"] = inline(t, defs, seen, ns)
    return node


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schemas", required=True)
    ap.add_argument("--history", required=True, help="oldest released version directory")
    ap.add_argument("--rust", required=True, help="directory of Rust-written frames")
    ap.add_argument("--out", required=True, help="directory for Python-written frames")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    current = load_catalog(args.schemas)
    old = load_catalog(args.history)
    failed = 0

    def verdict(ok, what, why=""):
        nonlocal failed
        if ok:
            print(f"PASS python {what}")
        else:
            failed += 1
            print(f"FAIL python {what}: {why}")

    for name, raw in current.items():
        try:
            schema = parse_schema(raw)
            canonical = to_parsing_canonical_form(schema)
            fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
            with open(os.path.join(args.rust, f"{name}.bin"), "rb") as fh:
                frame = fh.read()
            if len(frame) < 10 or frame[:2] != b"\xc3\x01":
                verdict(False, f"reads rust {name}", "not a single-object frame")
                continue
            # fastavro's hex string lists the bytes in single-object (little-endian) order.
            if frame[2:10] != fp:
                verdict(False, f"reads rust {name}", f"fingerprint {frame[2:10].hex()} != fastavro's {fp.hex()}")
                continue
            record = schemaless_reader(io.BytesIO(frame[10:]), schema, None)
            buf = io.BytesIO()
            buf.write(b"\xc3\x01" + fp)
            schemaless_writer(buf, schema, record)
            ours = buf.getvalue()
            verdict(ours == frame, f"reads rust {name}", "re-encoded bytes differ from the Rust bytes")
            with open(os.path.join(args.out, f"{name}.bin"), "wb") as fh:
                fh.write(ours)
            if name in old:
                reader = parse_schema(old[name])
                resolved = schemaless_reader(io.BytesIO(frame[10:]), schema, reader)
                extra = set(resolved) - {f["name"] for f in old[name]["fields"]}
                verdict(not extra and resolved["envelope"] == record["envelope"],
                        f"reads rust {name} with the released reader schema", f"extra fields {extra}")
        except Exception as e:  # report every schema, not only the first failure
            verdict(False, f"checks {name}", repr(e))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
