//! Reconciliation end to end on the real broker, with the Zuora, Salesforce and customers
//! mocks in-process: two web-store subscriptions go through the hub's path (the order through
//! the Zuora sink into Zuora, Zuora's `SubscriptionCreated` — made by the Zuora source's own
//! mapping from what Zuora holds — onto the subscriptions topic and through the Salesforce and
//! customers-app mirror sinks), so the apps agree with the log: no drift. Then drift made by
//! hand in the apps' APIs (auto-renew flipped in Zuora, a customer account's profile edited in
//! Salesforce) is reported field by field with both values and the event that set the
//! expected one; `--fix` re-emits repairs onto the topic (marked, caused by the originals),
//! the connectors' sinks apply what they read there, and the next run reports no drift.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use l2f_bus::{Handler, Record};
use l2f_connector_customers::client::CustomersClient;
use l2f_connector_customers::CustomersConfig;
use l2f_connector_kit::record::event_record;
use l2f_connector_salesforce::{
    MirrorSink as SalesforceMirror, SalesforceClient, SalesforceConfig,
};
use l2f_connector_zuora::client::Call;
use l2f_connector_zuora::mapping::{account_number, to_event, Notification, Snapshot};
use l2f_connector_zuora::{ZuoraClient, ZuoraConfig, ZuoraSink};
use l2f_contracts::events::*;
use l2f_contracts::record::AnyEvent;
use l2f_contracts::{examples, Codec, CountryCode};
use l2f_e2e::{create_topic, produce, require_kafka, unique};
use l2f_mocks::server::{self, MocksConfig, Running};
use l2f_reconcile::fix::{REPAIR_HEADER, REPAIR_OF_HEADER};
use l2f_reconcile::{Apps, DriftKind, Kind, Options, Report, ZuoraApp};
use l2f_rules::Rules;
use l2f_secrets::SecretRef;
use serde_json::{json, Value};

const ZUORA_ID: &str = "6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01";
const ZUORA_SECRET: &str = "l2f-zuora-secret";
const TOKEN: &str = "l2f-customers-token";

struct World {
    _mocks: Running,
    bootstrap: String,
    topic: String,
    orders: String,
    codec: Arc<Codec>,
    zuora: Arc<ZuoraClient>,
    zuora_cfg: ZuoraConfig,
    salesforce: Arc<SalesforceClient>,
    customers: Arc<CustomersClient>,
}

impl World {
    fn apps(&self) -> Apps {
        Apps {
            zuora: Some(ZuoraApp {
                client: self.zuora.clone(),
                profiles: self.zuora_cfg.profiles(),
                rules: Arc::new(Rules::embedded()),
            }),
            salesforce: Some(self.salesforce.clone()),
            customers: Some(self.customers.clone()),
        }
    }

    fn options(&self) -> Options {
        Options {
            topics: vec![self.orders.clone(), self.topic.clone()],
            timeout: Duration::from_secs(10),
            dead_letters: None,
        }
    }

    async fn reconcile(&self, fix: Option<&str>) -> Report {
        l2f_reconcile::reconcile(
            &l2f_e2e::client(&self.bootstrap),
            &self.apps(),
            &self.options(),
            fix,
            &self.topic,
        )
        .await
        .expect("reconcile")
    }

    fn zuora_sink(&self) -> ZuoraSink {
        ZuoraSink::new(
            self.zuora.clone(),
            self.codec.clone(),
            Arc::new(Rules::embedded()),
            self.zuora_cfg.profiles(),
        )
    }

    /// The records of the subscriptions topic, as the connectors' loops hand them over.
    fn records(&self) -> Vec<Record> {
        l2f_bus::reader::read_all(
            &l2f_e2e::client(&self.bootstrap),
            &self.topic,
            Duration::from_secs(10),
        )
        .expect("read topic")
    }

    /// Every record through the three sinks, as `l2f run` would hand them over.
    async fn apply(&self, records: &[Record]) {
        let zuora = self.zuora_sink();
        let sf = SalesforceMirror::new(self.salesforce.clone(), self.codec.clone(), 200);
        let customers = l2f_connector_customers::sink::MirrorSink::new(
            self.customers.clone(),
            self.codec.clone(),
        );
        for r in records {
            zuora.handle(r).await.expect("zuora sink");
            for res in sf.push(std::slice::from_ref(r)).await {
                res.expect("salesforce mirror");
            }
            customers.handle(r).await.expect("customers mirror");
        }
    }
}

