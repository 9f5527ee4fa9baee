//! The Salesforce connector end to end: real Kafka (`KAFKA_BOOTSTRAP`), the bus's consumer
//! and source loops started through the kit's `Context`, and the Salesforce mock over HTTP
//! on loopback.
//!
//! - flow a (Salesforce's part): leads from the forms → Salesforce Leads, country ISO-2; a
//!   lead missing a required field is dead-lettered naming it and reaches no Lead;
//! - the billing mirror: Zuora's subscription events → the Zuora objects of Salesforce;
//! - flow d (Salesforce's part): closed-won deals for NL, DE, GB, AU, US and JP, each as a
//!   direct customer, an unauthorized and an authorized reseller → `OrderPlaced` with the
//!   right channel, reseller, country and auto-renew off, read back from the orders topic;
//!   unmappable deals dead-lettered in the same transaction;
//! - flow g (Salesforce's part): usage reports above the seats bought → one `L2f_True_Up__c`
//!   per subscription and month; the identical report again flags nothing new, one within
//!   the seats nothing;
//! - a source stopped and started again produces no duplicate (`read_committed` count =
//!   deals);
//! - Salesforce down for ~30 s (503, then 401 even after a fresh login) ends with every lead
//!   delivered, none dead-lettered, the partition paused meanwhile.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use l2f_bus::config::{RetryConfig, SourcesConfig};
use l2f_bus::dlq::DeadLetter;
use l2f_bus::reader::read_all;
use l2f_bus::{CancellationToken, Producer, Record};
use l2f_connector_kit::record::event_record;
use l2f_connector_kit::{Context, Pipelines, Task};
use l2f_connector_salesforce::{LeadSink, OpportunitySource, SourceTopics, REGISTRATION};
use l2f_contracts::events::{OrderPlaced, SalesChannel, SourceSystem};
use l2f_contracts::examples;
use l2f_contracts::Codec;
use l2f_e2e::{
    client as kafka_client, create_topic, produce, quick_loop, require_kafka, unique, wait_until,
};
use l2f_rules::Rules;
use rdkafka::ClientConfig;
use serde_json::{json, Value};

/// The topics of one test, all freshly named.
struct Topics {
    leads: String,
    subscriptions: String,
    orders: String,
    usage: String,
    licenses: String,
    dlq: String,
    offsets: String,
}

async fn topics(b: &str) -> Topics {
    let t = Topics {
        leads: unique("leads"),
        subscriptions: unique("subscriptions"),
        orders: unique("orders"),
        usage: unique("usage"),
        licenses: unique("licenses"),
        dlq: unique("dead-letters"),
        offsets: unique("source-offsets"),
    };
    for (name, partitions) in [
        (&t.leads, 2),
        (&t.subscriptions, 2),
        (&t.orders, 3),
        (&t.usage, 2),
        (&t.licenses, 2),
        (&t.dlq, 1),
        (&t.offsets, 1),
    ] {
        create_topic(b, name, partitions).await;
    }
    t
}

/// A context on the test broker, as `l2f run` builds it (quick loop settings).
fn context(b: &str, t: &Topics, shutdown: CancellationToken) -> Context {
    let c = kafka_client(b);
    let quick = quick_loop("unused", "unused");
    Context {
        kafka: c.clone(),
        consumer: quick.consumer,
        retry: RetryConfig {
            max_attempts: 5,
            ..quick.retry
        },
        dead_letter_topic: t.dlq.clone(),
        sources: SourcesConfig {
            offsets_topic: t.offsets.clone(),
            poll_interval: Duration::from_millis(200),
            session_timeout: Duration::from_secs(6),
        },
        producer: Producer::new(&c).unwrap(),
        codec: Arc::new(Codec::new()),
        rules: Arc::new(Rules::embedded()),
        shutdown,
        pipelines: Pipelines::default(),
        clock: l2f_bus::clock::wall(),
    }
}

/// A reader that sees committed records only (what every consumer of the hub sees).
fn committed_reader(b: &str) -> ClientConfig {
    let mut c = kafka_client(b);
    c.set("isolation.level", "read_committed");
    c
}

