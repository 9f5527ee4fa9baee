"""Reads an `l2f replay --format avro` export with fastavro and recomputes the replay digest
(sha256-chain-v1, documented in crates/audit/src/digest.rs) from the records' fields: the
record count and the digest must equal the summary's. Also checks that every decoded event
sits in the union branch its event_type names. Prints one PASS/FAIL line.

Usage: replay_check.py EXPORT.avro SUMMARY.json
"""
import datetime
import hashlib
import json
import struct
import sys

from fastavro import reader

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def opt(h, b):
    if b is None:
        h.update(struct.pack(">i", -1))
    else:
        h.update(struct.pack(">i", len(b)))
        h.update(b)


def millis(ts):
    # fastavro turns timestamp-millis into an aware datetime; back to integer milliseconds.
    if ts is None:
        return -1
    return (ts - EPOCH) // datetime.timedelta(milliseconds=1)


def main():
    export, summary_path = sys.argv[1], sys.argv[2]
    with open(summary_path) as fh:
        summary = json.load(fh)
    chains, counts = {}, {}
    records = decoded = 0
    problem = None
    with open(export, "rb") as fh:
        r = reader(fh, return_record_name=True)
        header = json.loads(r.metadata["l2f.replay"])
        for rec in r:
            records += 1
            pid = (rec["topic"], rec["partition"])
            h = hashlib.sha256(chains.get(pid, bytes(32)))
            t = rec["topic"].encode()
            h.update(struct.pack(">I", len(t)) + t)
            h.update(struct.pack(">iqq", rec["partition"], rec["offset"], millis(rec["timestamp"])))
            opt(h, rec["key"])
            opt(h, rec["value"])
            h.update(struct.pack(">I", len(rec["headers"])))
            for hd in rec["headers"]:
                n = hd["name"].encode()
                h.update(struct.pack(">I", len(n)) + n)
                opt(h, hd["value"])
            chains[pid] = h.digest()
            counts[pid] = counts.get(pid, 0) + 1
            if rec["event"] is not None:
                decoded += 1
                name, event = rec["event"]
                if name.split(".")[-1] != rec["event_type"] or event["envelope"]["event_id"] is None:
                    problem = f"event in the wrong union branch at {pid}@{rec['offset']}"
    ranges = sorted(header["ranges"], key=lambda x: (x["topic"].encode(), x["partition"]))
    total = hashlib.sha256()
    for x in ranges:
        pid = (x["topic"], x["partition"])
        line = f'{x["topic"]}\t{x["partition"]}\t{x["start"]}\t{x["end"]}\t{counts.get(pid, 0)}\t{chains.get(pid, bytes(32)).hex()}\n'
        total.update(line.encode())
    digest = total.hexdigest()
    ok = problem is None and records == summary["records"] and digest == summary["digest"]
    if ok:
        print(f"PASS python reads the replay export: {records} records ({decoded} decoded), digest {digest} recomputed")
    else:
        print(f"FAIL python reads the replay export: {records} records, digest {digest} vs summary "
              f"{summary['records']} records, digest {summary['digest']}" + (f"; {problem}" if problem else ""))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
