//! Spans for each record's handling, joined to the trace its `traceparent` header carries, so
//! an OpenTelemetry backend shows one trace per customer across every connector.
//!
//! The bus makes its spans with the OpenTelemetry API against the global tracer provider the
//! binary installs (OTLP in `l2f run`); until [`enable`] is called no span is made at all, so a
//! hub that exports no traces pays nothing per record. The API is used directly rather than
//! through `tracing` spans: a `tracing` span bridged to OpenTelemetry cost ~12 µs per record in
//! `make bench`, the direct span a fraction of that.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, KeyValue};

use crate::headers::{TraceParent, TRACEPARENT};
use crate::record::Record;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// A trace is sampled when the low 8 bytes of its id are at most this (OpenTelemetry's
/// TraceIdRatioBased rule: the same decision for a trace in every connector).
static SAMPLE_UP_TO: AtomicU64 = AtomicU64::new(u64::MAX);
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
    let up_to = if r >= 1.0 {
        u64::MAX
    } else {
        (r * u64::MAX as f64) as u64
    };
    SAMPLE_UP_TO.store(up_to, Ordering::SeqCst);
}

/// Whether a trace with this parent is traced: sampled by its flag and within the ratio.
pub fn sampled(tp: &TraceParent) -> bool {
    let mut low = [0u8; 8];
    low.copy_from_slice(&tp.trace_id[8..]);
    tp.flags & 1 == 1 && u64::from_be_bytes(low) <= SAMPLE_UP_TO.load(Ordering::Relaxed)
}

/// Whether spans are made.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn tracer() -> &'static BoxedTracer {
    TRACER.get_or_init(|| global::tracer(SCOPE))
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
    let span = tracer
        .span_builder(format!("{} process", first.topic))
        .with_kind(SpanKind::Consumer)
        .with_attributes([
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.type", "process"),
            KeyValue::new("messaging.destination.name", first.topic.clone()),
            KeyValue::new("messaging.consumer.group.name", group.to_string()),
            KeyValue::new(
                "messaging.destination.partition.id",
                first.partition.to_string(),
            ),
            KeyValue::new("messaging.kafka.offset", first.offset),
            KeyValue::new("messaging.batch.message_count", records.len() as i64),
            KeyValue::new("messaging.kafka.message.key", first.key_str()),
        ])
        .with_links(links)
        .start_with_context(tracer, &parent);
    Some(parent.with_span(span))
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
