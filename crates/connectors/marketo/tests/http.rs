//! How the sink sorts Marketo's answers, over real HTTP against the Marketo mock (no Kafka):
//! each misbehaviour is made by the mock itself (fault rules, limits, its field list), and
//! the sink's verdict is checked — unavailable (wait) with the right hint, or permanent with a
//! reason — and batches go in one call with one outcome per lead.

use std::sync::Arc;
use std::time::Duration;

use l2f_bus::config::SecretRef;
use l2f_bus::{HandlerError, Record};
use l2f_connector_kit::record::event_record;
use l2f_connector_marketo::{MarketoConfig, MarketoSink, Pushed};
use l2f_contracts::examples::lead_captured;
use l2f_contracts::Codec;
use l2f_mocks::marketo::Config;
use l2f_mocks::server::{self, MocksConfig, Running};
use serde_json::{json, Value};

const SECRET: &str = "l2f-marketo-secret";

async fn mock(tweak: impl FnOnce(&mut Config)) -> (Running, String) {
    let mut mc = MocksConfig::default();
    mc.only(&["marketo".to_string()]).unwrap();
    mc.without_https();
    tweak(&mut mc.marketo);
    let running = server::start(&mc).await.unwrap();
    let base = running.endpoint("marketo").unwrap().http.clone();
    (running, base)
}

fn sink(base: &str, secret: &str) -> MarketoSink {
    let mut cfg = MarketoConfig::new(base, "l2f-marketo-client", SecretRef::Inline(secret.into()));
    cfg.request_timeout = Duration::from_millis(500);
    cfg.rate_window = Duration::from_secs(20);
    MarketoSink::from_config(&cfg, Arc::new(Codec::new())).unwrap()
}

fn record() -> Record {
    lead_record(lead_captured())
}

fn lead_record(lead: l2f_contracts::events::LeadCaptured) -> Record {
    let out = event_record(&Codec::new(), "leads", &lead, None).unwrap();
    Record {
        topic: out.topic,
        partition: 0,
        offset: 42,
        key: out.key,
        payload: out.payload,
        headers: out.headers,
        timestamp_ms: None,
    }
}

async fn fault(base: &str, action: Value) {
    let rule =
        json!({"path": "/rest/v1/leads.json", "method": "POST", "action": action, "times": 1});
    let status = reqwest::Client::new()
        .post(format!("{base}/__admin/faults"))
        .json(&rule)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 201, "fault rule refused");
}

async fn one(s: &MarketoSink, r: &Record) -> Result<Pushed, HandlerError> {
    s.push(std::slice::from_ref(r)).await.remove(0)
}

