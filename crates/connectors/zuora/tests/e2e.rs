//! The Zuora connector end to end: real Kafka (`KAFKA_BOOTSTRAP`), the connector started as
//! `l2f run` starts it (its `Connector::start` in a kit `Context`: the sink's consumer group,
//! the exactly-once source loop and the callout endpoint), and the Zuora mock over HTTP on
//! loopback, sending its callout notifications — with basic auth after a 401 challenge,
//! retries and a history of every attempt — to the hub's endpoint.
//!
//! Flows of issue 7, Zuora's part: b (web-store SaaS purchase), d (sales-assisted deals by
//! country and party, then auto-renew turned on), f (cancellation on request), h (entity
//! change at renewal), i (SKUs rule 11 refuses); and the source's bars: a callout delivered
//! twice is one event, a missed callout is caught by the history poll, a caller without the
//! credentials or with a bad body gets 401/400/413 and produces nothing, a standby replica
//! answers 503; issue 8's flow e, Zuora's part, on the simulated clock (a renewal at term end,
//! a declined card cancelled, a term that ends); and Zuora down for ~30 s ends with every order delivered, none dead-lettered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use l2f_bus::config::{ConsumerConfig, RetryConfig, SecretRef, SourcesConfig};
use l2f_bus::dlq::DeadLetter;
use l2f_bus::reader::read_all;
use l2f_bus::record::OutRecord;
use l2f_bus::{CancellationToken, LoopStats, Producer};
use l2f_connector_kit::record::event_record;
use l2f_connector_kit::{Configured, Connector, Context, KitError, Pipelines};
use l2f_connector_zuora::{SinkStats, SourceCounters, ZuoraConfig, ZuoraConnector};
use l2f_contracts::events::*;
use l2f_contracts::record::{event_id, AnyEvent};
use l2f_contracts::{examples, Codec, CountryCode};
use l2f_e2e::{client, create_topic, produce, require_kafka, unique, wait_until};
use l2f_mocks::server::{self, MocksConfig, Running};
use l2f_rules::Rules;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

const CLIENT_ID: &str = "6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01";
const SECRET: &str = "l2f-zuora-secret";
const CALLOUT_USER: &str = "zuora-callouts";
const CALLOUT_PASSWORD: &str = "l2f-callout-secret";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One running connector against one mock, with its own topics.
struct Hub {
    b: String,
    mocks: Running,
    base: String,
    orders: String,
    subscriptions: String,
    dead_letters: String,
    offsets: String,
    group: String,
    source: String,
    callout_url: String,
    codec: Arc<Codec>,
    rules: Arc<Rules>,
    instance: Instance,
}

/// One instance of the connector (a replica).
struct Instance {
    shutdown: CancellationToken,
    pipelines: Pipelines,
    join: JoinHandle<Result<(), KitError>>,
    sink: SinkStats,
    counters: SourceCounters,
    callout_url: String,
}

impl Hub {
    async fn start(
        b: &str,
        rules: Rules,
        tweak: impl FnOnce(&mut l2f_mocks::zuora::Config),
    ) -> Hub {
        Hub::start_with(b, rules, |mc| tweak(&mut mc.zuora)).await
    }

    /// [`Hub::start`] with the whole mocks configuration to tweak (its clock).
    async fn start_with(b: &str, rules: Rules, tweak: impl FnOnce(&mut MocksConfig)) -> Hub {
        let port = free_port();
        let callout_url = format!("http://127.0.0.1:{port}/callouts/zuora");
        let mut mc = MocksConfig::default();
        mc.only(&["zuora".to_string()]).unwrap();
        mc.without_https();
        mc.zuora.callout_url = Some(callout_url.clone());
        mc.zuora.callout_username = Some(CALLOUT_USER.into());
        mc.zuora.callout_password = Some(CALLOUT_PASSWORD.into());
        mc.zuora.callout_retry_base_ms = 200;
        mc.zuora.callout_timeout_ms = 9_000;
        tweak(&mut mc);
        let mocks = server::start(&mc).await.unwrap();
        let base = mocks.endpoint("zuora").unwrap().http.clone();
        let (orders, subscriptions) = (unique("orders"), unique("subscriptions"));
        let (dead_letters, offsets) = (unique("dead-letters"), unique("source-offsets"));
        create_topic(b, &orders, 3).await;
        create_topic(b, &subscriptions, 3).await;
        create_topic(b, &dead_letters, 1).await;
        create_topic(b, &offsets, 1).await;
        let mut hub = Hub {
            b: b.to_string(),
            mocks,
            base,
            orders,
            subscriptions,
            dead_letters,
            offsets,
            group: unique("g-zuora"),
            source: unique("zuora-subscriptions"),
            callout_url: callout_url.clone(),
            codec: Arc::new(Codec::new()),
            rules: Arc::new(rules),
            instance: Instance::placeholder(),
        };
        hub.instance = hub.replica(port).await;
        assert!(
            wait_until(Duration::from_secs(30), || hub
                .instance
                .pipelines
                .source(&hub.source)
                .is_some_and(|s| s.active()))
            .await,
            "the source never became active"
        );
        hub
    }

