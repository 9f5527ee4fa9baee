//! The client, the verdict and the sink over real HTTP against the Zuora mock (no Kafka):
//! each misbehaviour is the mock's own (fault rules, its rate limiter, its idempotency layer,
//! its catalog), and each outcome is checked — done, already done, permanent with a reason,
//! transient, or unavailable (wait) with the right hint.
//!
//! The mock follows Zuora's documented shapes: error codes
//! (<https://developer.zuora.com/docs/guides/error-codes>), idempotent requests
//! (<https://developer.zuora.com/docs/guides/idempotent-requests/>), rate limits
//! (<https://developer.zuora.com/docs/guides/rate-limits>), Orders
//! (<https://developer.zuora.com/v1-api-reference/api/operation/POST_Order/>), the callout
//! history (<https://developer.zuora.com/v1-api-reference/api/operation/GET_CalloutHistory/>).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use l2f_bus::config::SecretRef;
use l2f_bus::{Handler, HandlerError, Record};
use l2f_connector_kit::record::event_record;
use l2f_connector_kit::ClientError;
use l2f_connector_zuora::client::Call;
use l2f_connector_zuora::verdict::judge;
use l2f_connector_zuora::{Applied, ZuoraConfig, ZuoraSink};
use l2f_contracts::events::*;
use l2f_contracts::{examples, Codec, CountryCode};
use l2f_mocks::server::{self, MocksConfig, Running};
use l2f_rules::Rules;
use serde_json::{json, Value};

const CLIENT_ID: &str = "6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01";
const SECRET: &str = "l2f-zuora-secret";

async fn mock(tweak: impl FnOnce(&mut l2f_mocks::zuora::Config)) -> (Running, String) {
    let mut mc = MocksConfig::default();
    mc.only(&["zuora".to_string()]).unwrap();
    mc.without_https();
    tweak(&mut mc.zuora);
    let running = server::start(&mc).await.unwrap();
    let base = running.endpoint("zuora").unwrap().http.clone();
    (running, base)
}

fn config(base: &str, secret: &str) -> ZuoraConfig {
    let mut cfg = ZuoraConfig::new(base, CLIENT_ID, SecretRef::Inline(secret.into()));
    cfg.request_timeout = Duration::from_millis(800);
    cfg
}

fn sink(base: &str, secret: &str) -> ZuoraSink {
    let cfg = config(base, secret);
    ZuoraSink::new(
        Arc::new(cfg.client().unwrap()),
        Arc::new(Codec::new()),
        Arc::new(Rules::embedded()),
        cfg.profiles(),
    )
}

fn record<E: l2f_contracts::record::Keyed>(e: &E) -> Record {
    let out = event_record(&Codec::new(), E::TOPIC, e, None).unwrap();
    Record {
        topic: out.topic,
        partition: 0,
        offset: 7,
        key: out.key,
        payload: out.payload,
        headers: out.headers,
        timestamp_ms: None,
    }
}

fn country(c: &str) -> CountryCode {
    CountryCode::from_code(c).unwrap()
}

/// A web-store SaaS purchase of `seats` Premium seats by `cust_<n>`.
fn web_order(n: u32) -> OrderPlaced {
    let mut o = examples::order_placed();
    o.envelope.event_id = uuid::Uuid::new_v4();
    o.envelope.source = SourceSystem::CustomersApp;
    o.envelope.occurred_at = Utc::now();
    o.sales_channel = SalesChannel::WebStore;
    o.reseller = None;
    o.deployment = Deployment::Saas;
    o.order_type = OrderType::New;
    o.bill_to_country = country("FR");
    o.account_id = format!("cust_{n:06}");
    o.order_id = format!("sub_{n:06}");
    o.sold_to_email = format!("ada.lovelace{n}@example.com");
    o.auto_renew = true;
    o.lines.truncate(1);
    o.lines[0].sku = "premium-saas-1y".into();
    o.lines[0].quantity = 10;
    o
}

/// A sales-assisted deal of Salesforce account `001…<n>` billed to `c`.
fn deal(n: u32, c: &str) -> OrderPlaced {
    let mut o = web_order(n);
    o.envelope.source = SourceSystem::Salesforce;
    o.sales_channel = SalesChannel::SalesAssisted;
    o.bill_to_country = country(c);
    o.account_id = format!("001{n:015}");
    o.order_id = format!("006{n:015}");
    o.auto_renew = false;
    o
}

