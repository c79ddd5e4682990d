"""A foreign producer: writes breakid records to Kafka with Python's fastavro and confluent-kafka, as a
team that does not run breakid's code would, from the published .avsc files and the framing in
contract/README.md. Prints what it sent as JSON on stdout.

  python produce.py <brokers> <topic prefix> <contract/avro folder>

- evolved: spans whose writer schema is span v2 plus a field with a default (`gpu_sm_clock_mhz`),
  in record containers of 10 (`BKC\\x01`, count, length + record each) and one single record, each
  message carrying its writer schema in the `breakid.writer-schema` header;
- evolved hardware samples: hw_sample v2 plus a defaulted field, single records, with the header;
- v1: spans written with the published span v1 schema, no header (readers know its fingerprint);
- incompatible: spans whose writer schema makes `total_us` a string (a required field of another
  type), with the header: readers must refuse them, naming the field.
"""

import json
import struct
import sys
import time

from confluent_kafka import Producer
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from io import BytesIO

HEADER = "breakid.writer-schema"


def load(folder, name):
    with open(f"{folder}/{name}.avsc") as f:
        return json.load(f)


class Writer:
    """Single-object encoding: C3 01, the CRC-64-AVRO fingerprint (little-endian), the Avro body."""

    def __init__(self, schema):
        self.json = json.dumps(schema)
        self.parsed = parse_schema(schema)
        # fastavro's hex is the fingerprint's 8 bytes in little-endian order, as the header wants them
        self.fingerprint = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))

    def record(self, value):
        body = BytesIO()
        schemaless_writer(body, self.parsed, value)
        return b"\xc3\x01" + self.fingerprint + body.getvalue()


def container(records):
    out = b"BKC\x01" + struct.pack(">I", len(records))
    for r in records:
        out += struct.pack(">I", len(r)) + r
    return out


def with_field(schema, field):
    return {**schema, "fields": schema["fields"] + [field]}


def span(i, kind, now_us):
    return {
        "timestamp_us": now_us + i * 1000,
        "trace_id": f"{i + 1:032x}",
        "span_id": f"{i + 1:016x}",
        "request_id": f"py-{kind}-{i}",
        "fleet": "py-fleet",
        "host": "py-host",
        "instance": "py-producer-1",
        "model": "ranker",
        "model_version": "7",
        "device": "",
        "batch_id": "",
        "batch_size": 0,
        "status": "ok",
        "error_class": None,
        "cache_hit": False,
        "request_bytes": 512,
        "response_bytes": 64,
        "deserialize_us": 30,
        "preprocess_us": 200 + i,
        "queue_wait_us": 400,
        "compute_us": 1500,
        "postprocess_us": 20,
        "serialize_us": 10,
        "total_us": 2200 + i,
        "input_mean": None,
        "input_std": None,
        "output_mean": None,
        "output_confidence": None,
    }


def hw_sample(i, now_us):
    return {
        "timestamp_us": now_us + i * 1_000_000,
        "fleet": "py-fleet",
        "host": "py-host",
        "instance": "py-producer-1",
        "interval_ms": 1000,
        "process_cpu": 0.0,
        "rss_bytes": 0,
        "heap_used_bytes": 0,
        "event_loop_delay_p99_ms": 0.0,
        "gc_ms": 0.0,
        "queue_depth": 1,
        "in_flight": 3,
        "arrivals": 100,
        "completions": 100,
        "executor_busy": 0.5,
        "devices": [
            {
                "device": "GPU-py-0",
                "utilization": 0.5,
                "memory_used_bytes": 1 << 30,
                "memory_total_bytes": 80 << 30,
                "power_w": 300.0,
                "temperature_c": 60.0,
            }
        ],
        "gpu_sm_clock_mhz": 1980,
    }


def main():
    brokers, prefix, folder = sys.argv[1], sys.argv[2], sys.argv[3]
    spans_topic = prefix + "breakid.spans.v1"
    hw_topic = prefix + "breakid.hw.v1"
    now_us = int(time.time() * 1_000_000)
    extra = {"name": "gpu_sm_clock_mhz", "type": "int", "default": 0}

    span_v2 = load(folder, "span.v2")
    evolved = Writer(with_field(span_v2, extra))
    evolved_hw = Writer(with_field(load(folder, "hw_sample.v2"), extra))
    v1 = Writer(load(folder, "span.v1"))
    incompatible = Writer(
        {
            **span_v2,
            "fields": [{**f, "type": "string"} if f["name"] == "total_us" else f for f in span_v2["fields"]],
        }
    )

    # murmur2: the partitioner breakid's own producers use (kafkajs default, Java's)
    producer = Producer({"bootstrap.servers": brokers, "acks": "all", "linger.ms": 5, "partitioner": "murmur2_random"})
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(str(err))

    def send(topic, value, schema=None):
        headers = [(HEADER, schema.json.encode())] if schema else None
        producer.produce(topic, value=value, key=b"py-producer-1", headers=headers, on_delivery=delivered)

    sent = {"evolved": [], "v1": [], "incompatible": [], "hw": 0, "messages": 0}
    # 21 evolved spans: two containers of 10 and one single record
    evolved_spans = [{**span(i, "evolved", now_us), "gpu_sm_clock_mhz": 1900 + i} for i in range(21)]
    for chunk in (evolved_spans[0:10], evolved_spans[10:20]):
        send(spans_topic, container([evolved.record(s) for s in chunk]), evolved)
    send(spans_topic, evolved.record(evolved_spans[20]), evolved)
    sent["evolved"] = [s["request_id"] for s in evolved_spans]

    # 5 v1 spans, no header: v1 has no run_id (added in v2)
    for i in range(5):
        s = span(100 + i, "v1", now_us)
        send(spans_topic, v1.record(s))
        sent["v1"].append(s["request_id"])

    # 2 incompatible spans, one message each
    for i in range(2):
        s = {**span(200 + i, "incompatible", now_us), "total_us": "2200"}
        send(spans_topic, incompatible.record(s), incompatible)
        sent["incompatible"].append(s["request_id"])

    for i in range(3):
        send(hw_topic, evolved_hw.record(hw_sample(i, now_us)), evolved_hw)
        sent["hw"] += 1

    producer.flush(30)
    if errors:
        raise SystemExit(f"delivery failed: {errors}")
    sent["fingerprints"] = {
        "evolved": evolved.fingerprint.hex(),
        "v1": v1.fingerprint.hex(),
        "incompatible": incompatible.fingerprint.hex(),
    }
    print(json.dumps(sent))


if __name__ == "__main__":
    main()
