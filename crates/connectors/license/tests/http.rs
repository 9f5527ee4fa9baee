//! The license connector over real HTTP against the license-service mock (no Kafka): the
//! sink's calls (registration, terms accepted, profile held and lifted, idempotency, errors
//! by fault) and the source's polls (events, ids, cursor, dead letters).

use std::sync::Arc;

use l2f_bus::source::Source;
use l2f_bus::HandlerError;
use l2f_connector_license::client::LicenseClient;
use l2f_connector_license::sink::LicenseSink;
use l2f_connector_license::source::LicenseSource;
use l2f_connector_license::LicenseConfig;
use l2f_contracts::events::*;
use l2f_contracts::examples;
use l2f_contracts::record::AnyEvent;
use l2f_contracts::Codec;
use l2f_mocks::server::{self, MocksConfig, Running};
use l2f_rules::Rules;
use l2f_secrets::SecretRef;
use serde_json::{json, Value};

const TOKEN: &str = "l2f-license-token";

async fn mock() -> (Running, String) {
    let mut mc = MocksConfig::default();
    mc.only(&["license".to_string()]).unwrap();
    mc.without_https();
    let running = server::start(&mc).await.unwrap();
    let base = running.endpoint("license").unwrap().http.clone();
    (running, base)
}

fn client(base: &str, token: &str) -> Arc<LicenseClient> {
    Arc::new(
        LicenseConfig::new(base, SecretRef::Inline(token.into()))
            .client()
            .unwrap(),
    )
}

fn sink(base: &str, token: &str) -> LicenseSink {
    LicenseSink::new(
        client(base, token),
        Arc::new(Codec::new()),
        Arc::new(Rules::embedded()),
        vec![BillingBatch::Batch1, BillingBatch::Batch4],
    )
}

fn source(base: &str) -> LicenseSource {
    LicenseSource::new(
        client(base, TOKEN),
        Arc::new(Codec::new()),
        "license",
        "licenses",
        "dead-letters",
        100,
    )
}

/// A web-store self-managed subscription of `account`, as Zuora reports it.
fn created(sub: &str, account: &str, profile: CommunicationProfile) -> AnyEvent {
    let mut s = examples::subscription_created();
    s.subscription_id = sub.into();
    s.account_id = account.into();
    s.billing_batch = BillingBatch::Batch1;
    s.communication_profile = profile;
    AnyEvent::SubscriptionCreated(s)
}

fn accepted(sub: &str, account: &str) -> AnyEvent {
    let mut a = examples::eula_accepted();
    a.subscription_id = sub.into();
    a.account_id = account.into();
    AnyEvent::EulaAccepted(a)
}

fn profile(account: &str, p: CommunicationProfile) -> AnyEvent {
    let mut c = examples::communication_profile_changed();
    c.account_id = account.into();
    c.communication_profile = p;
    AnyEvent::CommunicationProfileChanged(c)
}

