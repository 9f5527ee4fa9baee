//! Spans for each record's handling, joined to the trace its `traceparent` header carries, so
//! an OpenTelemetry backend shows one trace per customer across every connector.
//!
//! The bus makes its spans with the OpenTelemetry API against the global tracer provider the
//! binary installs (OTLP in `l2f run`); until [`enable`] is called no span is made at all, so a
//! hub that exports no traces pays nothing per record. The API is used directly rather than
//! through `tracing` spans: a `tracing` span bridged to OpenTelemetry cost ~12 µs per record in
//! `make bench`, the direct span a fraction of that.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};

use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, KeyValue};

use crate::headers::{TraceParent, TRACEPARENT};
use crate::record::Record;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// A trace is sampled when the low 8 bytes of its id, shifted right by one, are below this
/// (OpenTelemetry's TraceIdRatioBased rule, so the SDK's sampler of a trace's root and every
/// connector make the same decision); `u64::MAX` keeps every trace.
static SAMPLE_BELOW: AtomicU64 = AtomicU64::new(u64::MAX);
/// The ratio [`SAMPLE_BELOW`] stands for, for the SDK's root sampler ([`sample_ratio`]).
static SAMPLE_RATIO_BITS: AtomicU64 = AtomicU64::new(0x3FF0_0000_0000_0000); // 1.0
static TRACER: OnceLock<BoxedTracer> = OnceLock::new();

/// The instrumentation scope of every span the bus makes.
pub const SCOPE: &str = "l2f";

/// Turns span making on (the binary calls it once it installed a global tracer provider).
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

/// Turns span making off again (a benchmark compares the two in one process).
pub fn disable() {
    ENABLED.store(false, Ordering::SeqCst);
}

/// Traces only `ratio` (0.0–1.0) of the traces, chosen by trace id, so every connector keeps
/// or drops the same whole traces; a parent marked not sampled is never traced.
pub fn set_sample_ratio(ratio: f64) {
    let r = if ratio.is_nan() {
        1.0
    } else {
        ratio.clamp(0.0, 1.0)
    };
    let below = if r >= 1.0 {
        u64::MAX
    } else {
        (r * (1u64 << 63) as f64) as u64
    };
    SAMPLE_BELOW.store(below, Ordering::SeqCst);
    SAMPLE_RATIO_BITS.store(r.to_bits(), Ordering::SeqCst);
}

/// The share of traces kept, for the tracer provider's `TraceIdRatioBased` root sampler.
pub fn sample_ratio() -> f64 {
    f64::from_bits(SAMPLE_RATIO_BITS.load(Ordering::SeqCst))
}

/// Whether a trace with this parent is traced: sampled by its flag and within the ratio.
pub fn sampled(tp: &TraceParent) -> bool {
    let mut low = [0u8; 8];
    low.copy_from_slice(&tp.trace_id[8..]);
    let below = SAMPLE_BELOW.load(Ordering::Relaxed);
    tp.flags & 1 == 1 && (below == u64::MAX || (u64::from_be_bytes(low) >> 1) < below)
}

/// Whether spans are made.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn tracer() -> &'static BoxedTracer {
    TRACER.get_or_init(|| global::tracer(SCOPE))
}

/// The names a process span of one partition takes, made once: a span per handler call
/// otherwise pays an allocation for each (a tenth of its cost in `make bench`).
#[derive(Clone, Copy)]
struct Names {
    process: &'static str,
    topic: &'static str,
    group: &'static str,
    partition: &'static str,
}

/// Each topic's partitions' [`Names`], with the group that consumes them.
type NamesByTopic = HashMap<String, Vec<(i32, Names)>>;

