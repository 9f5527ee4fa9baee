//! With spans exported, a record a handler writes names the handler's own span as its parent,
//! so the next connector's span hangs under this one in the same trace.

use l2f_bus::headers::{TraceParent, TRACEPARENT};
use l2f_bus::Record;
use l2f_connector_kit::record::event_record;
use l2f_contracts::{examples, Codec};
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt as _;

fn traceparent(headers: &[(String, Option<Vec<u8>>)]) -> TraceParent {
    let v = headers.iter().find(|(k, _)| k == TRACEPARENT).unwrap();
    TraceParent::parse(std::str::from_utf8(v.1.as_ref().unwrap()).unwrap()).unwrap()
}

#[test]
fn an_effect_written_inside_the_process_span_is_that_spans_child() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    l2f_bus::trace::enable();
    tracing::subscriber::with_default(subscriber, || {
        let codec = Codec::new();
        let root = TraceParent::new_root();
        let order = event_record(&codec, "orders", &examples::order_placed(), None).unwrap();
        let mut headers = order.headers.clone();
        headers.push((TRACEPARENT.into(), Some(root.to_string().into_bytes())));
        let cause = Record {
            topic: "orders".into(),
            partition: 0,
            offset: 3,
            key: order.key.clone(),
            payload: order.payload.clone(),
            headers,
            timestamp_ms: None,
        };
        let span = l2f_bus::trace::process_span("g", std::slice::from_ref(&cause));
        let own = span
            .in_scope(l2f_bus::trace::current)
            .expect("a span context");
        assert_eq!(
            own.trace_id, root.trace_id,
            "the span joins the record's trace"
        );
        assert_ne!(
            own.span_id, root.span_id,
            "as a child, not the parent itself"
        );
        let effect = span.in_scope(|| {
            event_record(
                &codec,
                "subscriptions",
                &examples::subscription_created(),
                Some(&cause),
            )
            .unwrap()
        });
        let written = traceparent(&effect.headers);
        assert_eq!(written, own, "the effect's parent is the process span");
        // Outside the span the effect still continues the cause's trace.
        let outside = event_record(
            &codec,
            "subscriptions",
            &examples::subscription_created(),
            Some(&cause),
        )
        .unwrap();
        let outside = traceparent(&outside.headers);
        assert_eq!(outside.trace_id, root.trace_id);
        assert_ne!(outside.span_id, own.span_id);
    });
}

#[test]
fn an_api_call_inside_the_span_carries_its_traceparent() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    l2f_bus::trace::enable();
    tracing::subscriber::with_default(subscriber, || {
        let cause = Record {
            topic: "leads".into(),
            partition: 0,
            offset: 0,
            key: Some(b"lead-1".to_vec()),
            payload: None,
            headers: vec![(
                TRACEPARENT.into(),
                Some(TraceParent::new_root().to_string().into_bytes()),
            )],
            timestamp_ms: None,
        };
        let span = l2f_bus::trace::process_span("g", std::slice::from_ref(&cause));
        let (own, req) = span.in_scope(|| {
            let http = reqwest::Client::new();
            let req = l2f_connector_kit::http::traced(http.get("http://127.0.0.1:9/x"));
            (l2f_bus::trace::current().unwrap(), req.build().unwrap())
        });
        assert_eq!(
            req.headers()[TRACEPARENT].to_str().unwrap(),
            own.to_string(),
            "the call names the process span as its parent"
        );
    });
}