fn as_record(out: l2f_bus::OutRecord, offset: i64) -> Record {
    Record {
        topic: out.topic,
        partition: 0,
        offset,
        key: out.key,
        payload: out.payload,
        headers: out.headers,
        timestamp_ms: None,
    }
}

async fn world() -> Option<World> {
    let bootstrap = l2f_e2e::bootstrap()?;
    let topic = unique("reconcile-subscriptions");
    let orders = unique("reconcile-orders");
    create_topic(&bootstrap, &topic, 2).await;
    create_topic(&bootstrap, &orders, 1).await;
    let mut mc = MocksConfig::default();
    mc.only(&["zuora".into(), "salesforce".into(), "customers".into()])
        .unwrap();
    mc.without_https();
    let mocks = server::start(&mc).await.unwrap();
    let url = |app: &str| mocks.endpoint(app).unwrap().http.clone();
    let mut zuora_cfg = ZuoraConfig::new(
        url("zuora"),
        ZUORA_ID,
        SecretRef::Inline(ZUORA_SECRET.into()),
    );
    zuora_cfg.subscriptions_topic = topic.clone();
    let zuora = Arc::new(zuora_cfg.client().unwrap());
    let salesforce = Arc::new(
        SalesforceConfig::new(
            url("salesforce"),
            "l2f-client-id",
            SecretRef::Inline("l2f-client-secret".into()),
        )
        .with_user(
            "integration@l2f.example",
            SecretRef::Inline("l2f-password".into()),
        )
        .client()
        .unwrap(),
    );
    let customers = Arc::new(
        CustomersConfig::new(url("customers"), SecretRef::Inline(TOKEN.into()))
            .client()
            .unwrap(),
    );
    Some(World {
        _mocks: mocks,
        bootstrap,
        topic,
        orders,
        codec: Arc::new(Codec::new()),
        zuora,
        zuora_cfg,
        salesforce,
        customers,
    })
}

/// A web-store SaaS purchase by `account`.
fn web_order(account: &str, n: u32, seats: i32) -> OrderPlaced {
    let mut o = examples::order_placed();
    o.envelope.event_id = uuid::Uuid::new_v4();
    o.envelope.correlation_id = uuid::Uuid::new_v4();
    o.envelope.source = SourceSystem::CustomersApp;
    o.envelope.occurred_at = Utc::now();
    o.sales_channel = SalesChannel::WebStore;
    o.reseller = None;
    o.deployment = Deployment::Saas;
    o.order_type = OrderType::New;
    o.bill_to_country = CountryCode::from_code("FR").unwrap();
    o.account_id = account.to_string();
    o.order_id = format!("web-{n:06}");
    o.sold_to_email = format!("buyer{n}@example.com");
    o.auto_renew = true;
    o.lines.truncate(1);
    o.lines[0].sku = "premium-saas-1y".into();
    o.lines[0].quantity = seats;
    o
}