fn read(b: &str, topic: &str) -> Vec<Record> {
    read_all(&committed_reader(b), topic, Duration::from_secs(20)).unwrap()
}

fn dead_letters(b: &str, topic: &str) -> Vec<DeadLetter> {
    read(b, topic)
        .into_iter()
        .filter_map(DeadLetter::parse)
        .collect()
}

fn orders(b: &str, topic: &str) -> Vec<OrderPlaced> {
    let codec = Codec::new();
    read(b, topic)
        .into_iter()
        .map(|r| codec.decode(r.payload.as_deref().unwrap()).unwrap())
        .collect()
}

async fn stop(token: &CancellationToken, task: Task) {
    token.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("pipeline stops")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_and_zuoras_subscriptions_reach_salesforce_through_the_registered_connector() {
    let b = require_kafka!();
    let (mocks, base) = mock(|_| {}).await;
    let t = topics(&b).await;
    let (leads_group, mirror_group) = (unique("g-sf-leads"), unique("g-sf-mirror"));
    let section = json!({
        "login_url": base,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": USERNAME,
        "password": PASSWORD,
        "poll_interval": "200ms",
        "source": unique("salesforce-opportunities"),
        "orders_topic": t.orders,
        "leads_topic": t.leads,
        "subscriptions_topic": t.subscriptions,
        "usage_topic": t.usage,
        "licenses_topic": t.licenses,
        "leads_group": leads_group,
        "mirror_group": mirror_group,
        "true_up_group": unique("g-sf-true-ups"),
    });
    let connector = (REGISTRATION.build)(&section).unwrap();
    assert_eq!(connector.name(), "salesforce");
    connector.healthcheck().await.unwrap();
    let token = CancellationToken::new();
    let ctx = context(&b, &t, token.clone());
    let pipelines = ctx.pipelines.clone();
    let run = tokio::spawn(connector.start(ctx));
    let leads = pipelines
        .wait_sink(&leads_group, Duration::from_secs(10))
        .await
        .unwrap();
    let mirror = pipelines
        .wait_sink(&mirror_group, Duration::from_secs(10))
        .await
        .unwrap();

    // Flow a: complete leads from the forms (the customers source made UK into GB) and one
    // without a company.
    let codec = Codec::new();
    let mut lead_records = Vec::new();
    for (i, country) in ["GB", "DE", "US", "AU", "NL"].iter().enumerate() {
        let mut l = lead(i, true);
        l.country = l2f_contracts::CountryCode::from_code(country);
        lead_records.push(event_record(&codec, &t.leads, &l, None).unwrap());
    }
    lead_records.push(event_record(&codec, &t.leads, &lead(5, false), None).unwrap());
    // A redelivery of the first lead.
    lead_records.push(lead_records[0].clone());
    produce(&b, &lead_records).await;

    // The mirror: Zuora's own events, and events it must skip.
    let zuora_created = |sub: &str, account: &str| {
        let mut e = examples::subscription_created();
        e.subscription_id = sub.into();
        e.account_id = account.into();
        e.envelope.event_id = uuid::Uuid::new_v4();
        e
    };
    let mut auto = examples::auto_renew_changed();
    auto.subscription_id = "A-S00000001".into();
    auto.envelope.source = SourceSystem::Zuora;
    auto.flag_owner = SourceSystem::Zuora;
    auto.auto_renew = true;
    let mut cancelled = examples::subscription_cancelled();
    cancelled.subscription_id = "A-S00000002".into();
    let mut from_app = examples::auto_renew_changed();
    from_app.subscription_id = "A-S00000001".into();
    from_app.auto_renew = false;
    let mut app_cancel = examples::subscription_cancelled();
    app_cancel.subscription_id = "A-S00000001".into();
    app_cancel.envelope.source = SourceSystem::CustomersApp;
    let subs = vec![
        event_record(
            &codec,
            &t.subscriptions,
            &zuora_created("A-S00000001", "001000000000007AAA"),
            None,
        )
        .unwrap(),
        event_record(
            &codec,
            &t.subscriptions,
            &zuora_created("A-S00000002", "cust_000042"),
            None,
        )
        .unwrap(),
        event_record(&codec, &t.subscriptions, &auto, None).unwrap(),
        event_record(&codec, &t.subscriptions, &cancelled, None).unwrap(),
        event_record(&codec, &t.subscriptions, &from_app, None).unwrap(),
        event_record(&codec, &t.subscriptions, &app_cancel, None).unwrap(),
        event_record(
            &codec,
            &t.subscriptions,
            &examples::payment_declined(),
            None,
        )
        .unwrap(),
    ];
    produce(&b, &subs).await;

    assert!(
        wait_until(Duration::from_secs(60), || leads.handled() == 6
            && leads.dead_lettered() == 1
            && mirror.handled() == 7)
        .await,
        "leads handled {} dead-lettered {}, mirror handled {}",
        leads.handled(),
        leads.dead_lettered(),
        mirror.handled()
    );
    let sf_leads = records_by(&base, "Lead", "L2f_Lead_Id__c").await;
    assert_eq!(
        sf_leads.keys().collect::<Vec<_>>(),
        ["lead-0", "lead-1", "lead-2", "lead-3", "lead-4"],
        "one Lead per lead, none for the incomplete one"
    );
    assert_eq!(sf_leads["lead-0"]["CountryCode"], "GB");
    assert_eq!(sf_leads["lead-1"]["CountryCode"], "DE");
    assert_eq!(sf_leads["lead-0"]["Company"], "Company 0");
    let letters = dead_letters(&b, &t.dlq);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].record.key_str(), "lead-5");
    assert_eq!(letters[0].source_topic, t.leads);
    assert!(
        letters[0].error_message.contains("LeadCaptured.company"),
        "{}",
        letters[0].error_message
    );

    let accounts = records_by(&base, "Zuora__CustomerAccount__c", "Zuora__External_Id__c").await;
    assert_eq!(
        accounts.keys().collect::<Vec<_>>(),
        ["001000000000007AAA-GMBH", "cust_000042-GMBH"]
    );
    assert_eq!(
        accounts["001000000000007AAA-GMBH"]["Zuora__Account__c"],
        "001000000000007AAA"
    );
    assert!(accounts["cust_000042-GMBH"]
        .get("Zuora__Account__c")
        .is_none());
    let sf_subs = records_by(&base, "Zuora__Subscription__c", "Zuora__External_Id__c").await;
    assert_eq!(sf_subs.len(), 2);
    let s1 = &sf_subs["A-S00000001"];
    assert_eq!(
        s1["Zuora__AutoRenew__c"], true,
        "Zuora's flag, not the app's"
    );
    assert_eq!(
        s1["Zuora__Status__c"], "Active",
        "the app's cancellation is not Zuora's"
    );
    let s2 = &sf_subs["A-S00000002"];
    assert_eq!(s2["Zuora__Status__c"], "Cancelled");
    assert_eq!(s2["Cancellation_Reason__c"], "WRONG_SEAT_COUNT");
    let ids: BTreeMap<String, String> = records(&base, "Zuora__CustomerAccount__c")
        .await
        .into_iter()
        .map(|(id, f)| (f["Zuora__External_Id__c"].as_str().unwrap().to_string(), id))
        .collect();
    assert_eq!(
        s2["Zuora__CustomerAccount__c"],
        json!(ids["cust_000042-GMBH"])
    );
    assert!(pipelines
        .list()
        .iter()
        .any(|p| p.connector == "salesforce" && p.name == section["source"].as_str().unwrap()));
    token.cancel();
    run.await.unwrap().unwrap();
    mocks.shutdown().await;
}

