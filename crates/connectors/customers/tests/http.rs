//! The customers connector over real HTTP against the customers-app mock (no Kafka): the
//! source's polls (events, dead letters, cursor, echo, epoch reset) and the mirror's writes.

use std::sync::Arc;

use l2f_bus::dlq::DeadLetter;
use l2f_bus::source::Source;
use l2f_bus::{HandlerError, Record};
use l2f_connector_customers::client::CustomersClient;
use l2f_connector_customers::config::Topics;
use l2f_connector_customers::sink::MirrorSink;
use l2f_connector_customers::source::CustomersSource;
use l2f_connector_customers::CustomersConfig;
use l2f_connector_kit::record::FEED_PARTITION;
use l2f_contracts::examples;
use l2f_contracts::record::AnyEvent;
use l2f_contracts::{events::SourceSystem, Codec};
use l2f_mocks::server::{self, MocksConfig, Running};
use l2f_secrets::SecretRef;
use serde_json::{json, Value};

const TOKEN: &str = "l2f-customers-token";

async fn mock() -> (Running, String) {
    let mut mc = MocksConfig::default();
    mc.only(&["customers".to_string()]).unwrap();
    mc.without_https();
    let running = server::start(&mc).await.unwrap();
    let base = running.endpoint("customers").unwrap().http.clone();
    (running, base)
}

fn client(base: &str, token: &str) -> Arc<CustomersClient> {
    Arc::new(
        CustomersConfig::new(base, SecretRef::Inline(token.into()))
            .client()
            .unwrap(),
    )
}

fn source(base: &str) -> CustomersSource {
    CustomersSource::new(
        client(base, TOKEN),
        Arc::new(Codec::new()),
        "customers",
        Topics::default(),
        "dead-letters",
        500,
    )
}

