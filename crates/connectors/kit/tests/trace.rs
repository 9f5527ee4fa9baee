//! With spans exported, a record a handler writes names the handler's own span as its parent,
//! so the next connector's span hangs under this one in the same trace.

use l2f_bus::headers::{TraceParent, TRACEPARENT};
use l2f_bus::Record;
use l2f_connector_kit::record::event_record;
use l2f_contracts::{examples, Codec};
use opentelemetry::trace::FutureExt as _;

fn traceparent(headers: &[(String, Option<Vec<u8>>)]) -> TraceParent {
    let v = headers.iter().find(|(k, _)| k == TRACEPARENT).unwrap();
    TraceParent::parse(std::str::from_utf8(v.1.as_ref().unwrap()).unwrap()).unwrap()
}

/// The global provider, as `l2f run` installs it (no exporter: spans are made, not sent).
fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        opentelemetry::global::set_tracer_provider(provider);
        l2f_bus::trace::enable();
    });
}

#[test]
fn an_effect_written_inside_the_process_span_is_that_spans_child() {
    install();
    {
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
        let cx = l2f_bus::trace::process_context("g", std::slice::from_ref(&cause)).unwrap();
        let guard = cx.clone().attach();
        let own = l2f_bus::trace::current().expect("a span context");
        assert_eq!(
            own.trace_id, root.trace_id,
            "the span joins the record's trace"
        );
        assert_ne!(
            own.span_id, root.span_id,
            "as a child, not the parent itself"
        );
        let effect = event_record(
            &codec,
            "subscriptions",
            &examples::subscription_created(),
            Some(&cause),
        )
        .unwrap();
        drop(guard);
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
        // A future run in the context (as the loop runs the handler) sees the same span.
        let inside =
            futures::executor::block_on(async { l2f_bus::trace::current() }.with_context(cx));
        assert_eq!(inside, Some(own));
    }
}

#[test]
fn an_api_call_inside_the_span_carries_its_traceparent() {
    install();
    {
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
        let cx = l2f_bus::trace::process_context("g", std::slice::from_ref(&cause)).unwrap();
        let _guard = cx.attach();
        let http = reqwest::Client::new();
        let req = l2f_connector_kit::http::traced(http.get("http://127.0.0.1:9/x"));
        let (own, req) = (l2f_bus::trace::current().unwrap(), req.build().unwrap());
        assert_eq!(
            req.headers()[TRACEPARENT].to_str().unwrap(),
            own.to_string(),
            "the call names the process span as its parent"
        );
    }
}