/// The [`Names`] of (`topic`, `group`, `partition`), kept for the life of the process: one
/// entry per partition a group consumes, so bounded by the topics' partitions. Found without
/// an allocation once made.
fn names_of(topic: &str, group: &str, partition: i32) -> Names {
    static NAMES: OnceLock<RwLock<NamesByTopic>> = OnceLock::new();
    let map = NAMES.get_or_init(Default::default);
    let find = |m: &NamesByTopic| {
        m.get(topic)?
            .iter()
            .find(|(p, n)| *p == partition && n.group == group)
            .map(|(_, n)| *n)
    };
    if let Some(n) = find(&map.read().unwrap_or_else(|p| p.into_inner())) {
        return n;
    }
    let mut m = map.write().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = find(&m) {
        return n;
    }
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let n = Names {
        process: leak(format!("{topic} process")),
        topic: leak(topic.to_string()),
        group: leak(group.to_string()),
        partition: leak(partition.to_string()),
    };
    m.entry(topic.to_string()).or_default().push((partition, n));
    n
}

/// The OpenTelemetry span context a `traceparent` names (a remote parent).
pub fn span_context(tp: &TraceParent) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(tp.trace_id),
        SpanId::from_bytes(tp.span_id),
        TraceFlags::new(tp.flags),
        true,
        TraceState::default(),
    )
}

/// The record's `traceparent`, if it has a valid one.
pub fn parent_of(r: &Record) -> Option<TraceParent> {
    r.header_str(TRACEPARENT).and_then(TraceParent::parse)
}

/// The context of one handler call on `records` (one partition, offset order), holding its
/// span: named `<topic> process` as OpenTelemetry's messaging conventions name a consumer's
/// work, the child of the first record's `traceparent`, linked to the traces of the others.
/// The span ends when the context is dropped (the call's future with it). `None` while tracing
/// is off.
pub fn process_context(group: &str, records: &[Record]) -> Option<Context> {
    let first = records.first().filter(|_| enabled())?;
    let parent = match parent_of(first) {
        Some(tp) if !sampled(&tp) => return None,
        Some(tp) => Context::new().with_remote_span_context(span_context(&tp)),
        None => Context::new(),
    };
    let links: Vec<Link> = records[1..]
        .iter()
        .filter_map(parent_of)
        .map(|tp| Link::with_context(span_context(&tp)))
        .collect();
    let tracer = tracer();
    let names = names_of(&first.topic, group, first.partition);
    let mut attributes = Vec::with_capacity(8);
    attributes.extend([
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("messaging.operation.type", "process"),
        KeyValue::new("messaging.destination.name", names.topic),
        KeyValue::new("messaging.consumer.group.name", names.group),
        KeyValue::new("messaging.destination.partition.id", names.partition),
        KeyValue::new("messaging.kafka.offset", first.offset),
        KeyValue::new("messaging.kafka.message.key", first.key_str()),
    ]);
    // Conditionally required by the messaging conventions: only for a batch.
    if records.len() > 1 {
        attributes.push(KeyValue::new(
            "messaging.batch.message_count",
            records.len() as i64,
        ));
    }
    let span = tracer
        .span_builder(names.process)
        .with_kind(SpanKind::Consumer)
        .with_attributes(attributes)
        .with_links(links)
        .start_with_context(tracer, &parent);
    Some(parent.with_span(span))
}

/// The span of a record a source makes from its app's feed (`<topic> create`, a producer
/// span, ended at once), returned as the `traceparent` the record carries, so every
/// connector's span for it is that span's child. `parent` is the trace the app's record
/// continues (the hub's own write it came from, read back from the app), if any; without
/// one the record starts a trace. `None` while tracing is off or the trace is not sampled.
pub fn create_span(
    source: &str,
    topic: &str,
    key: &str,
    parent: Option<&TraceParent>,
) -> Option<TraceParent> {
    if !enabled() {
        return None;
    }
    let tracer = tracer();
    let builder = tracer
        .span_builder(format!("{topic} create"))
        .with_kind(SpanKind::Producer)
        .with_attributes([
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "create"),
            KeyValue::new("messaging.destination.name", topic.to_string()),
            KeyValue::new("messaging.kafka.message.key", key.to_string()),
            KeyValue::new("l2f.source", source.to_string()),
        ]);
    let span = match parent {
        Some(tp) if !sampled(tp) => return None,
        Some(tp) => builder.start_with_context(
            tracer,
            &Context::new().with_remote_span_context(span_context(tp)),
        ),
        // A new trace: the provider's sampler (the same ratio, by trace id) decides, and an
        // unsampled root is carried as such so no connector traces it.
        None => builder.start_with_context(tracer, &Context::new()),
    };
    let cx = Context::new().with_span(span);
    let tp = traceparent_of(&cx);
    cx.span().end();
    tp
}