async fn call(base: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

fn as_read(r: &l2f_bus::OutRecord) -> Record {
    Record {
        topic: r.topic.clone(),
        partition: 0,
        offset: 0,
        key: r.key.clone(),
        payload: r.payload.clone(),
        headers: r.headers.clone(),
        timestamp_ms: None,
    }
}

#[tokio::test]
async fn a_poll_turns_forms_and_purchases_into_events_and_unmappable_countries_into_dead_letters() {
    let (running, base) = mock().await;
    let post = reqwest::Method::POST;
    let form = |country: &str| json!({"email": "ada@example.co.uk", "first_name": "Ada", "last_name": "L", "company": "E", "country": country});
    call(&base, post.clone(), "/api/v1/signups", form("UK")).await;
    call(
        &base,
        post.clone(),
        "/api/v1/trials",
        form("Untied Kingdom"),
    )
    .await;
    let acct = call(
        &base,
        post.clone(),
        "/api/v1/accounts",
        json!({"email": "b@example.com", "name": "B", "country": "Germany"}),
    )
    .await;
    call(
        &base,
        post.clone(),
        "/api/v1/purchases",
        json!({"account_id": acct["id"], "deployment": "saas", "plan": "premium", "seats": 5}),
    )
    .await;

    let mut s = source(&base);
    let polled = s.poll(None).await.unwrap();
    assert_eq!(polled.records.len(), 3, "{:?}", polled.records);
    let codec = Codec::new();
    let lead = AnyEvent::decode(&codec, polled.records[0].payload.as_deref().unwrap()).unwrap();
    let AnyEvent::LeadCaptured(lead) = lead else {
        panic!("{}", lead.name())
    };
    assert_eq!(lead.country.unwrap().as_str(), "GB");
    assert_eq!(polled.records[0].topic, "leads");

    let letter = DeadLetter::parse(as_read(&polled.records[1])).expect("a dead letter");
    assert_eq!(polled.records[1].topic, "dead-letters");
    assert_eq!(letter.source_partition, FEED_PARTITION);
    assert_eq!(letter.source_offset, 2);
    assert!(
        letter.error_message.contains("LeadCaptured.country")
            && letter.error_message.contains("Untied Kingdom"),
        "{}",
        letter.error_message
    );

    let order = AnyEvent::decode(&codec, polled.records[2].payload.as_deref().unwrap()).unwrap();
    let AnyEvent::OrderPlaced(order) = order else {
        panic!()
    };
    assert_eq!(order.bill_to_country.as_str(), "DE");
    assert!(
        order.auto_renew,
        "web-store SaaS starts with auto-renew on (rule 5)"
    );
    assert_eq!(polled.records[2].topic, "orders");

    // The cursor resumes after what was read; a second poll finds nothing new.
    assert_eq!(polled.cursor["seq"], 3);
    let again = s.poll(Some(&polled.cursor)).await.unwrap();
    assert!(again.records.is_empty());
    assert_eq!(again.cursor, polled.cursor);
    // Re-reading from the start gives the same event ids.
    let reread = s.poll(None).await.unwrap();
    assert_eq!(reread.records[0].payload, polled.records[0].payload);
    running.shutdown().await;
}

#[tokio::test]
async fn the_hubs_mirror_writes_never_come_back_as_events() {
    let (running, base) = mock().await;
    let acct = call(
        &base,
        reqwest::Method::POST,
        "/api/v1/accounts",
        json!({"email": "b@example.com", "name": "B", "country": "US"}),
    )
    .await;
    let sub = call(
        &base,
        reqwest::Method::POST,
        "/api/v1/purchases",
        json!({"account_id": acct["id"], "deployment": "saas", "plan": "premium", "seats": 5}),
    )
    .await;
    let mut s = source(&base);
    let first = s.poll(None).await.unwrap();
    assert_eq!(first.records.len(), 1);

    // Zuora's subscription mirrored, then Zuora turns auto-renew off: the app records both
    // (the second as an AutoRenewChanged with origin hub), the source drops them.
    let sink = MirrorSink::new(client(&base, TOKEN), Arc::new(Codec::new()));
    let mut created = examples::subscription_created();
    created.envelope.source = SourceSystem::Zuora;
    created.subscription_id = "A-S00000001".into();
    created.account_id = acct["id"].as_str().unwrap().into();
    created.order_id = sub["id"].as_str().unwrap().into();
    created.auto_renew = true;
    sink.apply(&AnyEvent::SubscriptionCreated(created.clone()))
        .await
        .unwrap();
    let mut off = examples::auto_renew_changed();
    off.envelope.source = SourceSystem::Zuora;
    off.flag_owner = SourceSystem::Zuora;
    off.subscription_id = "A-S00000001".into();
    off.auto_renew = false;
    sink.apply(&AnyEvent::AutoRenewChanged(off.clone()))
        .await
        .unwrap();
    sink.apply(&AnyEvent::AutoRenewChanged(off)).await.unwrap();

    let shown = call(
        &base,
        reqwest::Method::GET,
        "/api/v1/subscriptions/A-S00000001",
        json!(null),
    )
    .await;
    assert_eq!(
        shown["id"], sub["id"],
        "the web-store subscription was linked, not duplicated"
    );
    assert_eq!(shown["auto_renew"], false);
    let feed = call(
        &base,
        reqwest::Method::GET,
        "/api/v1/events?after=0",
        json!(null),
    )
    .await;
    let hub: Vec<&Value> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["origin"] == "hub")
        .collect();
    assert_eq!(hub.len(), 1, "one change, once: {feed}");
    let next = s.poll(Some(&first.cursor)).await.unwrap();
    assert!(
        next.records.is_empty(),
        "the hub's own write came back: {:?}",
        next.records
    );
    assert_eq!(next.cursor["seq"], feed["next_after"]);
    assert_eq!(s.behind(), Some(0), "read to the feed's newest position");
    running.shutdown().await;
}