async fn license(base: &str, sub: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/licenses/{sub}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn events(polled: &l2f_bus::source::Polled) -> Vec<AnyEvent> {
    let codec = Codec::new();
    polled
        .records
        .iter()
        .map(|r| AnyEvent::decode(&codec, r.payload.as_deref().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_web_store_purchase_waits_for_its_terms_and_is_issued_once() {
    let (running, base) = mock().await;
    let s = sink(&base, TOKEN);
    let sub = created("A-S1", "cust_1", CommunicationProfile::Default);
    s.apply(&sub).await.unwrap();
    assert_eq!(license(&base, "A-S1").await["status"], "pending_terms");
    assert_eq!(source(&base).poll(None).await.unwrap().records.len(), 0);

    s.apply(&accepted("A-S1", "cust_1")).await.unwrap();
    let l = license(&base, "A-S1").await;
    assert_eq!(l["status"], "issued");
    let key = l["key"].as_str().unwrap().to_string();

    // Redelivered: nothing changes, nothing is issued again.
    s.apply(&sub).await.unwrap();
    s.apply(&accepted("A-S1", "cust_1")).await.unwrap();
    assert_eq!(license(&base, "A-S1").await["key"], key.as_str());

    let mut src = source(&base);
    let first = src.poll(None).await.unwrap();
    let evs = events(&first);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let AnyEvent::LicenseIssued(issued) = &evs[0] else {
        panic!("{evs:?}")
    };
    assert_eq!(
        (issued.license_id.as_str(), issued.subscription_id.as_str()),
        (key.as_str(), "A-S1")
    );
    assert_eq!(issued.seats, 25);
    assert_eq!(issued.licensee_email, "billing@example.de");
    assert_eq!(first.records[0].topic, "licenses");
    assert_eq!(first.records[0].key.as_deref(), Some(&b"cust_1"[..]));
    // From the cursor, nothing new; from the start again, the same event id.
    assert!(src
        .poll(Some(&first.cursor))
        .await
        .unwrap()
        .records
        .is_empty());
    let again = events(&source(&base).poll(None).await.unwrap());
    assert_eq!(again[0].envelope().event_id, issued.envelope.event_id);
    running.shutdown().await;
}

#[tokio::test]
async fn a_sales_assisted_purchase_needs_no_terms_and_saas_is_not_licensed() {
    let (running, base) = mock().await;
    let s = sink(&base, TOKEN);
    let AnyEvent::SubscriptionCreated(mut deal) =
        created("A-S2", "cust_2", CommunicationProfile::Default)
    else {
        unreachable!()
    };
    deal.billing_batch = BillingBatch::Batch2;
    s.apply(&AnyEvent::SubscriptionCreated(deal.clone()))
        .await
        .unwrap();
    assert_eq!(license(&base, "A-S2").await["status"], "issued");
    deal.subscription_id = "A-S3".into();
    deal.deployment = Deployment::Saas;
    s.apply(&AnyEvent::SubscriptionCreated(deal)).await.unwrap();
    assert_eq!(license(&base, "A-S3").await["error"]["code"], "not_found");
    running.shutdown().await;
}

#[tokio::test]
async fn silent_holds_the_license_and_lifting_the_profile_releases_it() {
    let (running, base) = mock().await;
    let s = sink(&base, TOKEN);
    s.apply(&created("A-S4", "cust_4", CommunicationProfile::Silent))
        .await
        .unwrap();
    s.apply(&accepted("A-S4", "cust_4")).await.unwrap();
    let held = license(&base, "A-S4").await;
    assert_eq!(held["status"], "held");
    assert_eq!(held["key"], Value::Null);

    s.apply(&profile("cust_4", CommunicationProfile::Default))
        .await
        .unwrap();
    let l = license(&base, "A-S4").await;
    assert_eq!(l["status"], "issued");
    // The same change again: the key stays, no new event.
    s.apply(&profile("cust_4", CommunicationProfile::Default))
        .await
        .unwrap();
    assert_eq!(license(&base, "A-S4").await["key"], l["key"]);

    let evs = events(&source(&base).poll(None).await.unwrap());
    let kinds: Vec<&str> = evs.iter().map(AnyEvent::name).collect();
    assert_eq!(kinds, ["LicenseHeld", "LicenseIssued"]);
    let AnyEvent::LicenseHeld(h) = &evs[0] else {
        unreachable!()
    };
    assert_eq!(h.communication_profile, CommunicationProfile::Silent);
    assert_eq!(h.reason, LicenseHoldReason::SilentProfile);
    running.shutdown().await;
}

#[tokio::test]
async fn a_refused_token_or_an_outage_waits_and_a_bad_record_names_its_field() {
    let (running, base) = mock().await;
    let e = sink(&base, "wrong-token-do-not-print")
        .apply(&created("A-S5", "cust_5", CommunicationProfile::Default))
        .await
        .unwrap_err();
    assert_eq!(e.class(), "unavailable");
    assert!(!e.message().contains("wrong-token-do-not-print"));

    let s = sink(&base, TOKEN);
    let AnyEvent::SubscriptionCreated(mut bad) =
        created("A-S6", "cust_6", CommunicationProfile::Default)
    else {
        unreachable!()
    };
    bad.seats = 0;
    let e = s
        .apply(&AnyEvent::SubscriptionCreated(bad))
        .await
        .unwrap_err();
    assert!(matches!(e, HandlerError::Permanent { .. }), "{e:?}");
    assert!(
        e.message().contains("field seats") && e.message().contains("value 0"),
        "{e}"
    );

    // An acceptance before its subscription is registered: retried, not dead-lettered.
    let e = s.apply(&accepted("A-S7", "cust_7")).await.unwrap_err();
    assert_eq!(e.class(), "transient");
    // Named by the customers app's own id (its order id): found and accepted.
    let AnyEvent::SubscriptionCreated(mut by_order) =
        created("A-S8", "cust_8", CommunicationProfile::Default)
    else {
        unreachable!()
    };
    by_order.order_id = "sub_000008".into();
    s.apply(&AnyEvent::SubscriptionCreated(by_order))
        .await
        .unwrap();
    s.apply(&accepted("sub_000008", "cust_8")).await.unwrap();
    assert_eq!(license(&base, "A-S8").await["status"], "issued");

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