async fn state(base: &str) -> Value {
    reqwest::get(format!("{base}/__admin/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn fault(base: &str, path: &str, action: Value, times: Option<u64>) {
    let rule = json!({"path": path, "action": action, "times": times});
    let status = reqwest::Client::new()
        .post(format!("{base}/__admin/faults"))
        .json(&rule)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 201, "fault rule refused");
}

async fn clear_faults(base: &str) {
    reqwest::Client::new()
        .delete(format!("{base}/__admin/faults"))
        .send()
        .await
        .unwrap();
}

/// How many requests reached paths under `path` since the counting rule was added.
async fn count_requests(base: &str, path: &str) -> u64 {
    let rules: Vec<Value> = reqwest::get(format!("{base}/__admin/faults"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    rules
        .iter()
        .find(|r| r["path"] == path && r["action"]["kind"] == "latency")
        .map(|r| r["seen"].as_u64().unwrap())
        .unwrap_or(0)
}

fn unavailable(r: Result<Applied, HandlerError>) -> (String, Option<Duration>) {
    match r {
        Err(HandlerError::Unavailable {
            message,
            retry_after,
        }) => (message, retry_after),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

fn permanent(r: Result<Applied, HandlerError>) -> String {
    match r {
        Err(HandlerError::Permanent { message }) => message,
        other => panic!("expected permanent, got {other:?}"),
    }
}

fn subscriptions_of<'a>(st: &'a Value, account: &str) -> Vec<&'a Value> {
    st["subscriptions"]
        .as_object()
        .unwrap()
        .values()
        .filter(|s| s["accountNumber"] == account)
        .collect()
}

#[tokio::test]
async fn a_web_store_order_creates_an_inc_account_and_one_subscription_however_often_it_comes() {
    let (running, base) = mock(|_| {}).await;
    let s = sink(&base, SECRET);
    let order = web_order(1);
    let r = record(&order);
    assert_eq!(s.apply(&r).await.unwrap(), Applied::Created);
    let st = state(&base).await;
    let a = &st["accounts"]["cust_000001-INC"];
    assert_eq!(a["batch"], "Batch1", "{a}");
    assert_eq!(a["communicationProfileId"], "Default");
    assert_eq!(a["entity"], "GITLAB_INC");
    assert_eq!(a["billToContact"]["country"], "FR");
    assert_eq!(a["billToContact"]["firstName"], "Ada");
    assert_eq!(a["customFields"]["L2fAccountId__c"], "cust_000001");
    let subs = subscriptions_of(&st, "cust_000001-INC");
    assert_eq!(subs.len(), 1);
    let sub = subs[0];
    assert_eq!(sub["autoRenew"], true);
    assert_eq!(sub["L2fOrderId__c"], "sub_000001");
    assert_eq!(
        sub["L2fCausationId__c"],
        order.envelope.event_id.to_string()
    );
    assert_eq!(sub["ratePlans"][0]["productRatePlanId"], "prp-premium-saas");
    assert_eq!(sub["ratePlans"][0]["quantity"], 10.0);
    assert_eq!(sub["currentTerm"], 12);

    // Redelivered: found by its order id, nothing written.
    assert_eq!(s.apply(&r).await.unwrap(), Applied::AlreadyDone);
    // The same order as a new event (another id, past the key window): still found.
    let mut again = order.clone();
    again.envelope.event_id = uuid::Uuid::new_v4();
    assert_eq!(
        s.apply(&record(&again)).await.unwrap(),
        Applied::AlreadyDone
    );
    // An add-on for the same account goes onto the existing account.
    let mut addon = web_order(1);
    addon.order_type = OrderType::AddOn;
    addon.order_id = "sub_000001-ci".into();
    addon.lines[0].sku = "ci-minutes-1000".into();
    addon.lines[0].quantity = 3;
    assert_eq!(s.apply(&record(&addon)).await.unwrap(), Applied::Created);
    let st = state(&base).await;
    assert_eq!(subscriptions_of(&st, "cust_000001-INC").len(), 2);
    assert_eq!(st["accounts"].as_object().unwrap().len(), 1);
    assert_eq!(s.stats().created(), 2);
    assert_eq!(s.stats().already_done(), 2);
    running.shutdown().await;
}

#[tokio::test]
async fn the_idempotency_key_replays_reused_keys_are_permanent_and_in_flight_ones_transient() {
    let (running, base) = mock(|_| {}).await;
    let client = Arc::new(config(&base, SECRET).client().unwrap());
    let order = |n: &str| {
        json!({
            "orderDate": "2026-01-01",
            "newAccount": {"accountNumber": n, "name": n, "currency": "USD",
                           "billToContact": {"firstName": "A", "lastName": "B", "country": "US"}},
            "subscriptions": [{"orderActions": [{"type": "CreateSubscription", "createSubscription": {
                "terms": {"initialTerm": {"period": 12, "periodType": "Month", "termType": "TERMED"}},
                "subscribeToRatePlans": [{"productRatePlanId": "prp-premium-saas"}]}}]}],
        })
    };
    let first = client
        .create_order(&order("idem-1"), Call::once("key-1", "ev-1"))
        .await
        .unwrap();
    let replay = client
        .create_order(&order("idem-1"), Call::once("key-1", "ev-1"))
        .await
        .unwrap();
    assert_eq!(
        first["orderNumber"], replay["orderNumber"],
        "a replay, not a second order"
    );
    assert_eq!(
        state(&base).await["subscriptions"]
            .as_object()
            .unwrap()
            .len(),
        1
    );

    let e = client
        .create_order(&order("idem-2"), Call::once("key-1", "ev-2"))
        .await
        .unwrap_err();
    let v = judge(&e, "order idem-2");
    assert_eq!(v.class(), "permanent", "{v}");
    assert!(v.message().contains("422"), "{v}");

    // The first request with a key still running: 409, try again later.
    fault(
        &base,
        "/v1/orders",
        json!({"kind": "latency", "ms": 600}),
        Some(1),
    )
    .await;
    let slow = {
        let c = client.clone();
        let body = order("idem-3");
        tokio::spawn(async move { c.create_order(&body, Call::once("key-3", "ev-3")).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let e = client
        .create_order(&order("idem-3"), Call::once("key-3", "ev-3"))
        .await
        .unwrap_err();
    let v = judge(&e, "order idem-3");
    assert_eq!(v.class(), "transient", "{v}");
    assert!(v.message().contains("409"), "{v}");
    slow.await.unwrap().unwrap();
    running.shutdown().await;
}

#[tokio::test]
async fn outages_make_the_order_wait_with_zuora_s_hint_and_then_it_goes_through() {
    let (running, base) = mock(|_| {}).await;
    let s = sink(&base, SECRET);
    let r = record(&web_order(2));

    fault(
        &base,
        "/v1/",
        json!({"kind": "status", "status": 503, "retry_after": 7}),
        Some(1),
    )
    .await;
    let (m, hint) = unavailable(s.apply(&r).await);
    assert_eq!(hint, Some(Duration::from_secs(7)), "{m}");
    assert!(m.contains("503"), "{m}");

    fault(&base, "/v1/", json!({"kind": "reset"}), Some(1)).await;
    let (m, _) = unavailable(s.apply(&r).await);
    assert!(m.contains("did not complete"), "{m}");

    fault(
        &base,
        "/v1/",
        json!({"kind": "latency", "ms": 1500}),
        Some(1),
    )
    .await;
    let (m, _) = unavailable(s.apply(&r).await);
    assert!(m.contains("timed out"), "{m}");

    // Every path refuses (the token too): credentials refused, the order waits.
    fault(&base, "", json!({"kind": "status", "status": 401}), None).await;
    let (m, _) = unavailable(s.apply(&r).await);
    assert!(m.contains("credentials"), "{m}");
    assert!(!s.probe().await, "the probe sees Zuora refusing");
    clear_faults(&base).await;
    assert!(s.probe().await);

    assert_eq!(s.apply(&r).await.unwrap(), Applied::Created);
    assert_eq!(s.stats().unavailable(), 4);
    assert_eq!(s.stats().permanent(), 0);
    running.shutdown().await;
}

#[tokio::test]
async fn zuora_s_own_rate_limit_429_waits_for_its_reset() {
    let (running, base) = mock(|c| c.requests_per_minute = Some(3)).await;
    let s = sink(&base, SECRET);
    // Token + catalog + subscriptions lookup + order: the fourth /v1 call is over the limit.
    let r = s.apply(&record(&web_order(3))).await;
    let (m, hint) = unavailable(r);
    assert!(m.contains("429"), "{m}");
    let wait = hint.expect("Retry-After / RateLimit-Reset read");
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn refused_credentials_wait_and_are_never_printed() {
    let (running, base) = mock(|_| {}).await;
    let wrong = "wrong-secret-do-not-print";
    let s = sink(&base, wrong);
    let (m, _) = unavailable(s.apply(&record(&web_order(4))).await);
    assert!(m.contains("refuses the connector's credentials"), "{m}");
    assert!(!m.contains(wrong), "{m}");
    assert!(!s.probe().await);
    assert!(sink(&base, SECRET).probe().await);
    running.shutdown().await;
}

#[tokio::test]
async fn a_sku_zuora_does_not_sell_and_a_refused_order_are_permanent_with_the_reason() {
    let (running, base) = mock(|c| c.products.retain(|p| p.sku != "ci-minutes-1000")).await;
    let s = sink(&base, SECRET);
    let mut o = web_order(5);
    o.lines.push(OrderLine {
        sku: "ci-minutes-1000".into(),
        quantity: 1,
        unit_price: o.lines[0].unit_price.clone(),
    });
    let m = permanent(s.apply(&record(&o)).await);
    assert!(
        m.contains("ci-minutes-1000") && m.contains("catalog"),
        "{m}"
    );
    // Rule 11 before any call: a SKU the handbook's catalog does not know.
    let mut o = web_order(5);
    o.lines[0].sku = "platinum-saas-1y".into();
    let m = permanent(s.apply(&record(&o)).await);
    assert!(
        m.contains("platinum-saas-1y") && m.contains("rule 11"),
        "{m}"
    );
    // Zuora's documented 53100320 (termType) and a missing account, from the client.
    let client = config(&base, SECRET).client().unwrap();
    let e = client
        .create_order(
            &json!({"orderDate": "2026-01-01",
                    "newAccount": {"name": "x", "billToContact": {"firstName": "A", "lastName": "B"}},
                    "subscriptions": [{"orderActions": [{"type": "CreateSubscription", "createSubscription": {
                        "terms": {"initialTerm": {"termType": "FOREVER"}},
                        "subscribeToRatePlans": [{"productRatePlanId": "prp-premium-saas"}]}}]}]}),
            Call::default(),
        )
        .await
        .unwrap_err();
    let v = judge(&e, "order x");
    assert_eq!(v.class(), "permanent");
    assert!(
        v.message().contains("53100320") && v.message().contains("termType"),
        "{v}"
    );
    let e = client
        .create_order(
            &json!({"orderDate": "2026-01-01", "existingAccountNumber": "nobody",
                    "subscriptions": [{"orderActions": [{"type": "CreateSubscription"}]}]}),
            Call::default(),
        )
        .await
        .unwrap_err();
    let v = judge(&e, "order y");
    assert_eq!(v.class(), "permanent");
    assert!(v.message().contains("nobody"), "{v}");
    running.shutdown().await;
}

#[tokio::test]
async fn an_undecodable_record_is_permanent_and_zuora_s_own_events_are_skipped() {
    let (running, base) = mock(|_| {}).await;
    let s = sink(&base, SECRET);
    let mut r = record(&web_order(6));
    r.payload = Some(b"not avro".to_vec());
    let m = permanent(s.apply(&r).await);
    assert!(m.contains("orders[0]@7"), "{m}");
    let mut created = examples::subscription_created();
    created.envelope.source = SourceSystem::Zuora;
    assert_eq!(s.apply(&record(&created)).await.unwrap(), Applied::Skipped);
    let mut toggled = examples::auto_renew_changed();
    toggled.flag_owner = SourceSystem::Zuora;
    assert_eq!(s.apply(&record(&toggled)).await.unwrap(), Applied::Skipped);
    let mut cancelled = examples::subscription_cancelled();
    cancelled.envelope.source = SourceSystem::Zuora;
    assert_eq!(
        s.apply(&record(&cancelled)).await.unwrap(),
        Applied::Skipped
    );
    assert!(state(&base).await["subscriptions"]
        .as_object()
        .unwrap()
        .is_empty());
    running.shutdown().await;
}

fn toggle(subscription_id: &str, account_id: &str, on: bool) -> AutoRenewChanged {
    let mut t = examples::auto_renew_changed();
    t.envelope.event_id = uuid::Uuid::new_v4();
    t.subscription_id = subscription_id.into();
    t.account_id = account_id.into();
    t.flag_owner = SourceSystem::CustomersApp;
    t.auto_renew = on;
    t
}

fn cancellation(subscription_id: &str, account_id: &str) -> SubscriptionCancelled {
    let mut c = examples::subscription_cancelled();
    c.envelope.event_id = uuid::Uuid::new_v4();
    c.envelope.source = SourceSystem::CustomersApp;
    c.subscription_id = subscription_id.into();
    c.account_id = account_id.into();
    c.reason = CancellationReason::CustomerRequest;
    c.refund = None;
    c
}

#[tokio::test]
async fn auto_renew_and_cancellations_from_the_customers_app_are_followed_once() {
    let (running, base) = mock(|_| {}).await;
    let s = sink(&base, SECRET);
    let order = deal(7, "DE");
    assert_eq!(s.apply(&record(&order)).await.unwrap(), Applied::Created);
    let number = {
        let st = state(&base).await;
        let subs = subscriptions_of(&st, "001000000000000007-GMBH");
        assert_eq!(
            subs[0]["autoRenew"], false,
            "rule 5: a sales-assisted deal starts off"
        );
        subs[0]["subscriptionNumber"].as_str().unwrap().to_string()
    };
    // Keyed by the customers app's own id (not mirrored yet): found by L2fOrderId__c.
    let on = toggle(&order.order_id, &order.account_id, true);
    assert_eq!(s.apply(&record(&on)).await.unwrap(), Applied::AutoRenewSet);
    assert_eq!(s.apply(&record(&on)).await.unwrap(), Applied::AlreadyDone);
    let st = state(&base).await;
    assert_eq!(st["subscriptions"][&number]["autoRenew"], true);
    assert_eq!(
        st["subscriptions"][&number]["L2fCausationId__c"],
        on.envelope.event_id.to_string()
    );

    let c = cancellation(&number, &order.account_id);
    assert_eq!(s.apply(&record(&c)).await.unwrap(), Applied::Cancelled);
    let st = state(&base).await;
    let sub = &st["subscriptions"][&number];
    assert_eq!(sub["status"], "Cancelled");
    assert_eq!(
        sub["autoRenew"], false,
        "rule 5: a cancellation turns it off"
    );
    assert_eq!(sub["L2fCancellationReason__c"], "CUSTOMER_REQUEST");
    assert_eq!(
        sub["cancelledDate"], sub["termEndDate"],
        "at the end of the term"
    );
    assert_eq!(s.apply(&record(&c)).await.unwrap(), Applied::AlreadyDone);

    // A subscription Zuora does not have yet: retried, then redrivable.
    let e = s
        .apply(&record(&toggle("sub_999999", "cust_999999", true)))
        .await
        .unwrap_err();
    assert_eq!(e.class(), "transient", "{e}");
    assert!(e.message().contains("not in Zuora yet"), "{e}");
    running.shutdown().await;
}

#[tokio::test]
async fn a_renewal_renews_on_its_entity_and_moves_with_a_new_country() {
    let (running, base) = mock(|_| {}).await;
    let s = sink(&base, SECRET);
    // Same entity: RenewSubscription on the active subscription.
    let first = deal(8, "GB");
    assert_eq!(s.apply(&record(&first)).await.unwrap(), Applied::Created);
    let mut renewal = deal(8, "GB");
    renewal.order_type = OrderType::Renewal;
    renewal.order_id = "006-renewal-8".into();
    assert_eq!(s.apply(&record(&renewal)).await.unwrap(), Applied::Renewed);
    assert_eq!(
        s.apply(&record(&renewal)).await.unwrap(),
        Applied::AlreadyDone
    );
    let st = state(&base).await;
    let subs = subscriptions_of(&st, "001000000000000008-LTD");
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["L2fOrderId__c"], "006-renewal-8");

    // Billing country now DE (rule 3: GmbH): the Ltd subscription cancelled for the entity
    // change, a new GmbH account and subscription.
    let mut moved = deal(8, "DE");
    moved.order_type = OrderType::Renewal;
    moved.order_id = "006-renewal-8b".into();
    assert_eq!(
        s.apply(&record(&moved)).await.unwrap(),
        Applied::EntityChanged
    );
    assert_eq!(
        s.apply(&record(&moved)).await.unwrap(),
        Applied::AlreadyDone
    );
    let st = state(&base).await;
    let old = subscriptions_of(&st, "001000000000000008-LTD");
    assert_eq!(old[0]["status"], "Cancelled");
    assert_eq!(
        old[0]["L2fCancellationReason__c"],
        "ENTITY_CHANGE_AT_RENEWAL"
    );
    let new = subscriptions_of(&st, "001000000000000008-GMBH");
    assert_eq!(new.len(), 1);
    assert_eq!(new[0]["status"], "Active");
    assert_eq!(new[0]["L2fOrderId__c"], "006-renewal-8b");
    assert_eq!(
        st["accounts"]["001000000000000008-GMBH"]["entity"],
        "GITLAB_GMBH"
    );
    assert_eq!(st["accounts"]["001000000000000008-GMBH"]["batch"], "Batch2");

    // A renewal for an account with nothing active anywhere is not there yet.
    let mut orphan = deal(9, "DE");
    orphan.order_type = OrderType::Renewal;
    let e = s.apply(&record(&orphan)).await.unwrap_err();
    assert_eq!(e.class(), "transient", "{e}");
    running.shutdown().await;
}

#[tokio::test]
async fn an_entity_change_interrupted_after_the_cancel_resumes_with_the_create() {
    let (running, base) = mock(|_| {}).await;
    let s = sink(&base, SECRET);
    assert_eq!(
        s.apply(&record(&deal(10, "AU"))).await.unwrap(),
        Applied::Created
    );
    let mut moved = deal(10, "NL");
    moved.order_type = OrderType::Renewal;
    moved.order_id = "006-renewal-10".into();
    // The cancel goes through, the create that follows it is refused (only the second
    // order call of the test answers 503).
    fault(
        &base,
        "/v1/orders",
        json!({"kind": "latency", "ms": 0}),
        None,
    )
    .await;
    let rule = json!({"path": "/v1/orders", "action": {"kind": "status", "status": 503}, "nth": 2});
    let added = reqwest::Client::new()
        .post(format!("{base}/__admin/faults"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status().as_u16(), 201);
    unavailable(s.apply(&record(&moved)).await);
    let st = state(&base).await;
    assert_eq!(
        subscriptions_of(&st, "001000000000000010-PTY")[0]["status"],
        "Cancelled"
    );
    assert!(subscriptions_of(&st, "001000000000000010-BV").is_empty());
    // Redelivered: the old one is recognised as cancelled by this event, the create follows.
    assert_eq!(
        s.apply(&record(&moved)).await.unwrap(),
        Applied::EntityChanged
    );
    let st = state(&base).await;
    assert_eq!(subscriptions_of(&st, "001000000000000010-BV").len(), 1);
    assert_eq!(
        count_requests(&base, "/v1/orders").await,
        3,
        "the cancel, the refused create, the create — the cancel is not made again"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn the_catalog_is_read_once_across_its_pages() {
    let (running, base) = mock(|c| {
        let template = c.products[0].clone();
        for i in 0..45 {
            let mut p = template.clone();
            p.sku = format!("extra-{i}");
            p.rate_plans[0].id = format!("prp-extra-{i}");
            c.products.push(p);
        }
    })
    .await;
    fault(
        &base,
        "/v1/catalog/products",
        json!({"kind": "latency", "ms": 0}),
        None,
    )
    .await;
    let client = config(&base, SECRET).client().unwrap();
    let last = client.catalog_plan("extra-44").await.unwrap().unwrap();
    assert_eq!(last.product_rate_plan_id, "prp-extra-44");
    let premium = client
        .catalog_plan("premium-saas-1y")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(premium.unit_price, 29.0);
    assert!(premium.charge_id.is_some());
    let by_plan = client
        .catalog_rate_plan("prp-ci-minutes")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_plan.sku, "ci-minutes-1000");
    assert_eq!(
        count_requests(&base, "/v1/catalog/products").await,
        2,
        "two pages, once"
    );
    // A SKU Zuora does not have reads the catalog again at most once a minute.
    assert!(client.catalog_plan("nowhere").await.unwrap().is_none());
    assert!(client.catalog_plan("nowhere").await.unwrap().is_none());
    assert_eq!(count_requests(&base, "/v1/catalog/products").await, 2);
    running.shutdown().await;
}

#[tokio::test]
async fn the_callout_history_is_read_across_its_pages_failed_notifications_included() {
    // Callouts to a port nobody listens on: every notification fails and stays in history.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/callouts/zuora", dead.local_addr().unwrap());
    drop(dead);
    let (running, base) = mock(|c| {
        c.callout_url = Some(url);
        c.callout_attempts = 1;
        c.callout_timeout_ms = 200;
    })
    .await;
    let s = sink(&base, SECRET);
    let start = (Utc::now() - chrono::Duration::seconds(5))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    for n in 0..42 {
        assert_eq!(
            s.apply(&record(&web_order(100 + n))).await.unwrap(),
            Applied::Created
        );
    }
    let client = config(&base, SECRET).client().unwrap();
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = client.callout_history(&start).await.unwrap();
        if rows.len() >= 42 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows.len(), 42, "40 on the first page, 2 on the next");
    assert!(rows
        .iter()
        .all(|r| r["notification"] == "SubscriptionCreated"));
    assert!(
        rows.iter().all(|r| r["responseCode"] == 0),
        "never delivered"
    );
    let ids: std::collections::HashSet<_> =
        rows.iter().map(|r| r["notificationId"].clone()).collect();
    assert_eq!(ids.len(), 42);
    assert!(rows[0]["eventContext"]["subscriptionNumber"].is_string());
    running.shutdown().await;
}

#[tokio::test]
async fn a_subscription_not_found_is_an_answer_and_another_refusal_an_error() {
    let (running, base) = mock(|_| {}).await;
    let client = config(&base, SECRET).client().unwrap();
    assert!(client
        .subscription("A-S99999999", Call::default())
        .await
        .unwrap()
        .is_none());
    assert!(client
        .account("nobody-INC", Call::default())
        .await
        .unwrap()
        .is_none());
    assert!(client
        .account_subscriptions("nobody-INC", Call::default())
        .await
        .unwrap()
        .is_none());
    // The mock does not serve versions: none, rather than an error.
    assert!(client
        .subscription_version("A-S99999999", 1, Call::default())
        .await
        .unwrap()
        .is_none());
    // A link to another host is never followed with the token.
    let e = client
        .call(
            reqwest::Method::GET,
            "http://169.254.169.254/v1/x",
            None,
            Call::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Api { .. }), "{e}");
    running.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_the_order_goes_through() {
    let (running, base) = mock(|_| {}).await;
    let s = sink(&base, SECRET);
    s.handle(&record(&web_order(901))).await.unwrap();
    let expired = reqwest::Client::new()
        .post(format!("{base}/__admin/tokens/expire"))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status().as_u16(), 204);
    s.handle(&record(&web_order(902)))
        .await
        .expect("a new token fetched after Zuora refused the old one");
    running.shutdown().await;
}

fn declined(subscription_id: &str, account_id: &str, on_auto_renewal: bool) -> PaymentDeclined {
    let mut p = examples::payment_declined();
    p.envelope.event_id = uuid::Uuid::new_v4();
    p.envelope.occurred_at = Utc::now();
    p.subscription_id = subscription_id.into();
    p.account_id = account_id.into();
    p.on_auto_renewal = on_auto_renewal;
    p
}

/// The types of Zuora's events about one subscription, in order.
async fn callout_types(base: &str, number: &str) -> Vec<String> {
    let v: Value = reqwest::get(format!("{base}/__admin/events"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["data"]["subscription"]["subscriptionNumber"] == number
                || e["data"]["subscriptionNumber"] == number
        })
        .map(|e| e["type"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Rule 10: "card declined on a SaaS auto-renewal" cancels — auto-renew off and the
/// subscription cancelled from the first day of the unpaid term, in one order, once however
/// often the event comes; a self-managed subscription's decline cancels nothing.
#[tokio::test]
async fn a_card_declined_on_a_saas_auto_renewal_cancels_once_and_a_self_managed_one_is_kept() {
    let (running, base) = mock(|_| {}).await;
    let s = sink(&base, SECRET);
    let order = web_order(21);
    assert_eq!(s.apply(&record(&order)).await.unwrap(), Applied::Created);
    let number = {
        let st = state(&base).await;
        subscriptions_of(&st, "cust_000021-INC")[0]["subscriptionNumber"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let d = declined(&number, &order.account_id, true);
    assert_eq!(s.apply(&record(&d)).await.unwrap(), Applied::Cancelled);
    let st = state(&base).await;
    let sub = &st["subscriptions"][&number];
    assert_eq!(sub["status"], "Cancelled", "{sub}");
    assert_eq!(
        sub["autoRenew"], false,
        "rule 5: a cancellation turns it off"
    );
    assert_eq!(
        sub["L2fCancellationReason__c"],
        "CARD_DECLINED_ON_AUTO_RENEWAL"
    );
    assert_eq!(sub["L2fCausationId__c"], d.envelope.event_id.to_string());
    assert_eq!(
        sub["cancelledDate"], sub["termStartDate"],
        "from the first day of the unpaid term"
    );
    let kinds = callout_types(&base, &number).await;
    let tail: Vec<&str> = kinds
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        ["AutoRenewChanged", "SubscriptionCancelled"],
        "{kinds:?}"
    );
    // Redelivered (and a second decline of the same subscription): nothing more.
    assert_eq!(s.apply(&record(&d)).await.unwrap(), Applied::AlreadyDone);
    let again = declined(&number, &order.account_id, true);
    assert_eq!(
        s.apply(&record(&again)).await.unwrap(),
        Applied::AlreadyDone
    );
    assert_eq!(callout_types(&base, &number).await.len(), kinds.len());
    assert_eq!(s.stats().cancelled(), 1);

    // Self-managed: the handbook cancels only SaaS auto-renewals; the decline keeps it.
    let mut sm = web_order(22);
    sm.deployment = Deployment::SelfManaged;
    sm.lines[0].sku = "premium-self-managed-1y".into();
    assert_eq!(s.apply(&record(&sm)).await.unwrap(), Applied::Created);
    let st = state(&base).await;
    let sm_number = subscriptions_of(&st, "cust_000022-INC")[0]["subscriptionNumber"]
        .as_str()
        .unwrap()
        .to_string();
    for on_auto_renewal in [false, true] {
        let d = declined(&sm_number, &sm.account_id, on_auto_renewal);
        assert_eq!(s.apply(&record(&d)).await.unwrap(), Applied::Kept);
    }
    // A SaaS payment that was not an auto-renewal is kept too.
    let saas = web_order(23);
    assert_eq!(s.apply(&record(&saas)).await.unwrap(), Applied::Created);
    let st = state(&base).await;
    let saas_number = subscriptions_of(&st, "cust_000023-INC")[0]["subscriptionNumber"]
        .as_str()
        .unwrap()
        .to_string();
    let d = declined(&saas_number, &saas.account_id, false);
    assert_eq!(s.apply(&record(&d)).await.unwrap(), Applied::Kept);
    let st = state(&base).await;
    for n in [&sm_number, &saas_number] {
        assert_eq!(st["subscriptions"][n]["status"], "Active");
        assert_eq!(st["subscriptions"][n]["autoRenew"], true);
    }
    assert_eq!(s.stats().kept(), 3);
    // Not in Zuora yet: retried.
    let e = s
        .apply(&record(&declined("A-S99999999", "cust_999999", true)))
        .await
        .unwrap_err();
    assert_eq!(e.class(), "transient", "{e}");
    running.shutdown().await;
}

#[tokio::test]
async fn a_profile_changed_in_zuora_becomes_communication_profile_changed_on_the_licenses_topic() {
    use l2f_bus::source::Source;
    use l2f_connector_zuora::callout::{self, CalloutSettings};
    use l2f_connector_zuora::{SourceOptions, ZuoraSource};
    // Callouts to a port nobody listens on: the source finds the notification in the history.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/callouts/zuora", dead.local_addr().unwrap());
    drop(dead);
    let (running, base) = mock(|c| {
        c.callout_url = Some(url);
        c.callout_attempts = 1;
        c.callout_timeout_ms = 200;
    })
    .await;
    assert_eq!(
        sink(&base, SECRET)
            .apply(&record(&web_order(300)))
            .await
            .unwrap(),
        Applied::Created
    );
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let put = http
        .put(format!("{base}/v1/accounts/cust_000300-INC"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"communicationProfileId": "Silent"}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());

    let cfg = config(&base, SECRET);
    let (_endpoint, inbox) = callout::channel(
        CalloutSettings {
            username: "u".into(),
            password: l2f_secrets::Secret::new("p"),
            max_body: 4096,
            answer_timeout: Duration::from_secs(1),
        },
        Arc::new(|| true),
    );
    let mut source = ZuoraSource::new(
        Arc::new(cfg.client().unwrap()),
        Arc::new(Codec::new()),
        SourceOptions {
            topic: "subscriptions".into(),
            licenses_topic: "licenses".into(),
            dead_letter_topic: "dead-letters".into(),
            name: "zuora".into(),
            tenant: "t".into(),
            history_every: Duration::ZERO,
            history_overlap: Duration::from_secs(300),
            window: 100,
            idle_wait: Duration::from_millis(10),
            profiles: cfg.profiles(),
            clock: l2f_bus::clock::wall(),
        },
        inbox,
    );
    let mut found = Vec::new();
    for _ in 0..50 {
        let polled = source.poll(None).await.unwrap();
        found = polled
            .records
            .into_iter()
            .filter(|r| r.topic == "licenses")
            .collect();
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found.len(), 1, "one profile change");
    let e: CommunicationProfileChanged = Codec::new()
        .decode(found[0].payload.as_deref().unwrap())
        .unwrap();
    assert_eq!(e.account_id, "cust_000300");
    assert_eq!(e.communication_profile, CommunicationProfile::Silent);
    assert_eq!(found[0].key.as_deref(), Some(&b"cust_000300"[..]));
    running.shutdown().await;
}