/// The span of one call to an app (`<app> <METHOD> <path template>`, a client span) under the
/// current span, so a trace shows each call a handler made and how it ended; the call carries
/// its `traceparent`. `None` outside an exported span. End it with [`end_call`].
pub fn call_context(app: &str, name: &str, method: &str, template: &str) -> Option<Context> {
    if !enabled() {
        return None;
    }
    let cx = Context::current();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() || sc.is_remote() {
        return None;
    }
    let tracer = tracer();
    let span = tracer
        .span_builder(format!("{app} {name}"))
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("http.request.method", method.to_string()),
            KeyValue::new("url.template", template.to_string()),
            KeyValue::new("server.name", app.to_string()),
        ])
        .start_with_context(tracer, &cx);
    Some(cx.with_span(span))
}

/// Ends a call's span with how it ended: the HTTP status, or the error that kept an answer
/// from coming (an error status for 5xx and no answer, as OpenTelemetry's HTTP rules say).
pub fn end_call(cx: &Context, status: Option<u16>, error: Option<&str>) {
    use opentelemetry::trace::Status;
    let span = cx.span();
    if let Some(code) = status {
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
        if code >= 500 {
            span.set_status(Status::error(code.to_string()));
        }
    }
    if let Some(e) = error {
        span.set_attribute(KeyValue::new("error.type", e.to_string()));
        span.set_status(Status::error(e.to_string()));
    }
    span.end();
}

/// The `traceparent` of the span `cx` holds.
pub fn traceparent_of(cx: &Context) -> Option<TraceParent> {
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| TraceParent {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
    })
}

/// The `traceparent` for a record written (or an API call made) from inside the current span:
/// the span itself as the parent, so the next connector's span is its child. `None` outside
/// an exported span.
pub fn current() -> Option<TraceParent> {
    if !enabled() {
        return None;
    }
    let cx = Context::current();
    let sc = cx.span().span_context().clone();
    (sc.is_valid() && !sc.is_remote()).then(|| TraceParent {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keeps_whole_traces_by_id_and_honours_an_unsampled_parent() {
        let mut tp = TraceParent::new_root();
        set_sample_ratio(1.0);
        assert!(sampled(&tp));
        tp.flags = 0;
        assert!(!sampled(&tp), "a parent marked not sampled");
        tp.flags = 1;
        let kept = (0..10_000)
            .filter(|_| {
                set_sample_ratio(0.1);
                sampled(&TraceParent::new_root())
            })
            .count();
        set_sample_ratio(1.0);
        assert!((700..1300).contains(&kept), "about a tenth kept: {kept}");
        set_sample_ratio(0.0);
        tp.trace_id[8..].copy_from_slice(&[0xff; 8]);
        assert!(!sampled(&tp));
        set_sample_ratio(1.0);
    }

    #[test]
    fn a_disabled_bus_makes_no_span_and_names_no_parent() {
        let r = Record {
            topic: "leads".into(),
            partition: 0,
            offset: 1,
            key: Some(b"k".to_vec()),
            payload: None,
            headers: vec![(
                TRACEPARENT.into(),
                Some(TraceParent::new_root().to_string().into_bytes()),
            )],
            timestamp_ms: None,
        };
        assert!(process_context("g", &[r]).is_none());
        assert!(current().is_none());
    }
}
