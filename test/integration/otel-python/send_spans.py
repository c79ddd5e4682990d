"""Sends spans to an OTLP/HTTP endpoint with the official OpenTelemetry Python SDK and exporter
(opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http: protobuf over HTTP), and prints what the
receiver must make of them as JSON on stdout.

  python send_spans.py <base url> <generic count> <triton count>

Generic: <generic count> SERVER spans of a service, each with `preprocess` and `compute` children,
through the SDK's BatchSpanProcessor (batches of 50), as an instrumented service exports them.

Triton-shaped: <triton count> requests of three spans each (InferRequest root with HTTP events, a model
span with triton.* attributes and REQUEST/QUEUE events, a compute span with COMPUTE events), named
and nested as Triton's tracer writes them. Their finished spans are exported in separate requests, out
of order: every compute span first, then the roots, then the model spans, each kind split in two.
Event times are not whole microseconds, so truncation is exercised.
"""

import json
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, set_span_in_context

BASE_NS = 1_765_000_000_000_000_000


def us(a, b):
    return (b - a) // 1000


def generic(endpoint, count):
    exporter = OTLPSpanExporter(endpoint=endpoint)
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "ranker", "service.instance.id": "ranker-py-1", "host.name": "py-host"}
        )
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=50, schedule_delay_millis=100))
    tracer = provider.get_tracer("ranker.http")
    expected = []
    for i in range(count):
        t0 = BASE_NS + i * 3_000_000_007
        server = tracer.start_span(
            "POST /v1/rank",
            kind=SpanKind.SERVER,
            start_time=t0,
            attributes={"http.request.method": "POST", "http.response.status_code": 200, "breakid.model": "ranker-v3"},
        )
        ctx = set_span_in_context(server)
        pre = tracer.start_span("preprocess", context=ctx, start_time=t0 + 10_111)
        pre.end(end_time=t0 + 10_111 + 200_000 + i)
        comp = tracer.start_span("compute", context=ctx, start_time=t0 + 300_000)
        comp.end(end_time=t0 + 300_000 + 1_500_999)
        server.end(end_time=t0 + 2_000_000)
        ctx_id = server.get_span_context()
        expected.append(
            {
                "trace_id": format(ctx_id.trace_id, "032x"),
                "preprocess_us": (200_000 + i) // 1000,
                "compute_us": 1_500_999 // 1000,
                "total_us": 2_000_000 // 1000,
            }
        )
    if not provider.force_flush(30_000):
        raise SystemExit("generic spans: flush timed out")
    provider.shutdown()
    return expected


def triton(endpoint, count):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "triton-inference-server"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("triton-server")
    expected = []
    for i in range(count):
        t0 = BASE_NS + 5_000_000_000_000 + i * 7_000_003
        ev = {
            "recv_start": t0 + 10_250,
            "recv_end": t0 + 55_777 + i,
            "request_start": t0 + 81_003,
            "queue_start": t0 + 90_499,
            "compute_start": t0 + 1_337_061 + 10 * i,
            "input_end": t0 + 1_502_999 + 10 * i,
            "output_start": t0 + 4_120_001 + 10 * i,
            "compute_end": t0 + 4_300_500 + 10 * i,
            "request_end": t0 + 4_330_000 + 10 * i,
            "response_complete": t0 + 4_331_000 + 10 * i,
            "send_start": t0 + 4_400_123 + 10 * i,
            "send_end": t0 + 4_471_900 + 11 * i,
            "end": t0 + 4_480_042 + 11 * i,
        }
        model = "resnet50" if i % 2 == 0 else "bert"
        root = tracer.start_span("InferRequest", kind=SpanKind.SERVER, start_time=t0)
        root.add_event("HTTP_RECV_START", timestamp=ev["recv_start"])
        root.add_event("HTTP_RECV_END", timestamp=ev["recv_end"])
        m = tracer.start_span(
            model,
            context=set_span_in_context(root),
            kind=SpanKind.SERVER,
            start_time=ev["request_start"],
            attributes={
                "triton.model_name": model,
                "triton.model_version": 1,
                "triton.trace_id": i + 1,
                "triton.trace_parent_id": 0,
                "triton.request_id": f"py-{i}",
            },
        )
        m.add_event("REQUEST_START", timestamp=ev["request_start"])
        m.add_event("QUEUE_START", timestamp=ev["queue_start"])
        c = tracer.start_span("compute", context=set_span_in_context(m), kind=SpanKind.SERVER, start_time=ev["compute_start"])
        c.add_event("COMPUTE_START", timestamp=ev["compute_start"])
        c.add_event("COMPUTE_INPUT_END", timestamp=ev["input_end"])
        c.add_event("COMPUTE_OUTPUT_START", timestamp=ev["output_start"])
        c.add_event("COMPUTE_END", timestamp=ev["compute_end"])
        c.end(end_time=ev["compute_end"])
        m.add_event("REQUEST_END", timestamp=ev["request_end"])
        m.end(end_time=ev["request_end"])
        root.add_event("INFER_RESPONSE_COMPLETE", timestamp=ev["response_complete"])
        root.add_event("HTTP_SEND_START", timestamp=ev["send_start"])
        root.add_event("HTTP_SEND_END", timestamp=ev["send_end"])
        root.end(end_time=ev["end"])
        expected.append(
            {
                "trace_id": format(root.get_span_context().trace_id, "032x"),
                "span_id": format(root.get_span_context().span_id, "016x"),
                "request_id": f"py-{i}",
                "model": model,
                "timestamp_us": t0 // 1000,
                "deserialize_us": us(ev["recv_start"], ev["recv_end"]),
                "queue_wait_us": us(ev["queue_start"], ev["compute_start"]),
                "preprocess_us": us(ev["compute_start"], ev["input_end"]),
                "compute_us": us(ev["input_end"], ev["output_start"]),
                "postprocess_us": us(ev["output_start"], ev["compute_end"]),
                "serialize_us": us(ev["send_start"], ev["send_end"]),
                "total_us": us(t0, ev["end"]),
            }
        )
    spans = memory.get_finished_spans()
    exporter = OTLPSpanExporter(endpoint=endpoint)
    batches = 0
    for kind in ("compute", "InferRequest", "model"):
        part = [s for s in spans if (s.name == kind if kind != "model" else s.name not in ("compute", "InferRequest"))]
        half = len(part) // 2
        for chunk in (part[:half], part[half:]):
            if chunk:
                if exporter.export(chunk) != SpanExportResult.SUCCESS:
                    raise SystemExit(f"triton {kind} export failed")
                batches += 1
    exporter.shutdown()
    return expected, batches


def main():
    base, generic_count, triton_count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    endpoint = base.rstrip("/") + "/v1/traces"
    gen = generic(endpoint, generic_count)
    tri, batches = triton(endpoint, triton_count)
    json.dump({"generic": gen, "triton": tri, "triton_exports": batches}, sys.stdout)


if __name__ == "__main__":
    main()
