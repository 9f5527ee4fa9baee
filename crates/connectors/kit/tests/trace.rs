//! With spans exported, a record a handler writes names the handler's own span as its parent,
//! so the next connector's span hangs under this one in the same trace.

use l2f_bus::headers::{TraceParent, TRACEPARENT};
use l2f_bus::Record;
use l2f_connector_kit::record::event_record;
use l2f_contracts::{examples, Codec};
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{FutureExt as _, SpanKind, Status};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

fn traceparent(headers: &[(String, Option<Vec<u8>>)]) -> TraceParent {
    let v = headers.iter().find(|(k, _)| k == TRACEPARENT).unwrap();
    TraceParent::parse(std::str::from_utf8(v.1.as_ref().unwrap()).unwrap()).unwrap()
}

/// Every span ended so far (the provider's exporter keeps them here).
static SPANS: std::sync::Mutex<Vec<SpanData>> = std::sync::Mutex::new(Vec::new());

#[derive(Debug)]
struct Keep;

impl SpanExporter for Keep {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        SPANS.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// The global provider, as `l2f run` installs it, its spans kept in [`SPANS`].
fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(Keep)
            .build();
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

#[tokio::test]
async fn an_api_call_inside_the_span_is_a_client_span_whose_traceparent_the_app_is_sent() {
    install();
    let got: Arc<Mutex<Option<String>>> = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/v1/subscriptions/{id}",
        axum::routing::get(move |h: axum::http::HeaderMap| {
            let keep = keep.clone();
            async move {
                *keep.lock().unwrap() = h
                    .get(TRACEPARENT)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/subscriptions/A-S00000042",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let cause = Record {
        topic: "orders".into(),
        partition: 0,
        offset: 0,
        key: Some(b"acct-1".to_vec()),
        payload: None,
        headers: vec![(
            TRACEPARENT.into(),
            Some(TraceParent::new_root().to_string().into_bytes()),
        )],
        timestamp_ms: None,
    };
    let cx = l2f_bus::trace::process_context("g", std::slice::from_ref(&cause)).unwrap();
    let own = l2f_bus::trace::traceparent_of(&cx).unwrap();
    let http = reqwest::Client::new();
    let resp = l2f_connector_kit::calls::call("zuora", http.get(&url))
        .with_context(cx.clone())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    drop(cx);

    let sent = TraceParent::parse(got.lock().unwrap().as_deref().expect("a traceparent"))
        .expect("a valid traceparent");
    assert_eq!(
        sent.trace_id, own.trace_id,
        "the call joins the record's trace"
    );
    assert_ne!(sent.span_id, own.span_id, "under a span of its own");
    let spans = SPANS.lock().unwrap();
    let call = spans
        .iter()
        .find(|s| s.span_context.span_id().to_bytes() == sent.span_id)
        .expect("the call's span is exported");
    assert_eq!(
        call.parent_span_id.to_bytes(),
        own.span_id,
        "its parent is the process span"
    );
    assert_eq!(call.name, "zuora GET /v1/subscriptions/{id}");
    assert_eq!(call.span_kind, SpanKind::Client);
    let status = call
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "http.response.status_code")
        .map(|kv| kv.value.to_string());
    assert_eq!(status.as_deref(), Some("503"));
    assert!(
        matches!(call.status, Status::Error { .. }),
        "a 5xx is an error"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.span_context.span_id().to_bytes() == own.span_id),
        "the process span is exported too"
    );
}