fn source(base: &str, t: &Topics, name: &str) -> OpportunitySource {
    OpportunitySource::new(
        client(base),
        Arc::new(Codec::new()),
        Arc::new(Rules::embedded()),
        SourceTopics {
            orders: t.orders.clone(),
            dead_letters: t.dlq.clone(),
        },
        name,
        "USD",
    )
}

const PARTIES: [&str; 3] = ["Direct", "Unauthorized Reseller", "Authorized Reseller"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_won_deals_of_six_countries_and_three_parties_become_orders_exactly_once() {
    let b = require_kafka!();
    let (mocks, base) = mock(|_| {}).await;
    let t = topics(&b).await;
    let countries = ["NL", "DE", "GB", "AU", "US", "JP"];
    let mut accounts: Vec<Value> = countries
        .iter()
        .map(|c| account(&format!("Customer {c}"), c))
        .collect();
    accounts.push(account("Customer UK", "UK"));
    let account_ids = create_all(&base, &accounts).await;
    let mut deals = Vec::new();
    let mut expected = BTreeMap::new();
    for (ci, country) in countries.iter().enumerate() {
        for (pi, party) in PARTIES.iter().enumerate() {
            let n = ci * 3 + pi;
            deals.push(deal(&account_ids[ci], n, party));
            expected.insert(n, (country.to_string(), *party));
        }
    }
    // Two the contract cannot map: a country that is no ISO code, a deal without a SKU.
    deals.push(deal(&account_ids[6], 100, "Direct"));
    let mut no_sku = deal(&account_ids[0], 101, "Direct");
    no_sku["Sku__c"] = Value::Null;
    deals.push(no_sku);
    let ids = create_all(&base, &deals).await;

    let token = CancellationToken::new();
    let ctx = context(&b, &t, token.clone());
    let name = unique("salesforce-opportunities");
    let task = ctx.source(
        "salesforce",
        ctx.source_settings(&name),
        source(&base, &t, &name),
    );
    let stats = ctx.pipelines.source(&name).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || stats.records() == 20).await,
        "source committed {} records",
        stats.records()
    );
    let got = orders(&b, &t.orders);
    assert_eq!(got.len(), 18);
    for o in &got {
        let n = ids.iter().position(|id| *id == o.order_id).unwrap();
        let (country, party) = &expected[&n];
        assert_eq!(o.bill_to_country.as_str(), country, "{}", o.order_id);
        assert_eq!(o.account_id, account_ids[n / 3]);
        assert!(!o.auto_renew, "rule 5: deals start with auto-renew off");
        match *party {
            "Direct" => {
                assert_eq!(o.sales_channel, SalesChannel::SalesAssisted);
                assert_eq!(o.reseller, None);
            }
            p => {
                assert_eq!(o.sales_channel, SalesChannel::Reseller);
                let r = o.reseller.as_ref().unwrap();
                assert_eq!(r.authorized, p == "Authorized Reseller");
                assert_eq!(r.name, format!("Reseller {n} Ltd"));
            }
        }
        assert_eq!(o.envelope.source, SourceSystem::Salesforce);
    }
    let letters = dead_letters(&b, &t.dlq);
    assert_eq!(letters.len(), 2);
    let by_key: BTreeMap<String, &DeadLetter> =
        letters.iter().map(|l| (l.record.key_str(), l)).collect();
    let uk = by_key[&ids[18]];
    assert_eq!(uk.source_topic, "salesforce:Opportunity");
    assert!(
        uk.error_message
            .contains("Account.BillingCountryCode = \"UK\""),
        "{}",
        uk.error_message
    );
    let sku = by_key[&ids[19]];
    assert!(
        sku.error_message.contains("Sku__c = null"),
        "{}",
        sku.error_message
    );
    let deal_json: Value = serde_json::from_slice(sku.record.payload.as_deref().unwrap()).unwrap();
    assert_eq!(deal_json["Id"], json!(ids[19]));
    stop(&token, task).await;
    mocks.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_stopped_and_started_again_produces_every_deal_once() {
    let b = require_kafka!();
    let (mocks, base) = mock(|_| {}).await;
    let t = topics(&b).await;
    let acct = create_all(&base, &[account("Acme BV", "NL")]).await;
    let batch = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| deal(&acct[0], i, PARTIES[i % 3]))
            .collect::<Vec<_>>()
    };
    let mut ids = create_all(&base, &batch(0, 450)).await;
    let name = unique("salesforce-opportunities");

    // First run: its later pages are slowed down, so it is stopped mid-feed, once its first
    // page (200 deals) is committed.
    let more_pages = "/services/data/v62.0/query/";
    fault(
        &base,
        more_pages,
        json!({"kind": "latency", "ms": 500}),
        None,
    )
    .await;
    let token = CancellationToken::new();
    let ctx = context(&b, &t, token.clone());
    let task = ctx.source(
        "salesforce",
        ctx.source_settings(&name),
        source(&base, &t, &name),
    );
    let first = ctx.pipelines.source(&name).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || first.records() >= 200).await,
        "first page not committed: {}",
        first.records()
    );
    stop(&token, task).await;
    let first_run = first.records();
    assert!(first_run < 450, "stopped mid-feed: {first_run}");
    clear_faults(&base).await;

    // Deals won while it was down.
    ids.extend(create_all(&base, &batch(450, 30)).await);

    // Second run: a new process, the same source name and offsets topic.
    let token = CancellationToken::new();
    let ctx = context(&b, &t, token.clone());
    let task = ctx.source(
        "salesforce",
        ctx.source_settings(&name),
        source(&base, &t, &name),
    );
    let second = ctx.pipelines.source(&name).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || first_run + second.records()
            >= 480)
        .await,
        "second run committed {} after {first_run}",
        second.records()
    );
    // A few more polls with nothing new.
    let polls = second.polls();
    assert!(wait_until(Duration::from_secs(10), || second.polls() >= polls + 3).await);
    stop(&token, task).await;

    let got = orders(&b, &t.orders);
    assert_eq!(got.len(), 480, "read_committed count = deals");
    let distinct: BTreeSet<&str> = got.iter().map(|o| o.order_id.as_str()).collect();
    assert_eq!(distinct, ids.iter().map(String::as_str).collect());
    assert_eq!(first_run + second.records(), 480);
    assert!(dead_letters(&b, &t.dlq).is_empty());
    mocks.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_seconds_of_salesforce_outage_end_with_every_lead_delivered_and_none_dead_lettered()
{
    let b = require_kafka!();
    let (mocks, base) = mock(|_| {}).await;
    let t = topics(&b).await;
    let token = CancellationToken::new();
    let ctx = context(&b, &t, token.clone());
    let group = unique("g-sf-leads");
    let sink = Arc::new(LeadSink::new(client(&base), ctx.codec.clone(), 200));
    let task = ctx.sink("salesforce", &group, vec![t.leads.clone()], sink.clone());
    let stats = ctx
        .pipelines
        .wait_sink(&group, Duration::from_secs(5))
        .await
        .unwrap();

    // One lead first, so the group has joined before the outage.
    let codec = Codec::new();
    produce(
        &b,
        &[event_record(&codec, &t.leads, &lead(0, true), None).unwrap()],
    )
    .await;
    assert!(wait_until(Duration::from_secs(30), || stats.handled() == 1).await);

    // Salesforce down: 503 for ~15 s, then every session refused (401 even after a fresh
    // login) for ~15 s, then healthy.
    let data = "/services/data";
    fault(
        &base,
        data,
        json!({"kind": "status", "status": 503, "retry_after": 1}),
        None,
    )
    .await;
    let leads: Vec<_> = (1..=60)
        .map(|i| event_record(&codec, &t.leads, &lead(i, true), None).unwrap())
        .collect();
    produce(&b, &leads).await;
    let max_waiting = Arc::new(AtomicI64::new(0));
    let watch = {
        let (stats, max) = (stats.clone(), max_waiting.clone());
        tokio::spawn(async move {
            let end = Instant::now() + Duration::from_secs(40);
            while Instant::now() < end {
                max.fetch_max(stats.waiting(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(
        stats.waiting() > 0,
        "a partition waits while Salesforce answers 503"
    );
    clear_faults(&base).await;
    fault(&base, data, json!({"kind": "status", "status": 401}), None).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(
        stats.waiting() > 0,
        "a partition waits while Salesforce refuses the session"
    );
    assert_eq!(stats.handled(), 1, "nothing delivered during the outage");
    let refused = faults(&base).await[0]["fired"].as_u64().unwrap();
    assert!(refused >= 2, "the 401 phase was seen: {refused}");
    clear_faults(&base).await;

    assert!(
        wait_until(Duration::from_secs(60), || stats.handled() == 61).await,
        "handled {}",
        stats.handled()
    );
    watch.abort();
    assert!(max_waiting.load(Ordering::Relaxed) > 0);
    assert!(stats.unavailable() >= 1, "the outage was seen");
    assert_eq!(stats.dead_lettered(), 0);
    assert!(dead_letters(&b, &t.dlq).is_empty(), "no dead letters");
    assert_eq!(
        records(&base, "Lead").await.len(),
        61,
        "every lead delivered"
    );
    assert!(sink.stats().unavailable() >= 1);
    stop(&token, task).await;
    mocks.shutdown().await;
}

/// Flow g, Salesforce's part, through the registered connector on the real broker: a report
/// whose billable users exceed the seats → a true-up flagged once; the same report
/// redelivered and reported again → nothing new; a report within the seats → nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_above_the_seats_is_flagged_as_a_true_up_once_and_within_the_seats_never() {
    let b = require_kafka!();
    let (mocks, base) = mock(|_| {}).await;
    let t = topics(&b).await;
    let group = unique("g-sf-true-ups");
    let section = json!({
        "login_url": base,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": USERNAME,
        "password": PASSWORD,
        "poll_interval": "200ms",
        "source": unique("salesforce-opportunities"),
        "orders_topic": t.orders,
        "leads_topic": t.leads,
        "subscriptions_topic": t.subscriptions,
        "usage_topic": t.usage,
        "licenses_topic": t.licenses,
        "leads_group": unique("g-sf-leads"),
        "mirror_group": unique("g-sf-mirror"),
        "true_up_group": group,
    });
    let connector = (REGISTRATION.build)(&section).unwrap();
    assert!(connector.topics().contains(&t.usage));
    let token = CancellationToken::new();
    let ctx = context(&b, &t, token.clone());
    let pipelines = ctx.pipelines.clone();
    let run = tokio::spawn(connector.start(ctx));
    let sink = pipelines
        .wait_sink(&group, Duration::from_secs(10))
        .await
        .unwrap();
    let codec = Codec::new();
    let report = |sub: &str, day: u32, billable: i32, seats: i32| {
        let mut u = examples::usage_reported();
        u.envelope.event_id = uuid::Uuid::new_v4();
        u.subscription_id = sub.into();
        u.measured_on = chrono::NaiveDate::from_ymd_opt(2027, 6, day).unwrap();
        u.active_users = billable + 3;
        u.billable_users = billable;
        u.seats = seats;
        u
    };
    let above = report("A-S00000070", 1, 33, 30);
    let first = event_record(&codec, &t.usage, &above, None).unwrap();
    produce(&b, std::slice::from_ref(&first)).await;
    assert!(
        wait_until(Duration::from_secs(60), || sink.handled() == 1).await,
        "true-up sink handled {}",
        sink.handled()
    );
    let flagged = records_by(&base, "L2f_True_Up__c", "L2f_True_Up_Id__c").await;
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged["A-S00000070:2027-06"]["True_Up_Seats__c"], 3);
    let created_at = flagged["A-S00000070:2027-06"].clone();

    // The identical report redelivered, the same figures reported again, and a report of
    // another subscription within its seats.
    let mut again = above.clone();
    again.envelope.event_id = uuid::Uuid::new_v4();
    let records = vec![
        first,
        event_record(&codec, &t.usage, &again, None).unwrap(),
        event_record(&codec, &t.usage, &report("A-S00000071", 2, 30, 30), None).unwrap(),
    ];
    produce(&b, &records).await;
    assert!(
        wait_until(Duration::from_secs(60), || sink.handled() == 4).await,
        "true-up sink handled {}",
        sink.handled()
    );
    let flagged = records_by(&base, "L2f_True_Up__c", "L2f_True_Up_Id__c").await;
    assert_eq!(
        flagged.keys().collect::<Vec<_>>(),
        ["A-S00000070:2027-06"],
        "nothing new"
    );
    for f in ["True_Up_Seats__c", "Billable_Users__c", "Seats_Bought__c"] {
        assert_eq!(flagged["A-S00000070:2027-06"][f], created_at[f], "{f}");
    }
    assert!(dead_letters(&b, &t.dlq).is_empty());
    token.cancel();
    run.await.unwrap().unwrap();
    mocks.shutdown().await;
}