    fn config(&self, port: u16) -> ZuoraConfig {
        let mut cfg = ZuoraConfig::new(&self.base, CLIENT_ID, SecretRef::Inline(SECRET.into()));
        cfg.request_timeout = Duration::from_secs(3);
        cfg.orders_topic = self.orders.clone();
        cfg.subscriptions_topic = self.subscriptions.clone();
        cfg.group = self.group.clone();
        cfg.source = self.source.clone();
        cfg.callout_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
        cfg.callout_username = Some(CALLOUT_USER.into());
        cfg.callout_password = Some(SecretRef::Inline(CALLOUT_PASSWORD.into()));
        cfg.history_poll_interval = Duration::from_secs(2);
        cfg.max_body_bytes = 4096;
        cfg
    }

    /// Starts a replica of the connector with its callout endpoint on `port`.
    async fn replica(&self, port: u16) -> Instance {
        let connector = ZuoraConnector::build(self.config(port)).unwrap();
        let (sink, counters) = (connector.sink_stats(), connector.source_counters());
        let kafka = client(&self.b);
        let shutdown = CancellationToken::new();
        let pipelines = Pipelines::default();
        let ctx = Context {
            kafka: kafka.clone(),
            consumer: ConsumerConfig {
                commit_interval: Duration::from_millis(200),
                session_timeout: Duration::from_secs(6),
                ..ConsumerConfig::default()
            },
            retry: RetryConfig {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(1000),
                ..RetryConfig::default()
            },
            dead_letter_topic: self.dead_letters.clone(),
            sources: SourcesConfig {
                offsets_topic: self.offsets.clone(),
                poll_interval: Duration::from_millis(200),
                session_timeout: Duration::from_secs(6),
            },
            producer: Producer::new(&kafka).unwrap(),
            codec: self.codec.clone(),
            rules: self.rules.clone(),
            shutdown: shutdown.clone(),
            pipelines: pipelines.clone(),
            clock: l2f_bus::clock::wall(),
        };
        let join = tokio::spawn(Box::new(connector).start(ctx));
        Instance {
            shutdown,
            pipelines,
            join,
            sink,
            counters,
            callout_url: format!("http://127.0.0.1:{port}/callouts/zuora"),
        }
    }

    /// Stops the running instance and starts a new one on the same callout port, as a
    /// restarted process would; waits until its source is active.
    async fn restart(&mut self) {
        let port: u16 = self
            .callout_url
            .rsplit(':')
            .next()
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap();
        let old = std::mem::replace(&mut self.instance, Instance::placeholder());
        old.stop().await;
        self.instance = self.replica(port).await;
        let (pipelines, source) = (self.instance.pipelines.clone(), self.source.clone());
        assert!(
            wait_until(Duration::from_secs(30), || pipelines
                .source(&source)
                .is_some_and(|s| s.active()))
            .await,
            "the restarted source never became active"
        );
    }

    async fn sink_loop(&self) -> LoopStats {
        self.instance
            .pipelines
            .wait_sink(&self.group, Duration::from_secs(10))
            .await
            .expect("the sink started")
    }

    fn record<E: l2f_contracts::record::Keyed>(&self, topic: &str, e: &E) -> OutRecord {
        event_record(&self.codec, topic, e, None).unwrap()
    }

    async fn order(&self, o: &OrderPlaced) {
        produce(&self.b, &[self.record(&self.orders, o)]).await;
    }

    async fn subscription_event<E: l2f_contracts::record::Keyed>(&self, e: &E) {
        produce(&self.b, &[self.record(&self.subscriptions, e)]).await;
    }

    /// Every event on the subscriptions topic (read_committed), in partition order.
    fn events(&self) -> Vec<AnyEvent> {
        read_all(
            &client(&self.b),
            &self.subscriptions,
            Duration::from_secs(15),
        )
        .unwrap()
        .iter()
        .map(|r| AnyEvent::decode(&self.codec, r.payload.as_deref().unwrap()).unwrap())
        .collect()
    }

    /// Waits until `pick` finds `n` events; answers them.
    async fn wait_events<T>(
        &self,
        n: usize,
        limit: Duration,
        pick: impl Fn(&AnyEvent) -> Option<T>,
    ) -> Vec<T> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let found: Vec<T> = self.events().iter().filter_map(&pick).collect();
            if found.len() >= n || tokio::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn dead_letters(&self) -> Vec<DeadLetter> {
        read_all(
            &client(&self.b),
            &self.dead_letters,
            Duration::from_secs(15),
        )
        .unwrap()
        .into_iter()
        .filter_map(DeadLetter::parse)
        .collect()
    }

