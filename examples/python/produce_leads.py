"""Write LeadCaptured events to an l2f `leads` topic from Python (fastavro + confluent-kafka).

What an outside producer must do so the hub reads its records (README, "Writing events from
another language"):

- value: Avro single-object encoding: the two bytes C3 01, the writer schema's CRC-64-AVRO
  fingerprint (8 bytes, little-endian), then the Avro binary of the record;
- header `l2f.event-type`: the event's name, `LeadCaptured`;
- header `l2f.schema-id`: the same fingerprint as 16 lowercase hex digits, big-endian (the
  reverse of the byte order in the frame, and of what fastavro's `fingerprint()` prints);
- key: the aggregate, here the lead id, so every event of one lead stays in order.

The schema must be the one `l2f schemas show LeadCaptured` prints: one self-contained
document with the named types of common.avsc inlined. fastavro's canonical form of a schema
that refers to named types defined elsewhere is not Avro's, so its fingerprint would be one
the hub does not know; the inlined document gives the hub's fingerprint.

    l2f schemas show LeadCaptured > LeadCaptured.avsc
    python produce_leads.py --bootstrap 127.0.0.1:9092 --topic leads \\
        --schema LeadCaptured.avsc --count 5 --incomplete 1

Prints `schema-id <hex>` (compare with `l2f schemas fingerprint LeadCaptured.avsc`), then one
`produced <lead id> <partition>:<offset>` line per lead; exits 1 if any delivery fails.
"""
import argparse
import io
import json
import os
import sys
import uuid
from datetime import datetime, timezone

from confluent_kafka import Producer
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

SINGLE_OBJECT_MAGIC = b"\xc3\x01"


def writer_schema(path):
    """The parsed schema and its fingerprint as the 8 bytes of the frame (little-endian)."""
    with open(path) as fh:
        schema = parse_schema(json.load(fh))
    # fastavro prints the fingerprint's bytes in single-object (little-endian) order.
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
    return schema, fp


def schema_id(fp_little_endian):
    """The `l2f.schema-id` header value: the fingerprint big-endian, 16 lowercase hex digits."""
    return fp_little_endian[::-1].hex()


def frame(schema, fp, record):
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MAGIC + fp)
    schemaless_writer(buf, schema, record)
    return buf.getvalue()


def lead(run, i, incomplete):
    """The i-th lead; an incomplete one has no company (the hub dead-letters it, rule 2)."""
    return {
        "envelope": {
            "event_id": str(uuid.uuid4()),
            "occurred_at": datetime.now(timezone.utc),
            "source": "CUSTOMERS_APP",
            "correlation_id": str(uuid.uuid4()),
            "causation_id": None,
        },
        "lead_id": f"py-{run}-{i}",
        "email": f"py-{run}-{i}@example.com",
        "first_name": "Grace",
        "last_name": f"Hopper-{i}",
        "company": None if incomplete else f"Python Example {i}",
        "country": ["GB", "DE", "US", "NL"][i % 4],
        "lead_source": ["WEB_FORM", "TRIAL", "SIGN_UP"][i % 3],
        "marketing_opt_in": True,
        "utm_campaign": None,
    }


def traceparent():
    """A new W3C trace for each lead (a flow's first event)."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True, help="host:port of the Kafka cluster")
    ap.add_argument("--topic", default="leads")
    ap.add_argument("--schema", required=True, help="output of `l2f schemas show LeadCaptured`")
    ap.add_argument("--count", type=int, default=5, help="leads to write")
    ap.add_argument("--incomplete", type=int, default=1, help="of which this many lack a company")
    ap.add_argument("--run", default=uuid.uuid4().hex[:8], help="tag in lead ids and emails")
    args = ap.parse_args()

    schema, fp = writer_schema(args.schema)
    sid = schema_id(fp)
    print(f"schema-id {sid}", flush=True)
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
    })
    failures = []

    def delivered(err, msg):
        if err is not None:
            failures.append(f"{msg.key()!r}: {err}")
        else:
            print(f"produced {msg.key().decode()} {msg.partition()}:{msg.offset()}", flush=True)

    for i in range(args.count):
        record = lead(args.run, i, incomplete=i < args.incomplete)
        producer.produce(
            args.topic,
            key=record["lead_id"].encode(),
            value=frame(schema, fp, record),
            headers=[
                ("l2f.event-type", b"LeadCaptured"),
                ("l2f.schema-id", sid.encode()),
                ("traceparent", traceparent().encode()),
            ],
            on_delivery=delivered,
        )
    left = producer.flush(30)
    if left or failures:
        print(f"failed: {left} undelivered; {failures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
