//! Spans for each record's handling, joined to the trace its `traceparent` header carries, so
//! an OpenTelemetry backend shows one trace per customer across every connector.
//!
//! The bus only makes `tracing` spans and sets their parent; exporting them (OTLP) is the
//! binary's choice. Until [`enable`] is called no span is made at all, so a hub that exports
//! no traces pays nothing per record.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::headers::{TraceParent, TRACEPARENT};
use crate::record::Record;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// The `tracing` target of every span the bus makes: a subscriber's trace exporter selects it.
pub const TARGET: &str = "l2f::trace";

/// Turns span making on (the binary calls it once it installed a trace exporter).
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

/// Turns span making off again (a benchmark compares the two in one process).
pub fn disable() {
    ENABLED.store(false, Ordering::SeqCst);
}

/// Whether spans are made.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
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

fn parent_of(r: &Record) -> Option<TraceParent> {
    r.header_str(TRACEPARENT).and_then(TraceParent::parse)
}

/// The span of one handler call on `records` (one partition, offset order): named
/// `<topic> process` as OpenTelemetry's messaging conventions name a consumer's work, the
/// child of the first record's `traceparent`, linked to the traces of the others, and carrying
/// `trace_id` and `span_id` so log lines inside it name them. [`tracing::Span::none`] while
/// tracing is off.
pub fn process_span(group: &str, records: &[Record]) -> tracing::Span {
    let Some(first) = records.first().filter(|_| enabled()) else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(
        target: TARGET,
        "process",
        otel.name = format!("{} process", first.topic),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = first.topic.as_str(),
        messaging.consumer.group.name = group,
        messaging.destination.partition.id = first.partition,
        messaging.kafka.offset = first.offset,
        messaging.batch.message_count = records.len(),
        messaging.kafka.message.key = first.key_str(),
        trace_id = Empty,
        span_id = Empty,
    );
    if let Some(tp) = parent_of(first) {
        let parent = opentelemetry::Context::new().with_remote_span_context(span_context(&tp));
        let _ = span.set_parent(parent);
    }
    for r in &records[1..] {
        if let Some(tp) = parent_of(r) {
            span.add_link(span_context(&tp));
        }
    }
    let own = span.context().span().span_context().clone();
    if own.is_valid() {
        span.record("trace_id", own.trace_id().to_string());
        span.record("span_id", own.span_id().to_string());
    }
    span
}

/// The `traceparent` for a record written from inside the current span: the span itself as the
/// parent, so the next connector's span is its child. `None` outside an exported span.
pub fn current() -> Option<TraceParent> {
    if !enabled() {
        return None;
    }
    let cx = tracing::Span::current().context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| TraceParent {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(process_span("g", &[r]).is_none());
        assert!(current().is_none());
    }
}