/// One subscription through the hub's path; its Zuora number.
async fn subscribe(w: &World, n: u32, seats: i32) -> (String, String) {
    let account: Value = w
        .customers
        .call(
            reqwest::Method::POST,
            "/api/v1/accounts",
            Some(&json!({"email": format!("buyer{n}@example.com"), "name": format!("Buyer {n}"), "country": "FR"})),
        )
        .await
        .expect("customers account");
    let account = account["id"].as_str().unwrap().to_string();
    let order = web_order(&account, n, seats);
    let out = event_record(&w.codec, &w.orders, &order, None).unwrap();
    produce(&w.bootstrap, std::slice::from_ref(&out)).await;
    w.zuora_sink()
        .apply(&as_record(out, 0))
        .await
        .expect("order into Zuora");
    let number = account_number(&account, ZuoraEntity::GitlabInc);
    let subs = w
        .zuora
        .account_subscriptions(&number, Call::default())
        .await
        .unwrap()
        .unwrap();
    let sub = subs[0].clone();
    let zacct = w
        .zuora
        .account(&number, Call::default())
        .await
        .unwrap()
        .unwrap();
    let prp = sub["ratePlans"][0]["productRatePlanId"].as_str().unwrap();
    let plan = w.zuora.catalog_rate_plan(prp).await.unwrap();
    let sub_number = sub["subscriptionNumber"].as_str().unwrap().to_string();
    let notification = Notification::parse(
        &format!("note-{n}-{}", uuid::Uuid::new_v4().simple()),
        &json!({"eventType": "SubscriptionCreated", "subscriptionNumber": sub_number, "accountNumber": number}),
    )
    .unwrap();
    let profiles = w.zuora_cfg.profiles();
    let created = to_event(&Snapshot {
        notification: &notification,
        subscription: &sub,
        account: &zacct,
        plan: plan.as_ref(),
        previous_seats: None,
        tenant: "test",
        now: Utc::now(),
        profiles: &profiles,
    })
    .expect("Zuora's event")
    .expect("mapped");
    let out = created.record(&w.codec, &w.topic).unwrap();
    produce(&w.bootstrap, std::slice::from_ref(&out)).await;
    (sub_number, number)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_made_by_hand_is_reported_with_its_event_and_fix_repairs_it_through_the_sinks() {
    require_kafka!();
    let Some(w) = world().await else { return };
    let (a, _) = subscribe(&w, 1, 10).await;
    let (_b, b_account) = subscribe(&w, 2, 25).await;
    // The mirrors apply Zuora's events as their connectors would.
    w.apply(&w.records()).await;

    let clean = w.reconcile(None).await;
    assert!(!clean.drifted(), "{}", clean.table());
    assert_eq!((clean.subscriptions, clean.accounts), (2, 2));
    assert_eq!(clean.apps, vec!["zuora", "salesforce", "customers"]);

    // By hand: auto-renew flipped in Zuora, a customer account's profile edited in Salesforce.
    w.zuora
        .update_subscription(&a, &json!({"autoRenew": false}), Call::default())
        .await
        .unwrap();
    let rows = w
        .salesforce
        .query_all(&format!(
            "SELECT Id FROM Zuora__CustomerAccount__c WHERE Zuora__External_Id__c = '{b_account}'"
        ))
        .await
        .unwrap();
    let id = rows[0]["Id"].as_str().unwrap();
    w.salesforce
        .update(
            "Zuora__CustomerAccount__c",
            id,
            &json!({"Communication_Profile__c": "SILENT"}),
        )
        .await
        .unwrap();

    let drifted = w.reconcile(None).await;
    let got: Vec<(&str, Kind, &str, DriftKind, &str, Value, Value)> = drifted
        .drift
        .iter()
        .map(|d| {
            (
                d.app.as_str(),
                d.kind,
                d.record.as_str(),
                d.drift,
                d.field.as_str(),
                d.expected.clone(),
                d.held.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "zuora",
                Kind::Subscription,
                a.as_str(),
                DriftKind::Field,
                "auto_renew",
                json!(true),
                json!(false)
            ),
            (
                "salesforce",
                Kind::Account,
                b_account.as_str(),
                DriftKind::Field,
                "communication_profile",
                json!("DEFAULT"),
                json!("SILENT")
            ),
        ],
        "{}",
        drifted.table()
    );
    let by = drifted.drift[0].set_by.as_ref().unwrap();
    assert_eq!(by.event_type, "SubscriptionCreated");
    assert_eq!(by.topic, w.topic);
    let table = drifted.table();
    assert!(table.contains(&by.event_id.to_string()), "{table}");
    assert!(table.contains("--fix would re-emit 2 events"), "{table}");
    // A dry run emits nothing.
    let before = w.records().len();

    let fixed = w.reconcile(Some("run-1")).await;
    assert!(fixed.fixed);
    let emitted: Vec<&str> = fixed
        .emitted
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        emitted,
        vec!["SubscriptionCreated", "AutoRenewChanged"],
        "{}",
        fixed.table()
    );
    let all = w.records();
    assert_eq!(
        all.len(),
        before + 2,
        "the dry run emitted nothing; the fix two"
    );
    let repairs: Vec<&Record> = all
        .iter()
        .filter(|r| r.header_str(REPAIR_HEADER) == Some("reconcile"))
        .collect();
    assert_eq!(repairs.len(), 2);
    let toggle = repairs
        .iter()
        .map(|r| AnyEvent::decode(&w.codec, r.payload.as_deref().unwrap()).unwrap())
        .find_map(|e| match e {
            AnyEvent::AutoRenewChanged(t) => Some(t),
            _ => None,
        })
        .expect("the toggle");
    assert_eq!(
        (
            toggle.subscription_id.as_str(),
            toggle.auto_renew,
            toggle.flag_owner
        ),
        (a.as_str(), true, SourceSystem::CustomersApp)
    );
    assert_eq!(toggle.envelope.causation_id, Some(by.event_id));
    assert!(repairs.iter().all(|r| r
        .header_str(REPAIR_OF_HEADER)
        .is_some_and(|p| p.starts_with(&w.topic))));

    // The connectors' sinks apply what they read on the topic.
    let fresh: Vec<Record> = repairs.into_iter().cloned().collect();
    w.apply(&fresh).await;
    let after = w.reconcile(None).await;
    assert!(!after.drifted(), "{}", after.table());
    let held = w
        .zuora
        .subscription(&a, Call::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held["autoRenew"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_missing_from_a_mirror_and_one_the_log_never_made_are_drift() {
    require_kafka!();
    let Some(w) = world().await else { return };
    let (a, _) = subscribe(&w, 3, 5).await;
    // Only Zuora got it: both mirrors miss the subscription (and Salesforce its account).
    // And an order that never reached Zuora.
    let lost = web_order("cust_lost", 4, 3);
    let out = event_record(&w.codec, &w.orders, &lost, None).unwrap();
    produce(&w.bootstrap, std::slice::from_ref(&out)).await;
    let report = w.reconcile(None).await;
    let missing: Vec<(&str, Kind)> = report
        .drift
        .iter()
        .filter(|d| d.drift == DriftKind::Missing)
        .map(|d| (d.app.as_str(), d.kind))
        .collect();
    assert_eq!(
        missing,
        vec![
            ("zuora", Kind::Order),
            ("salesforce", Kind::Subscription),
            ("salesforce", Kind::Account),
            ("customers", Kind::Subscription)
        ],
        "{}",
        report.table()
    );
    assert!(report
        .drift
        .iter()
        .all(|d| d.record != a || d.app != "zuora"));
    // Something in Salesforce's mirror no event made.
    w.salesforce
        .create(
            "Zuora__Subscription__c",
            &json!({"Zuora__External_Id__c": "A-S99999999", "Name": "A-S99999999"}),
        )
        .await
        .unwrap();
    let report = w.reconcile(Some("run-2")).await;
    let extra = report
        .drift
        .iter()
        .find(|d| d.drift == DriftKind::Extra)
        .expect("extra");
    assert_eq!(
        (extra.app.as_str(), extra.record.as_str()),
        ("salesforce", "A-S99999999")
    );
    assert!(report
        .plan
        .unrepairable
        .iter()
        .any(|u| u.drift.contains("A-S99999999")));
    let lost_drift = report.drift.iter().find(|d| d.kind == Kind::Order).unwrap();
    assert_eq!(lost_drift.record, lost.order_id);
    assert_eq!(
        lost_drift.set_by.as_ref().unwrap().event_id,
        lost.envelope.event_id
    );
    // The missing mirrors are repaired by the re-emitted creation, Zuora by the order's copy.
    let fresh: Vec<Record> = w
        .records()
        .into_iter()
        .filter(|r| r.header_str(REPAIR_HEADER).is_some())
        .collect();
    assert_eq!(fresh.len(), 1, "one creation serves all three mirrors");
    let reordered: Vec<Record> = l2f_bus::reader::read_all(
        &l2f_e2e::client(&w.bootstrap),
        &w.orders,
        Duration::from_secs(10),
    )
    .unwrap()
    .into_iter()
    .filter(|r| r.header_str(REPAIR_HEADER).is_some())
    .collect();
    assert_eq!(reordered.len(), 1, "the lost order re-emitted");
    w.apply(&fresh).await;
    w.zuora_sink()
        .apply(&reordered[0])
        .await
        .expect("order into Zuora");
    let report = w.reconcile(None).await;
    let left: Vec<DriftKind> = report.drift.iter().map(|d| d.drift).collect();
    assert_eq!(left, vec![DriftKind::Extra], "{}", report.table());
}