    async fn state(&self) -> Value {
        reqwest::get(format!("{}/__admin/state", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The mock's subscriptions of Zuora account `account`.
    async fn subscriptions_of(&self, account: &str) -> Vec<Value> {
        let st = self.state().await;
        st["subscriptions"]
            .as_object()
            .unwrap()
            .values()
            .filter(|s| s["accountNumber"] == account)
            .cloned()
            .collect()
    }

    async fn wait_subscriptions(&self, account: &str, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let subs = self.subscriptions_of(account).await;
            if subs.len() >= n {
                return subs;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.subscriptions_of(account).await
    }

    async fn fault(&self, path: &str, action: Value) {
        let status = reqwest::Client::new()
            .post(format!("{}/__admin/faults", self.base))
            .json(&json!({"path": path, "action": action}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 201);
    }

    async fn clear_faults(&self) {
        reqwest::Client::new()
            .delete(format!("{}/__admin/faults", self.base))
            .send()
            .await
            .unwrap();
    }

    async fn stop(self) {
        self.instance.stop().await;
        self.mocks.shutdown().await;
    }
}

impl Instance {
    fn placeholder() -> Instance {
        Instance {
            shutdown: CancellationToken::new(),
            pipelines: Pipelines::default(),
            join: tokio::spawn(async { Ok(()) }),
            sink: SinkStats::default(),
            counters: SourceCounters::default(),
            callout_url: String::new(),
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.join.await.unwrap().unwrap();
    }
}

fn country(c: &str) -> CountryCode {
    CountryCode::from_code(c).unwrap()
}

/// A web-store SaaS purchase of Premium by `cust_<n>`, as the customers app emits it.
fn web_order(n: u32) -> OrderPlaced {
    let mut o = examples::order_placed();
    o.envelope.event_id = uuid::Uuid::new_v4();
    o.envelope.source = SourceSystem::CustomersApp;
    o.envelope.occurred_at = Utc::now();
    o.envelope.correlation_id = event_id("l2f", "correlation", &format!("account:cust_{n:06}"));
    o.envelope.causation_id = None;
    o.sales_channel = SalesChannel::WebStore;
    o.reseller = None;
    o.deployment = Deployment::Saas;
    o.order_type = OrderType::New;
    o.bill_to_country = country("US");
    o.account_id = format!("cust_{n:06}");
    o.order_id = format!("sub_{n:06}");
    o.sold_to_email = format!("buyer{n}@example.com");
    o.auto_renew = true;
    o.lines.truncate(1);
    o.lines[0].sku = "premium-saas-1y".into();
    o.lines[0].quantity = 5;
    o
}

/// The three parties of a sales-assisted deal.
#[derive(Debug, Clone, Copy)]
enum Party {
    Direct,
    Unauthorized,
    Authorized,
}

/// A closed-won deal of Salesforce account `001…<n>` billed to `c`, as the Salesforce source
/// emits it (auto-renew off, rule 5).
fn deal(n: u32, c: &str, party: Party) -> OrderPlaced {
    let mut o = web_order(n);
    o.envelope.source = SourceSystem::Salesforce;
    o.account_id = format!("001{n:015}");
    o.order_id = format!("006{n:015}");
    o.envelope.correlation_id =
        event_id("l2f", "correlation", &format!("account:{}", o.account_id));
    o.bill_to_country = country(c);
    o.deployment = Deployment::SelfManaged;
    o.lines[0].sku = "ultimate-self-managed-1y".into();
    o.lines[0].quantity = 25;
    o.auto_renew = false;
    (o.sales_channel, o.reseller) = match party {
        Party::Direct => (SalesChannel::SalesAssisted, None),
        Party::Unauthorized => (
            SalesChannel::Reseller,
            Some(Reseller {
                name: "Channel Partner".into(),
                authorized: false,
            }),
        ),
        Party::Authorized => (
            SalesChannel::Reseller,
            Some(Reseller {
                name: "Authorized Partner".into(),
                authorized: true,
            }),
        ),
    };
    o
}

fn created(e: &AnyEvent) -> Option<SubscriptionCreated> {
    match e {
        AnyEvent::SubscriptionCreated(c) => Some(c.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flow_b_a_web_store_saas_order_becomes_an_inc_subscription_and_comes_back_once() {
    let b = require_kafka!();
    let hub = Hub::start(&b, Rules::embedded(), |_| {}).await;
    let order = web_order(1);
    hub.order(&order).await;
    let subs = hub.wait_subscriptions("cust_000001-INC", 1).await;
    assert_eq!(subs.len(), 1, "one subscription");
    let st = hub.state().await;
    let account = &st["accounts"]["cust_000001-INC"];
    assert_eq!(account["entity"], "GITLAB_INC");
    assert_eq!(account["batch"], "Batch1");
    assert_eq!(account["communicationProfileId"], "Default");
    assert_eq!(subs[0]["autoRenew"], true);
    let number = subs[0]["subscriptionNumber"].as_str().unwrap().to_string();

    let events = hub.wait_events(1, Duration::from_secs(30), created).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.subscription_id, number);
    assert_eq!(e.account_id, "cust_000001");
    assert_eq!(e.order_id, "sub_000001");
    assert_eq!(e.zuora_entity, ZuoraEntity::GitlabInc);
    assert_eq!(e.billing_batch, BillingBatch::Batch1);
    assert_eq!(e.communication_profile, CommunicationProfile::Default);
    assert_eq!(e.deployment, Deployment::Saas);
    assert_eq!(e.plan_sku, "premium-saas-1y");
    assert_eq!(e.seats, 5);
    assert!(e.auto_renew);
    assert_eq!(e.bill_to_country.as_str(), "US");
    assert_eq!(e.envelope.source, SourceSystem::Zuora);
    assert_eq!(e.envelope.correlation_id, order.envelope.correlation_id);
    assert_eq!(e.envelope.causation_id, Some(order.envelope.event_id));

    // Zuora delivers the same notification again (a retry): answered, no second event.
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/oauth/token", hub.base))
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
    let mut history = Value::Null;
    for _ in 0..50 {
        history = http
            .get(format!(
                "{}/v1/notification-history/callout?failedOnly=false",
                hub.base
            ))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if history["calloutHistories"][0]["responseCode"] == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = &history["calloutHistories"][0];
    assert_eq!(
        row["responseCode"], 200,
        "answered 200 after the commit: {row}"
    );
    let again = http
        .post(&hub.callout_url)
        .basic_auth(CALLOUT_USER, Some(CALLOUT_PASSWORD))
        .header(
            "Zuora-Notification-Id",
            row["notificationId"].as_str().unwrap(),
        )
        .json(&row["eventContext"])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
    // And a fresh notification delivered twice at once (a retry racing the first try).
    let toggle = json!({"eventType": "AutoRenewChanged", "subscriptionNumber": number,
                        "accountNumber": "cust_000001-INC", "orderNumber": null});
    let send = |http: reqwest::Client, url: String, body: Value| async move {
        http.post(url)
            .basic_auth(CALLOUT_USER, Some(CALLOUT_PASSWORD))
            .header("Zuora-Notification-Id", "retried-twice-1")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let (a, b2) = tokio::join!(
        send(http.clone(), hub.callout_url.clone(), toggle.clone()),
        send(http.clone(), hub.callout_url.clone(), toggle.clone())
    );
    assert_eq!((a, b2), (200, 200));
    assert_eq!(
        send(http.clone(), hub.callout_url.clone(), toggle).await,
        200
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events = hub.events();
    assert_eq!(events.iter().filter_map(created).count(), 1, "{events:?}");
    let toggles: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, AnyEvent::AutoRenewChanged(_)))
        .collect();
    assert_eq!(
        toggles.len(),
        1,
        "one event for a notification delivered three times"
    );
    // The sink read the source's events back and skipped them: no echo.
    assert!(hub.instance.sink.skipped() >= 1);
    assert_eq!(hub.subscriptions_of("cust_000001-INC").await.len(), 1);
    assert!(hub.dead_letters().is_empty());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flow_d_deals_by_country_and_party_get_the_rule_3_entity_and_follow_auto_renew() {
    let b = require_kafka!();
    let hub = Hub::start(&b, Rules::embedded(), |_| {}).await;
    use ZuoraEntity::*;
    // (country, direct, unauthorized reseller, authorized reseller) — handbook rule 3.
    let table = [
        ("NL", GitlabBv, GitlabBv, GitlabBv),
        ("DE", GitlabGmbh, GitlabGmbh, GitlabGmbh),
        ("GB", GitlabLtd, GitlabLtd, GitlabLtd),
        ("AU", GitlabPtyLtd, GitlabPtyLtd, GitlabPtyLtd),
        ("US", GitlabInc, GitlabInc, GitlabInc),
        ("JP", GitlabInc, GitlabInc, GitlabBv),
    ];
    let mut expected = BTreeMap::new();
    let mut n = 100;
    for (c, direct, unauthorized, authorized) in table {
        for (party, entity, batch) in [
            (Party::Direct, direct, BillingBatch::Batch2),
            (Party::Unauthorized, unauthorized, BillingBatch::Batch4),
            (Party::Authorized, authorized, BillingBatch::Batch4),
        ] {
            n += 1;
            let d = deal(n, c, party);
            expected.insert(d.account_id.clone(), (entity, batch, d.clone()));
        }
    }
    let records: Vec<OutRecord> = expected
        .values()
        .map(|(_, _, d)| hub.record(&hub.orders, d))
        .collect();
    produce(&hub.b, &records).await;
    let events = hub.wait_events(18, Duration::from_secs(60), created).await;
    assert_eq!(events.len(), 18);
    let st = hub.state().await;
    for e in &events {
        let (entity, batch, d) = &expected[&e.account_id];
        assert_eq!(
            e.zuora_entity,
            *entity,
            "{:?} in {}",
            d.reseller,
            d.bill_to_country.as_str()
        );
        assert_eq!(e.billing_batch, *batch, "{}", e.account_id);
        assert!(!e.auto_renew, "rule 5: sales-assisted deals start off");
        assert_eq!(e.deployment, Deployment::SelfManaged);
        assert_eq!(e.order_id, d.order_id);
        let number = l2f_connector_zuora::mapping::account_number(&e.account_id, *entity);
        let account = &st["accounts"][&number];
        assert_eq!(
            account["batch"],
            l2f_connector_zuora::mapping::batch_name(*batch)
        );
        assert_eq!(
            account["crmId"],
            e.account_id.as_str(),
            "the Salesforce account"
        );
        assert_eq!(st["subscriptions"][&e.subscription_id]["autoRenew"], false);
    }
    // The customers turn auto-renew on in the customers app: Zuora follows, and says so.
    let toggles: Vec<OutRecord> = events
        .iter()
        .map(|e| {
            let mut t = examples::auto_renew_changed();
            t.envelope.event_id = uuid::Uuid::new_v4();
            t.envelope.correlation_id = e.envelope.correlation_id;
            t.subscription_id = e.subscription_id.clone();
            t.account_id = e.account_id.clone();
            t.flag_owner = SourceSystem::CustomersApp;
            t.auto_renew = true;
            hub.record(&hub.subscriptions, &t)
        })
        .collect();
    produce(&hub.b, &toggles).await;
    let zuora_flags = hub
        .wait_events(18, Duration::from_secs(60), |e| match e {
            AnyEvent::AutoRenewChanged(a) if a.flag_owner == SourceSystem::Zuora => Some(a.clone()),
            _ => None,
        })
        .await;
    assert_eq!(zuora_flags.len(), 18);
    assert!(zuora_flags.iter().all(|a| a.auto_renew));
    let st = hub.state().await;
    for e in &events {
        assert_eq!(st["subscriptions"][&e.subscription_id]["autoRenew"], true);
    }
    assert_eq!(hub.instance.sink.auto_renew_set(), 18);
    assert!(hub.dead_letters().is_empty());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flow_f_a_cancellation_on_request_turns_auto_renew_off_and_cancels_with_its_reason() {
    let b = require_kafka!();
    let hub = Hub::start(&b, Rules::embedded(), |_| {}).await;
    // The tenant's history API fails throughout: the callouts are not held back by it.
    hub.fault(
        "/v1/notification-history",
        json!({"kind": "status", "status": 500}),
    )
    .await;
    let order = web_order(2);
    hub.order(&order).await;
    let sub = hub
        .wait_events(1, Duration::from_secs(30), created)
        .await
        .remove(0);
    let mut c = examples::subscription_cancelled();
    c.envelope.event_id = uuid::Uuid::new_v4();
    c.envelope.source = SourceSystem::CustomersApp;
    c.envelope.correlation_id = order.envelope.correlation_id;
    c.subscription_id = sub.subscription_id.clone();
    c.account_id = sub.account_id.clone();
    c.reason = CancellationReason::CustomerRequest;
    c.refund = None;
    hub.subscription_event(&c).await;
    let cancelled = hub
        .wait_events(1, Duration::from_secs(30), |e| match e {
            AnyEvent::SubscriptionCancelled(x) if x.envelope.source == SourceSystem::Zuora => {
                Some(x.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(
        cancelled[0].reason,
        CancellationReason::CustomerRequest,
        "the reason kept"
    );
    assert_eq!(cancelled[0].subscription_id, sub.subscription_id);
    assert_eq!(
        cancelled[0].envelope.causation_id,
        Some(c.envelope.event_id)
    );
    let off = hub
        .wait_events(1, Duration::from_secs(30), |e| match e {
            AnyEvent::AutoRenewChanged(a) if a.flag_owner == SourceSystem::Zuora => Some(a.clone()),
            _ => None,
        })
        .await;
    assert!(
        !off[0].auto_renew,
        "rule 5: a cancellation turns it off in Zuora too"
    );
    let st = hub.state().await;
    let z = &st["subscriptions"][&sub.subscription_id];
    assert_eq!(z["status"], "Cancelled");
    assert_eq!(z["autoRenew"], false);
    assert_eq!(z["L2fCancellationReason__c"], "CUSTOMER_REQUEST");
    // The sink never acts on the source's own SubscriptionCancelled (source ZUORA).
    assert_eq!(hub.instance.sink.cancelled(), 1);
    // The history poll runs every 2 s; on a quick run the flow can finish before it.
    let reads = tokio::time::Instant::now() + Duration::from_secs(10);
    while hub.instance.counters.failed_history_reads() == 0 && tokio::time::Instant::now() < reads {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hub.instance.counters.failed_history_reads() >= 1);
    assert_eq!(
        hub.instance.counters.callouts(),
        3,
        "created, auto-renew off, cancelled"
    );
    assert!(hub.dead_letters().is_empty());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flow_h_a_renewal_in_another_entity_s_country_cancels_and_recreates() {
    let b = require_kafka!();
    let hub = Hub::start(&b, Rules::embedded(), |_| {}).await;
    let first = deal(7, "GB", Party::Direct);
    hub.order(&first).await;
    let old = hub
        .wait_events(1, Duration::from_secs(30), created)
        .await
        .remove(0);
    assert_eq!(old.zuora_entity, ZuoraEntity::GitlabLtd);
    // At renewal the billing country is DE: rule 3 gives GmbH.
    let mut renewal = deal(7, "DE", Party::Direct);
    renewal.order_type = OrderType::Renewal;
    renewal.order_id = "006-renewal-0007".into();
    renewal.term_start = first.term_end;
    renewal.term_end = first.term_end + chrono::Months::new(12);
    hub.order(&renewal).await;
    let created_all = hub.wait_events(2, Duration::from_secs(30), created).await;
    assert_eq!(created_all.len(), 2);
    let new = created_all
        .iter()
        .find(|c| c.order_id == renewal.order_id)
        .unwrap();
    assert_eq!(new.zuora_entity, ZuoraEntity::GitlabGmbh);
    assert_eq!(new.account_id, first.account_id);
    assert_ne!(new.subscription_id, old.subscription_id);
    assert_eq!(new.term_start, renewal.term_start);
    let cancelled = hub
        .wait_events(1, Duration::from_secs(30), |e| match e {
            AnyEvent::SubscriptionCancelled(x) => Some(x.clone()),
            _ => None,
        })
        .await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].subscription_id, old.subscription_id);
    assert_eq!(
        cancelled[0].reason,
        CancellationReason::EntityChangeAtRenewal
    );
    let st = hub.state().await;
    assert_eq!(
        st["accounts"]["001000000000000007-GMBH"]["entity"],
        "GITLAB_GMBH"
    );
    assert_eq!(
        st["subscriptions"][&old.subscription_id]["status"],
        "Cancelled"
    );
    assert_eq!(
        st["subscriptions"][&new.subscription_id]["status"],
        "Active"
    );
    assert_eq!(hub.instance.sink.entity_changed(), 1);
    assert!(hub.dead_letters().is_empty());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flow_i_an_unknown_sku_and_one_announced_too_recently_are_dead_lettered_by_name() {
    let b = require_kafka!();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../deploy/rules");
    let dir = tempfile::tempdir().unwrap();
    for f in l2f_rules::FILES {
        std::fs::copy(shipped.join(f), dir.path().join(f)).unwrap();
    }
    let today = Utc::now().date_naive();
    let announced = today - chrono::Days::new(10);
    let effective = announced + chrono::Days::new(30);
    let mut sku = std::fs::read_to_string(shipped.join("sku.toml")).unwrap();
    sku.push_str(&format!(
        "\n[[sku]]\nid = \"duo-saas-1y\"\nannounced = {announced}\neffective = {effective}\n"
    ));
    std::fs::write(dir.path().join("sku.toml"), sku).unwrap();
    let rules = Rules::load(dir.path()).unwrap();
    let hub = Hub::start(&b, rules, |_| {}).await;
    let mut unknown = web_order(3);
    unknown.lines[0].sku = "platinum-saas-1y".into();
    let mut too_new = web_order(4);
    too_new.lines[0].sku = "duo-saas-1y".into();
    let fine = web_order(5);
    hub.order(&unknown).await;
    hub.order(&too_new).await;
    hub.order(&fine).await;
    let ok = hub.wait_events(1, Duration::from_secs(30), created).await;
    assert_eq!(
        ok[0].account_id, fine.account_id,
        "nothing else is affected"
    );
    let mut letters = Vec::new();
    for _ in 0..100 {
        letters = hub.dead_letters();
        if letters.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let by_key: BTreeMap<String, &DeadLetter> =
        letters.iter().map(|l| (l.record.key_str(), l)).collect();
    assert_eq!(by_key.len(), 2, "{letters:?}");
    let u = by_key["cust_000003"];
    assert_eq!(u.error_class, "permanent");
    assert!(
        u.error_message.contains("platinum-saas-1y")
            && u.error_message.contains("not in the catalog"),
        "{}",
        u.error_message
    );
    let t = by_key["cust_000004"];
    assert!(
        t.error_message.contains("duo-saas-1y") && t.error_message.contains(&effective.to_string()),
        "{}",
        t.error_message
    );
    assert_eq!(t.source_topic, hub.orders);
    assert!(hub.subscriptions_of("cust_000003-INC").await.is_empty());
    assert!(hub.subscriptions_of("cust_000004-INC").await.is_empty());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_callout_refused_on_every_attempt_is_caught_by_the_history_poll() {
    let b = require_kafka!();
    // Zuora is configured with a password the hub does not know: every attempt gets 401.
    let hub = Hub::start(&b, Rules::embedded(), |z| {
        z.callout_password = Some("an-old-password".into());
        z.callout_attempts = 2;
    })
    .await;
    hub.order(&web_order(6)).await;
    let events = hub.wait_events(1, Duration::from_secs(45), created).await;
    assert_eq!(events.len(), 1, "caught by the history poll");
    assert_eq!(events[0].account_id, "cust_000006");
    assert!(hub.instance.counters.from_history() >= 1);
    assert_eq!(hub.instance.counters.callouts(), 0, "no callout got in");
    // Read again and again by later polls: still one event.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(hub.events().iter().filter_map(created).count(), 1);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_zuora_failing_every_fourth_read_still_gets_every_notification_through_once() {
    let b = require_kafka!();
    let hub = Hub::start(&b, Rules::embedded(), |_| {}).await;
    // Every fourth read of a subscription fails. Were a failed read to cost the whole batch,
    // any batch of four notifications or more would fail on every poll, and the callouts
    // waiting would pile up into such a batch: the source would never commit again.
    let status = reqwest::Client::new()
        .post(format!("{}/__admin/faults", hub.base))
        .json(
            &json!({"path": "/v1/subscriptions/", "method": "GET", "every": 4,
                      "action": {"kind": "status", "status": 500}}),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 201);
    let orders: Vec<OutRecord> = (20..32)
        .map(|n| hub.record(&hub.orders, &web_order(n)))
        .collect();
    produce(&b, &orders).await;
    let events = hub.wait_events(12, Duration::from_secs(90), created).await;
    let accounts: std::collections::BTreeSet<String> =
        events.iter().map(|e| e.account_id.clone()).collect();
    assert_eq!(events.len(), 12, "{accounts:?}");
    assert_eq!(
        accounts.len(),
        12,
        "one event per subscription: {accounts:?}"
    );
    // The reads really failed, and no notification came twice.
    let faults: Value = reqwest::get(format!("{}/__admin/faults", hub.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fired = faults
        .as_array()
        .and_then(|rules| rules.first())
        .and_then(|r| r["fired"].as_u64())
        .unwrap_or_default();
    assert!(fired >= 3, "{faults}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hub.events().iter().filter_map(created).count(), 12);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_and_bad_bodies_produce_nothing_and_a_standby_answers_503() {
    let b = require_kafka!();
    let hub = Hub::start(&b, Rules::embedded(), |_| {}).await;
    let http = reqwest::Client::new();
    let body = json!({"eventType": "SubscriptionCreated", "subscriptionNumber": "A-S00000001",
                      "accountNumber": "x-INC"});
    let post = |id: &str| {
        http.post(&hub.callout_url)
            .header("Zuora-Notification-Id", id)
    };
    let none = post("s-1").json(&body).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    assert!(none.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let wrong = post("s-2")
        .basic_auth(CALLOUT_USER, Some("guess"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let malformed = post("s-3")
        .basic_auth(CALLOUT_USER, Some(CALLOUT_PASSWORD))
        .header("Content-Type", "application/json")
        .body("{\"eventType\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    let big = json!({"eventType": "SubscriptionCreated", "subscriptionNumber": "A-S1", "pad": "p".repeat(8192)});
    let oversized = post("s-4")
        .basic_auth(CALLOUT_USER, Some(CALLOUT_PASSWORD))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status().as_u16(), 413);

    // A second replica of the same source stands by: it answers 503 to an authentic call.
    let standby = hub.replica(free_port()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resp = http
        .post(&standby.callout_url)
        .basic_auth(CALLOUT_USER, Some(CALLOUT_PASSWORD))
        .header("Zuora-Notification-Id", "s-5")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(hub.events().is_empty(), "nothing produced");
    assert!(hub.dead_letters().is_empty());
    let source = hub.instance.pipelines.source(&hub.source).unwrap();
    assert!(source.active());
    assert_eq!(source.records(), 0);
    standby.stop().await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zuora_down_for_30_seconds_pauses_the_partition_and_delivers_every_order_after() {
    let b = require_kafka!();
    let hub = Hub::start(&b, Rules::embedded(), |_| {}).await;
    let stats = hub.sink_loop().await;
    // One order first, so the group has its partitions and the catalog is known.
    hub.order(&web_order(10)).await;
    assert!(wait_until(Duration::from_secs(30), || stats.handled() >= 1).await);
    let most_waiting = Arc::new(AtomicI64::new(0));
    let paused_for_app = Arc::new(AtomicI64::new(0));
    let watch = {
        let (stats, most) = (stats.clone(), most_waiting.clone());
        let paused_for_app = paused_for_app.clone();
        tokio::spawn(async move {
            loop {
                most.fetch_max(stats.waiting(), Ordering::Relaxed);
                let n = stats
                    .paused()
                    .values()
                    .filter(|r| **r == "app_unavailable")
                    .count();
                paused_for_app.fetch_max(n as i64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // 15 s of 503, then 15 s of 401 on every path (the token too).
    hub.fault("", json!({"kind": "status", "status": 503}))
        .await;
    let orders: Vec<OrderPlaced> = (11..21).map(web_order).collect();
    let records: Vec<OutRecord> = orders.iter().map(|o| hub.record(&hub.orders, o)).collect();
    produce(&hub.b, &records).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    hub.clear_faults().await;
    hub.fault("", json!({"kind": "status", "status": 401}))
        .await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(
        hub.state().await["subscriptions"]
            .as_object()
            .unwrap()
            .len(),
        1,
        "nothing got through the outage"
    );
    hub.clear_faults().await;
    assert!(
        wait_until(Duration::from_secs(60), || stats.handled() >= 11).await,
        "handled {}",
        stats.handled()
    );
    watch.abort();
    let events = hub.wait_events(11, Duration::from_secs(30), created).await;
    assert_eq!(events.len(), 11);
    for o in &orders {
        assert_eq!(
            hub.subscriptions_of(&format!("{}-INC", o.account_id))
                .await
                .len(),
            1,
            "{}",
            o.account_id
        );
    }
    assert!(
        most_waiting.load(Ordering::Relaxed) > 0,
        "the partition waited (paused)"
    );
    // `l2f_partition_paused{reason="app_unavailable"}` while it waited, gone once it resumed.
    assert!(
        paused_for_app.load(Ordering::Relaxed) > 0,
        "paused, and why"
    );
    assert!(
        wait_until(Duration::from_secs(10), || stats.paused().is_empty()).await,
        "still paused: {:?}",
        stats.paused()
    );
    assert!(
        stats.unavailable() >= 1,
        "unavailable {}",
        stats.unavailable()
    );
    assert_eq!(stats.dead_lettered(), 0);
    assert!(
        hub.dead_letters().is_empty(),
        "no order dead-lettered because Zuora was down"
    );
    assert!(hub.instance.sink.unavailable() >= 2);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_source_remembers_the_notifications_it_committed() {
    let b = require_kafka!();
    let mut hub = Hub::start(&b, Rules::embedded(), |_| {}).await;
    hub.order(&web_order(30)).await;
    let first = hub.wait_events(1, Duration::from_secs(30), created).await;
    assert_eq!(first.len(), 1);
    hub.restart().await;
    // The new instance reads the history at once: the notification is in its cursor.
    assert!(
        wait_until(Duration::from_secs(20), || hub
            .instance
            .counters
            .history_reads()
            >= 2)
        .await,
        "the restarted source did not read the history"
    );
    assert_eq!(hub.instance.counters.from_history(), 0);
    // Zuora retries the old callout (its answer was lost in the restart): 200, nothing new.
    let http = reqwest::Client::new();
    let again = http
        .post(&hub.callout_url)
        .basic_auth(CALLOUT_USER, Some(CALLOUT_PASSWORD))
        .header("Zuora-Notification-Id", {
            let st = hub.state().await;
            st["callout_history"][0]["notificationId"].as_str().unwrap().to_string()
        })
        .json(&json!({"eventType": "SubscriptionCreated", "subscriptionNumber": first[0].subscription_id,
                      "accountNumber": "cust_000030-INC", "orderNumber": "O-x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
    // And it goes on: the next order's callout is its first event.
    hub.order(&web_order(31)).await;
    let all = hub.wait_events(2, Duration::from_secs(30), created).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(hub.instance.counters.events(), 1);
    assert_eq!(
        hub.events().len(),
        2,
        "one event per notification across the restart"
    );
    hub.stop().await;
}

/// Flow e, Zuora's part, on the mock's simulated clock advanced across a term: an
/// auto-renewing subscription renews (`SubscriptionRenewed`, automatic, the Batch3 invoice at
/// the catalog's price); one whose card declines — a SaaS auto-renewal — is cancelled by the
/// sink with reason card declined and auto-renew off, both changes coming back as Zuora's
/// events; one without auto-renew ends its term unrenewed. The decline is acted on once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flow_e_term_end_renews_cancels_a_declined_card_and_ends_a_term_without_auto_renew() {
    let b = require_kafka!();
    let hub = Hub::start_with(&b, Rules::embedded(), |mc| {
        mc.clock = l2f_mocks::clock::ClockConfig {
            mode: l2f_mocks::clock::ClockMode::Simulated,
            start: "2026-12-03T09:00:00Z".into(),
            tick_ms: 100,
        };
    })
    .await;
    let (renews, declines, mut ends) = (web_order(31), web_order(32), web_order(33));
    ends.auto_renew = false;
    for o in [&renews, &declines, &ends] {
        hub.order(o).await;
    }
    let subs = hub.wait_events(3, Duration::from_secs(30), created).await;
    assert_eq!(subs.len(), 3);
    let number = |o: &OrderPlaced| {
        subs.iter()
            .find(|s| s.account_id == o.account_id)
            .unwrap()
            .subscription_id
            .clone()
    };
    let (renews_n, declines_n, ends_n) = (number(&renews), number(&declines), number(&ends));
    let http = reqwest::Client::new();
    for o in [&renews, &declines] {
        // A card on file: Zuora collects renewal invoices of autoPay accounts.
        let acct = format!("{}-INC", o.account_id);
        let st = hub.state().await;
        assert_eq!(st["accounts"][&acct]["batch"], "Batch1");
        let token: Value = http
            .post(format!("{}/oauth/token", hub.base))
            .form(&[
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let put: Value = http
            .put(format!("{}/v1/accounts/{acct}", hub.base))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .json(&json!({"autoPay": true}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(put["success"], true, "{put}");
    }
    let card = http
        .post(format!(
            "{}/__admin/accounts/{}-INC/card",
            hub.base, declines.account_id
        ))
        .json(&json!({"declines": true}))
        .send()
        .await
        .unwrap();
    assert!(card.status().is_success());
    let moved = http
        .post(format!("{}/__admin/clock", hub.base))
        .json(&json!({"set": "2027-12-02T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert!(moved.status().is_success());

    let renewed = hub
        .wait_events(2, Duration::from_secs(30), |e| match e {
            AnyEvent::SubscriptionRenewed(r) => Some(r.clone()),
            _ => None,
        })
        .await;
    let r = renewed
        .iter()
        .find(|r| r.subscription_id == renews_n)
        .expect("renewed");
    assert!(r.auto_renewed, "renewed by Zuora at term end");
    assert_eq!(
        (r.term_start.to_string(), r.term_end.to_string()),
        ("2027-12-01".into(), "2028-12-01".into())
    );
    assert_eq!(r.amount.amount, rust_decimal::Decimal::new(14500, 2));
    let cancelled = hub
        .wait_events(1, Duration::from_secs(30), |e| match e {
            AnyEvent::SubscriptionCancelled(c) if c.subscription_id == declines_n => {
                Some(c.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(cancelled.len(), 1, "cancelled once");
    assert_eq!(
        cancelled[0].reason,
        CancellationReason::CardDeclinedOnAutoRenewal
    );
    assert_eq!(cancelled[0].effective_date.to_string(), "2027-12-01");
    let events = hub.events();
    let declined: Vec<&PaymentDeclined> = events
        .iter()
        .filter_map(|e| match e {
            AnyEvent::PaymentDeclined(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(declined.len(), 1);
    assert!(declined[0].on_auto_renewal);
    assert_eq!(
        cancelled[0].envelope.causation_id,
        Some(declined[0].envelope.event_id),
        "the cancellation names the decline it came from"
    );
    assert!(events.iter().any(|e| matches!(e,
        AnyEvent::AutoRenewChanged(a) if a.subscription_id == declines_n && !a.auto_renew && a.flag_owner == SourceSystem::Zuora)));
    let st = hub.state().await;
    let inv: Vec<&Value> = st["invoices"]
        .as_object()
        .unwrap()
        .values()
        .filter(|i| i["items"][0]["subscriptionName"] == renews_n.as_str())
        .collect();
    assert_eq!(inv.len(), 1);
    assert_eq!(
        (inv[0]["amount"].clone(), inv[0]["balance"].clone()),
        (json!(145.0), json!(0.0))
    );
    let run = inv[0]["billRunId"].as_str().unwrap();
    assert!(st["bill_runs"]
        .as_object()
        .unwrap()
        .values()
        .any(|b| b["id"] == run && b["batches"] == json!(["Batch3"])));
    let e = &st["subscriptions"][&ends_n];
    assert_eq!(
        (e["status"].clone(), e["termEndDate"].clone()),
        (json!("Active"), json!("2027-12-01")),
        "a term without auto-renew ends unrenewed"
    );
    assert!(!renewed.iter().any(|r| r.subscription_id == ends_n));
    let d = &st["subscriptions"][&declines_n];
    assert_eq!(
        (d["status"].clone(), d["autoRenew"].clone()),
        (json!("Cancelled"), json!(false))
    );
    assert_eq!(hub.instance.sink.cancelled(), 1);
    assert!(hub.dead_letters().is_empty());
    hub.stop().await;
}