fn unavailable(r: Result<Pushed, HandlerError>) -> (String, Option<Duration>) {
    match r {
        Err(HandlerError::Unavailable {
            message,
            retry_after,
        }) => (message, retry_after),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

fn permanent(r: Result<Pushed, HandlerError>) -> String {
    match r {
        Err(HandlerError::Permanent { message }) => message,
        other => panic!("expected permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn http_faults_make_the_lead_wait_and_the_next_push_goes_through() {
    let (running, base) = mock(|_| {}).await;
    let s = sink(&base, SECRET);
    let r = record();

    fault(
        &base,
        json!({"kind": "status", "status": 503, "retry_after": 7}),
    )
    .await;
    let (m, hint) = unavailable(one(&s, &r).await);
    assert_eq!(hint, Some(Duration::from_secs(7)), "{m}");
    assert!(m.contains("503"), "{m}");

    fault(&base, json!({"kind": "status", "status": 429})).await;
    let (m, hint) = unavailable(one(&s, &r).await);
    assert_eq!(hint, None, "{m}");
    assert!(m.contains("429"), "{m}");

    fault(&base, json!({"kind": "reset"})).await;
    let (m, _) = unavailable(one(&s, &r).await);
    assert!(m.contains("did not complete"), "{m}");

    fault(&base, json!({"kind": "latency", "ms": 1500})).await;
    let (m, _) = unavailable(one(&s, &r).await);
    assert!(m.contains("timed out"), "{m}");

    assert_eq!(one(&s, &r).await.unwrap(), Pushed::Created(Some(1)));
    assert_eq!(one(&s, &r).await.unwrap(), Pushed::Updated(Some(1)));
    assert_eq!(s.stats().unavailable(), 4);
    running.shutdown().await;
}

#[tokio::test]
async fn marketo_limits_606_and_615_make_the_lead_wait() {
    let (running, base) = mock(|c| c.rate_limit_calls = 0).await;
    let (m, hint) = unavailable(one(&sink(&base, SECRET), &record()).await);
    assert!(m.contains("606"), "{m}");
    assert_eq!(hint, Some(Duration::from_secs(20)));
    running.shutdown().await;

    let (running, base) = mock(|c| c.max_concurrent = 0).await;
    let (m, hint) = unavailable(one(&sink(&base, SECRET), &record()).await);
    assert!(m.contains("615"), "{m}");
    assert_eq!(hint, None);
    running.shutdown().await;
}

#[tokio::test]
async fn unknown_fields_and_skipped_records_are_permanent_with_reasons() {
    let (running, base) = mock(|c| c.fields.retain(|f| f != "externalLeadId")).await;
    let m = permanent(one(&sink(&base, SECRET), &record()).await);
    assert!(m.contains("1006") && m.contains("externalLeadId"), "{m}");
    running.shutdown().await;

    let (running, base) = mock(|c| c.required_fields.push("phone".into())).await;
    let m = permanent(one(&sink(&base, SECRET), &record()).await);
    assert!(m.contains("skipped") && m.contains("'phone'"), "{m}");
    running.shutdown().await;
}

#[tokio::test]
async fn refused_credentials_make_the_lead_wait_and_are_never_printed() {
    let (running, base) = mock(|_| {}).await;
    let wrong = "wrong-secret-do-not-print";
    let s = sink(&base, wrong);
    let (m, _) = unavailable(one(&s, &record()).await);
    assert!(m.contains("refuses the connector's credentials"), "{m}");
    assert!(!m.contains(wrong), "{m}");
    use l2f_bus::Handler;
    assert!(!s.probe().await, "the probe must see the refusal");
    assert!(sink(&base, SECRET).probe().await);
    running.shutdown().await;
}

#[tokio::test]
async fn an_undecodable_record_is_permanent_with_its_position() {
    let (running, base) = mock(|_| {}).await;
    let mut r = record();
    r.payload = Some(b"{\"lead_id\": \"json, not avro\"}".to_vec());
    let m = permanent(one(&sink(&base, SECRET), &r).await);
    assert!(
        m.contains("leads[0]@42") && m.contains("not a decodable LeadCaptured"),
        "{m}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_batch_is_one_call_with_one_outcome_per_lead() {
    let (running, base) = mock(|_| {}).await;
    let s = sink(&base, SECRET);
    let lead = |i: usize, company: Option<&str>| {
        let mut l = lead_captured();
        l.lead_id = format!("lead-{i}");
        l.email = format!("batch{i}@example.com");
        l.company = company.map(str::to_string);
        lead_record(l)
    };
    let mut garbage = lead(9, Some("x"));
    garbage.payload = Some(b"garbage".to_vec());
    let batch = vec![
        lead(1, Some("A")),
        lead(2, None),
        garbage,
        lead(3, Some("C")),
    ];
    let out = s.push(&batch).await;
    assert_eq!(out.len(), 4);
    assert!(matches!(out[0], Ok(Pushed::Created(_))), "{:?}", out[0]);
    assert!(permanent(out[1].clone()).contains("LeadCaptured.company"));
    assert!(permanent(out[2].clone()).contains("not a decodable"));
    assert!(matches!(out[3], Ok(Pushed::Created(_))), "{:?}", out[3]);
    assert_eq!(s.stats().calls(), 1, "the two ready leads went in one call");
    // The same batch again: updates, still one call.
    let again = s.push(&batch).await;
    assert!(matches!(again[0], Ok(Pushed::Updated(_))));
    assert!(matches!(again[3], Ok(Pushed::Updated(_))));
    assert_eq!(s.stats().calls(), 2);
    running.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_is_refreshed_on_602_and_the_push_goes_through() {
    let (running, base) = mock(|_| {}).await;
    let s = sink(&base, SECRET);
    assert!(matches!(one(&s, &record()).await, Ok(Pushed::Created(_))));
    let expired = reqwest::Client::new()
        .post(format!("{base}/__admin/tokens/expire"))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status().as_u16(), 204);
    assert!(matches!(one(&s, &record()).await, Ok(Pushed::Updated(_))));
    running.shutdown().await;
}
