//! The app readers over real HTTP against the mocks (no Kafka): a rate-limited Zuora is
//! waited out as it asks, and the customers app's listing is read to its last page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use l2f_connector_customers::CustomersConfig;
use l2f_connector_zuora::client::Call;
use l2f_connector_zuora::mapping::account_number;
use l2f_connector_zuora::{ZuoraConfig, ZuoraSink};
use l2f_contracts::events::*;
use l2f_contracts::record::AnyEvent;
use l2f_contracts::{examples, Codec};
use l2f_mocks::server::{self, MocksConfig, Running};
use l2f_reconcile::apps::{read_customers, read_zuora};
use l2f_reconcile::{Fold, Origin, ZuoraApp};
use l2f_rules::Rules;
use l2f_secrets::SecretRef;
use serde_json::json;

async fn mocks(apps: &[&str]) -> Running {
    let mut mc = MocksConfig::default();
    mc.only(&apps.iter().map(|a| a.to_string()).collect::<Vec<_>>())
        .unwrap();
    mc.without_https();
    server::start(&mc).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_zuora_is_waited_out_as_long_as_it_asks() {
    let running = mocks(&["zuora"]).await;
    let base = running.endpoint("zuora").unwrap().http.clone();
    let cfg = ZuoraConfig::new(
        &base,
        "6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01",
        SecretRef::Inline("l2f-zuora-secret".into()),
    );
    let client = Arc::new(cfg.client().unwrap());
    let codec = Arc::new(Codec::new());
    // One subscription, as the sink creates it.
    let mut o = examples::order_placed();
    o.sales_channel = SalesChannel::WebStore;
    o.reseller = None;
    o.deployment = Deployment::Saas;
    o.order_type = OrderType::New;
    o.account_id = "cust_rl".into();
    o.order_id = "web-rl".into();
    o.lines.truncate(1);
    o.lines[0].sku = "premium-saas-1y".into();
    let out = l2f_connector_kit::record::event_record(&codec, "orders", &o, None).unwrap();
    let record = l2f_bus::Record {
        topic: out.topic,
        partition: 0,
        offset: 0,
        key: out.key,
        payload: out.payload,
        headers: out.headers,
        timestamp_ms: None,
    };
    ZuoraSink::new(
        client.clone(),
        codec,
        Arc::new(Rules::embedded()),
        cfg.profiles(),
    )
    .apply(&record)
    .await
    .unwrap();
    let number = account_number("cust_rl", ZuoraEntity::GitlabInc);
    let subs = client
        .account_subscriptions(&number, Call::default())
        .await
        .unwrap()
        .unwrap();
    let sub_number = subs[0]["subscriptionNumber"].as_str().unwrap().to_string();
    let mut created = examples::subscription_created();
    created.subscription_id = sub_number.clone();
    created.account_id = "cust_rl".into();
    created.zuora_entity = ZuoraEntity::GitlabInc;
    let ev = AnyEvent::SubscriptionCreated(created);
    let mut fold = Fold::new();
    fold.apply(
        &Origin {
            topic: "subscriptions".into(),
            partition: 0,
            offset: 0,
            event_id: ev.envelope().event_id,
            event_type: ev.name().into(),
            occurred_at: ev.envelope().occurred_at,
            source: ev.envelope().source,
        },
        &ev,
    );
    let state = fold.finish();

    let rule = json!({"path": "/v1/subscriptions/accounts/", "action": {"kind": "status", "status": 429, "retry_after": 1}, "times": 2});
    let status = reqwest::Client::new()
        .post(format!("{base}/__admin/faults"))
        .json(&rule)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 201);
    let app = ZuoraApp {
        client,
        profiles: cfg.profiles(),
        rules: Arc::new(Rules::embedded()),
    };
    let started = Instant::now();
    let held = read_zuora(&app, &state).await.expect("waited out");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "two 429s of Retry-After: 1 waited: {:?}",
        started.elapsed()
    );
    let subs = held.subscriptions.unwrap();
    assert!(subs.records.contains_key(&sub_number), "{subs:?}");
    assert_eq!(subs.records[&sub_number]["account"], json!(number));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customers_apps_mirror_is_read_to_its_last_page() {
    let running = mocks(&["customers"]).await;
    let base = running.endpoint("customers").unwrap().http.clone();
    let client = CustomersConfig::new(&base, SecretRef::Inline("l2f-customers-token".into()))
        .client()
        .unwrap();
    let account = client
        .call(
            reqwest::Method::POST,
            "/api/v1/accounts",
            Some(&json!({"email": "many@example.com", "name": "Many", "country": "FR"})),
        )
        .await
        .unwrap();
    let account = account["id"].as_str().unwrap();
    let n = 105;
    for i in 0..n {
        client
            .mirror_subscription(
                &format!("A-S{i:08}"),
                &json!({"account_id": account, "order_id": format!("o-{i}"), "deployment": "saas",
                        "plan_sku": "premium-saas-1y", "seats": i + 1, "term_start": "2026-01-01",
                        "term_end": "2026-12-31", "auto_renew": true, "status": "active"}),
            )
            .await
            .unwrap();
    }
    let held = read_customers(&client).await.unwrap();
    let subs = held.subscriptions.unwrap();
    assert_eq!(subs.records.len(), n, "past the first page of 100");
    assert_eq!(subs.records["A-S00000104"]["seats"], json!(105));
    running.shutdown().await;
}