#[tokio::test]
async fn a_reset_feed_is_read_again_under_its_new_epoch() {
    let (running, base) = mock().await;
    let form = json!({"email": "ada@example.com", "first_name": "Ada", "last_name": "L", "company": "E", "country": "FR"});
    call(
        &base,
        reqwest::Method::POST,
        "/api/v1/web-forms",
        form.clone(),
    )
    .await;
    let mut s = source(&base);
    let first = s.poll(None).await.unwrap();
    reqwest::Client::new()
        .post(format!("{base}/__admin/reset"))
        .send()
        .await
        .unwrap();
    call(&base, reqwest::Method::POST, "/api/v1/web-forms", form).await;
    let after_reset = s.poll(Some(&first.cursor)).await.unwrap();
    assert_eq!(after_reset.records.len(), 1);
    assert_ne!(after_reset.cursor["epoch"], first.cursor["epoch"]);
    assert_ne!(
        after_reset.records[0].payload, first.records[0].payload,
        "a new epoch, new event ids"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_refused_token_or_an_outage_waits_and_a_missing_account_is_transient() {
    let (running, base) = mock().await;
    let mut bad = CustomersSource::new(
        client(&base, "wrong-token-do-not-print"),
        Arc::new(Codec::new()),
        "customers",
        Topics::default(),
        "dead-letters",
        10,
    );
    let e = bad.poll(None).await.unwrap_err();
    assert_eq!(e.class(), "unavailable");
    assert!(!e.message().contains("wrong-token-do-not-print"));

    let sink = MirrorSink::new(client(&base, TOKEN), Arc::new(Codec::new()));
    let mut created = examples::subscription_created();
    created.envelope.source = SourceSystem::Zuora;
    created.account_id = "001SFACCOUNT".into();
    let e = sink
        .apply(&AnyEvent::SubscriptionCreated(created))
        .await
        .unwrap_err();
    assert!(matches!(e, HandlerError::Transient { .. }), "{e:?}");

    reqwest::Client::new()
        .post(format!("{base}/__admin/faults"))
        .json(&json!({"path": "/api/v1/events", "action": {"kind": "status", "status": 503, "retry_after": 2}, "times": 1}))
        .send()
        .await
        .unwrap();
    let e = source(&base).poll(None).await.unwrap_err();
    assert_eq!(
        (e.class(), e.hint()),
        ("unavailable", Some(std::time::Duration::from_secs(2)))
    );
    running.shutdown().await;
}

#[tokio::test]
async fn an_issued_license_is_shown_on_its_subscription_once_mirrored() {
    let (running, base) = mock().await;
    let acct = call(
        &base,
        reqwest::Method::POST,
        "/api/v1/accounts",
        json!({"email": "c@example.com", "name": "C", "country": "US"}),
    )
    .await;
    let sub = call(
        &base,
        reqwest::Method::POST,
        "/api/v1/purchases",
        json!({"account_id": acct["id"], "deployment": "self_managed", "plan": "premium", "seats": 5}),
    )
    .await;
    assert_eq!(sub["license"]["status"], "pending_terms");
    let sink = MirrorSink::new(client(&base, TOKEN), Arc::new(Codec::new()));
    let mut created = examples::subscription_created();
    created.envelope.source = SourceSystem::Zuora;
    created.subscription_id = "A-S00000009".into();
    created.account_id = acct["id"].as_str().unwrap().into();
    created.order_id = sub["id"].as_str().unwrap().into();
    sink.apply(&AnyEvent::SubscriptionCreated(created))
        .await
        .unwrap();

    let mut issued = examples::license_issued();
    issued.envelope.source = SourceSystem::LicenseService;
    issued.subscription_id = "A-S00000009".into();
    issued.license_id = "L2F-0000-1111".into();
    let ev = AnyEvent::LicenseIssued(issued.clone());
    sink.apply(&ev).await.unwrap();
    sink.apply(&ev).await.unwrap();
    let shown = call(
        &base,
        reqwest::Method::GET,
        &format!("/api/v1/subscriptions/{}", sub["id"].as_str().unwrap()),
        json!(null),
    )
    .await;
    assert_eq!(
        shown["license"],
        json!({"status": "issued", "key": "L2F-0000-1111"})
    );

    // Not yet mirrored in the app: retried, not dead-lettered.
    issued.subscription_id = "A-S-NOT-YET".into();
    let e = sink
        .apply(&AnyEvent::LicenseIssued(issued))
        .await
        .unwrap_err();
    assert!(matches!(e, HandlerError::Transient { .. }), "{e:?}");
    running.shutdown().await;
}
