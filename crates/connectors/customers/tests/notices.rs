//! The customers app records the renewal notices it sends (rule 7's 14-day SaaS notice, which
//! the hub mails for it): the mirror sink against the customers-app mock over real HTTP.

use std::sync::Arc;

use l2f_bus::HandlerError;
use l2f_connector_customers::client::CustomersClient;
use l2f_connector_customers::sink::MirrorSink;
use l2f_connector_customers::CustomersConfig;
use l2f_contracts::events::{RenewalNoticeDue, SourceSystem};
use l2f_contracts::examples;
use l2f_contracts::record::AnyEvent;
use l2f_contracts::Codec;
use l2f_mocks::server::{self, MocksConfig};
use l2f_secrets::SecretRef;
use serde_json::{json, Value};

const TOKEN: &str = "l2f-customers-token";

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

fn notice(days: i32, sender: SourceSystem, subscription: &str) -> AnyEvent {
    let mut n: RenewalNoticeDue = examples::renewal_notice_due();
    n.days_before_term_end = days;
    n.sender = sender;
    n.subscription_id = subscription.into();
    AnyEvent::RenewalNoticeDue(n)
}

#[tokio::test]
async fn the_14_day_notice_is_recorded_once_and_zuoras_notices_are_not() {
    let mut mc = MocksConfig::default();
    mc.only(&["customers".to_string()]).unwrap();
    mc.without_https();
    let running = server::start(&mc).await.unwrap();
    let base = running.endpoint("customers").unwrap().http.clone();
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
    let client = Arc::new(
        CustomersConfig::new(&base, SecretRef::Inline(TOKEN.into()))
            .client()
            .unwrap(),
    );
    let sink = MirrorSink::new(client.clone(), Arc::new(Codec::new()));
    let mut created = examples::subscription_created();
    created.envelope.source = SourceSystem::Zuora;
    created.subscription_id = "A-S00000077".into();
    created.account_id = acct["id"].as_str().unwrap().into();
    created.order_id = sub["id"].as_str().unwrap().into();
    sink.apply(&AnyEvent::SubscriptionCreated(created))
        .await
        .unwrap();

    let fourteen = notice(14, SourceSystem::CustomersApp, "A-S00000077");
    sink.apply(&fourteen).await.unwrap();
    sink.apply(&fourteen).await.unwrap();
    sink.apply(&notice(45, SourceSystem::Zuora, "A-S00000077"))
        .await
        .unwrap();

    let shown = recorded(&client, "A-S00000077").await;
    assert_eq!(shown["id"], sub["id"]);
    let notices = shown["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 1, "one 14-day notice, once: {notices:?}");
    assert_eq!(notices[0]["days_before"], 14);
    assert_eq!(notices[0]["term_end"], "2027-11-30");
    assert_eq!(notices[0]["recipient"], "billing@example.de");
    assert_eq!(notices[0]["channel"], "email");

    // A notice for a subscription the app does not have yet waits (it is retried).
    let e = sink
        .apply(&notice(14, SourceSystem::CustomersApp, "A-S09999999"))
        .await
        .unwrap_err();
    assert!(matches!(e, HandlerError::Transient { .. }), "{e:?}");
    running.shutdown().await;
}

async fn recorded(client: &CustomersClient, id: &str) -> Value {
    client.subscription(id).await.unwrap().expect("mirrored")
}
