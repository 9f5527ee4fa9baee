//! The client, the sinks and the source over real HTTP against the Salesforce mock (no
//! Kafka): each misbehaviour is made by the mock itself (fault rules, its API cap, its
//! External ID declarations, its query locators) and the verdict is checked — unavailable
//! (wait) with the right hint, transient, or permanent with a reason naming the field —,
//! batches go in one collections call with one outcome per record, and the same record
//! twice is one Salesforce record.
//!
//! Shapes: REST API developer guide, "Status Codes and Error Responses" (errorcodes.htm),
//! "sObject Collections Upsert" (resources_composite_sobjects_collections_upsert.htm),
//! "Query More Results" (resources_query_more_results.htm).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use l2f_bus::dlq::DeadLetter;
use l2f_bus::source::Source;
use l2f_bus::{Handler, HandlerError, Record};
use l2f_connector_kit::ClientError;
use l2f_connector_salesforce::verdict::{verdict, Answer};
use l2f_connector_salesforce::{
    LeadSink, MirrorSink, Mirrored, OpportunitySource, SourceTopics, TrueUp, TrueUpSink, Upserted,
};
use l2f_contracts::events::{OrderPlaced, SourceSystem, UsageReported};
use l2f_contracts::examples;
use l2f_contracts::Codec;
use l2f_rules::Rules;
use serde_json::{json, Value};

fn lead_sink(base: &str, secret: &str) -> LeadSink {
    let cfg = config(base, secret);
    LeadSink::new(
        Arc::new(cfg.client().unwrap()),
        Arc::new(Codec::new()),
        cfg.batch_size,
    )
}

async fn one(s: &LeadSink, r: &Record) -> Result<Upserted, HandlerError> {
    s.push(std::slice::from_ref(r)).await.remove(0)
}

fn unavailable<T: std::fmt::Debug>(r: Result<T, HandlerError>) -> (String, Option<Duration>) {
    match r {
        Err(HandlerError::Unavailable {
            message,
            retry_after,
        }) => (message, retry_after),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

fn permanent<T: std::fmt::Debug>(r: Result<T, HandlerError>) -> String {
    match r {
        Err(HandlerError::Permanent { message }) => message,
        other => panic!("expected permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn http_faults_make_the_lead_wait_and_the_next_push_goes_through() {
    let (running, base) = mock(|_| {}).await;
    let s = lead_sink(&base, CLIENT_SECRET);
    let r = read(&lead(1, true), 42);
    let upsert = "/services/data/v62.0/composite/sobjects/Lead";

    fault(
        &base,
        upsert,
        json!({"kind": "status", "status": 503, "retry_after": 7}),
        Some(1),
    )
    .await;
    let (m, hint) = unavailable(one(&s, &r).await);
    assert_eq!(hint, Some(Duration::from_secs(7)), "{m}");
    assert!(m.contains("503"), "{m}");

    fault(
        &base,
        upsert,
        json!({"kind": "status", "status": 429}),
        Some(1),
    )
    .await;
    let (m, hint) = unavailable(one(&s, &r).await);
    assert_eq!(hint, None, "{m}");
    assert!(m.contains("429"), "{m}");

    fault(&base, upsert, json!({"kind": "reset"}), Some(1)).await;
    let (m, _) = unavailable(one(&s, &r).await);
    assert!(m.contains("did not complete"), "{m}");

    fault(
        &base,
        upsert,
        json!({"kind": "latency", "ms": 1500}),
        Some(1),
    )
    .await;
    let (m, _) = unavailable(one(&s, &r).await);
    assert!(m.contains("timed out"), "{m}");

    let created = one(&s, &r).await.unwrap();
    assert!(matches!(created, Upserted::Created(_)), "{created:?}");
    let again = one(&s, &r).await.unwrap();
    assert_eq!(again, Upserted::Updated(created.id().to_string()));
    let leads = records_by(&base, "Lead", "L2f_Lead_Id__c").await;
    assert_eq!(leads.len(), 1, "a redelivered lead is one Salesforce Lead");
    let l = &leads["lead-1"];
    assert_eq!(l["Email"], "person1@example.com");
    assert_eq!(l["CountryCode"], "GB");
    assert_eq!(l["LeadSource"], "Web Form");
    assert_eq!(l["Status"], "Open - Not Contacted");
    assert_eq!(s.stats().unavailable(), 4);
    assert_eq!((s.stats().created(), s.stats().updated()), (1, 1));
    running.shutdown().await;
}

#[tokio::test]
async fn a_spent_api_allocation_is_403_request_limit_exceeded_and_makes_leads_wait() {
    let (running, base) = mock(|c| c.daily_api_cap = 0).await;
    let s = lead_sink(&base, CLIENT_SECRET);
    let (m, _) = unavailable(one(&s, &read(&lead(1, true), 0)).await);
    assert!(
        m.contains("403") && m.contains("REQUEST_LIMIT_EXCEEDED"),
        "{m}"
    );
    assert!(!s.probe().await, "the probe sees the allocation spent");
    assert!(records(&base, "Lead").await.is_empty());
    running.shutdown().await;
}

#[tokio::test]
async fn a_session_refused_after_a_fresh_login_makes_leads_wait() {
    let (running, base) = mock(|_| {}).await;
    let s = lead_sink(&base, CLIENT_SECRET);
    fault(
        &base,
        "/services/data",
        json!({"kind": "status", "status": 401}),
        None,
    )
    .await;
    let (m, _) = unavailable(one(&s, &read(&lead(1, true), 0)).await);
    assert!(m.contains("credentials") && m.contains("401"), "{m}");
    let fired = faults(&base).await[0]["fired"].as_u64().unwrap();
    assert_eq!(fired, 2, "one call, then one more with a fresh session");
    assert!(!s.probe().await);
    clear_faults(&base).await;
    assert!(s.probe().await, "the probe sees Salesforce answer again");
    assert!(one(&s, &read(&lead(1, true), 0)).await.is_ok());
    running.shutdown().await;
}

#[tokio::test]
async fn refused_credentials_make_the_lead_wait_and_are_never_printed() {
    let (running, base) = mock(|_| {}).await;
    let wrong = "wrong-secret-do-not-print";
    let s = lead_sink(&base, wrong);
    let (m, _) = unavailable(one(&s, &read(&lead(1, true), 0)).await);
    assert!(m.contains("refuses the connector's credentials"), "{m}");
    assert!(m.contains("invalid_client"), "{m}");
    assert!(!m.contains(wrong) && !m.contains(PASSWORD), "{m}");
    assert!(!s.probe().await, "the probe must see the refusal");
    assert!(lead_sink(&base, CLIENT_SECRET).probe().await);
    running.shutdown().await;
}

#[tokio::test]
async fn a_batch_is_one_collections_call_with_one_outcome_per_lead() {
    let (running, base) = mock(|_| {}).await;
    let s = lead_sink(&base, CLIENT_SECRET);
    let mut garbage = read(&lead(9, true), 3);
    garbage.payload = Some(b"garbage".to_vec());
    let batch = vec![
        read(&lead(1, true), 0),
        read(&lead(2, false), 1),
        garbage,
        read(&lead(3, true), 2),
    ];
    let out = s.push(&batch).await;
    assert_eq!(out.len(), 4);
    assert!(matches!(out[0], Ok(Upserted::Created(_))), "{:?}", out[0]);
    let m = permanent(out[1].clone());
    assert!(
        m.contains("LeadCaptured.company") && m.contains("rule 2"),
        "{m}"
    );
    assert!(permanent(out[2].clone()).contains("not a decodable"));
    assert!(matches!(out[3], Ok(Upserted::Created(_))), "{:?}", out[3]);
    assert_eq!(s.stats().calls(), 1, "the two ready leads went in one call");
    let leads = records_by(&base, "Lead", "L2f_Lead_Id__c").await;
    assert_eq!(
        leads.keys().collect::<Vec<_>>(),
        ["lead-1", "lead-3"],
        "the incomplete lead reached no Salesforce record"
    );
    let again = s.push(&batch).await;
    assert!(matches!(again[0], Ok(Upserted::Updated(_))));
    assert!(matches!(again[3], Ok(Upserted::Updated(_))));
    assert_eq!(s.stats().calls(), 2);
    assert_eq!(records(&base, "Lead").await.len(), 2);
    running.shutdown().await;
}

#[tokio::test]
async fn more_than_200_leads_take_one_call_per_200() {
    let (running, base) = mock(|_| {}).await;
    let s = lead_sink(&base, CLIENT_SECRET);
    let batch: Vec<Record> = (0..401).map(|i| read(&lead(i, true), i as i64)).collect();
    let out = s.push(&batch).await;
    assert!(out.iter().all(|r| matches!(r, Ok(Upserted::Created(_)))));
    assert_eq!(s.stats().calls(), 3);
    assert_eq!(records(&base, "Lead").await.len(), 401);
    running.shutdown().await;
}

#[tokio::test]
async fn external_ids_are_sent_once_per_call_or_salesforce_fails_them_all() {
    let (running, base) = mock(|_| {}).await;
    // Straight to the API: two records with one external id are both DUPLICATE_VALUE.
    let c = client(&base);
    let body = |email: &str| {
        json!({"attributes": {"type": "Lead"}, "L2f_Lead_Id__c": "lead-dup",
               "LastName": "Dup", "Company": "Dup Inc", "Email": email})
    };
    let result = c
        .upsert_collection(
            "Lead",
            "L2f_Lead_Id__c",
            &[body("a@example.com"), body("b@example.com")],
        )
        .await;
    for i in 0..2 {
        let m = permanent(verdict(Answer::of(&result, i)));
        assert!(
            m.contains("DUPLICATE_VALUE") && m.contains("L2f_Lead_Id__c"),
            "{m}"
        );
    }
    // The sink dedupes: the same lead twice in one push is one record, both outcomes done.
    let s = lead_sink(&base, CLIENT_SECRET);
    let mut second = lead(7, true);
    second.email = "later@example.com".into();
    let out = s.push(&[read(&lead(7, true), 0), read(&second, 1)]).await;
    let (a, b) = (out[0].clone().unwrap(), out[1].clone().unwrap());
    assert_eq!(a, b);
    assert_eq!(s.stats().calls(), 1);
    let leads = records_by(&base, "Lead", "L2f_Lead_Id__c").await;
    assert_eq!(
        leads["lead-7"]["Email"], "later@example.com",
        "the last one wins"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn an_undeclared_external_id_is_permanent_and_names_the_field() {
    let (running, base) = mock(|c| {
        c.external_ids.remove("Lead");
    })
    .await;
    let m = permanent(one(&lead_sink(&base, CLIENT_SECRET), &read(&lead(1, true), 0)).await);
    assert!(
        m.contains("INVALID_FIELD") && m.contains("L2f_Lead_Id__c"),
        "{m}"
    );
    assert!(m.contains("HTTP 400"), "{m}");
    running.shutdown().await;
}

#[tokio::test]
async fn the_client_pages_through_next_records_url_and_gets_by_id() {
    let (running, base) = mock(|_| {}).await;
    let c = client(&base);
    let ids = create_all(
        &base,
        &(0..450)
            .map(|i| json!({"attributes": {"type": "Lead"}, "LastName": format!("L{i}"), "Company": "C"}))
            .collect::<Vec<_>>(),
    )
    .await;
    let first = c
        .query("SELECT Id FROM Lead ORDER BY Id ASC")
        .await
        .unwrap();
    assert_eq!(
        (first.records.len(), first.done, first.total_size),
        (200, false, 450)
    );
    assert!(first
        .next_records_url
        .as_deref()
        .unwrap()
        .starts_with("/services/data/v62.0/query/"));
    let all = c
        .query_all("SELECT Id FROM Lead ORDER BY Id ASC")
        .await
        .unwrap();
    let got: Vec<&str> = all.iter().map(|r| r["Id"].as_str().unwrap()).collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let one = c.get("Lead", &ids[7]).await.unwrap();
    assert_eq!(one["LastName"], "L7");
    let e = c.get("Lead", "00Q999999999999AAA").await.unwrap_err();
    assert!(matches!(e, ClientError::Api { status: 404, .. }), "{e}");
    let usage = c.api_usage().expect("Sforce-Limit-Info read");
    assert!(usage.0 >= 4 && usage.1 == 100_000, "{usage:?}");
    assert_eq!(
        c.org_id().await.unwrap().as_deref(),
        Some("00DL2F000000001AAA")
    );
    running.shutdown().await;
}

fn source(base: &str) -> OpportunitySource {
    OpportunitySource::new(
        client(base),
        Arc::new(Codec::new()),
        Arc::new(Rules::embedded()),
        SourceTopics {
            orders: "orders".into(),
            dead_letters: "dead-letters".into(),
        },
        "salesforce-opportunities",
        "USD",
    )
}

/// Polls until the source reports nothing more; answers every record and the last cursor.
async fn drain(
    s: &mut OpportunitySource,
    mut cursor: Value,
) -> (Vec<l2f_bus::OutRecord>, Value, usize) {
    let mut out = Vec::new();
    let mut polls = 0;
    loop {
        let c = (!cursor.is_null()).then_some(&cursor);
        let p = s.poll(c).await.unwrap();
        polls += 1;
        out.extend(p.records);
        cursor = p.cursor;
        s.committed(&cursor);
        if !p.more {
            return (out, cursor, polls);
        }
    }
}

fn orders(records: &[l2f_bus::OutRecord]) -> Vec<OrderPlaced> {
    let codec = Codec::new();
    records
        .iter()
        .filter(|r| r.topic == "orders")
        .map(|r| codec.decode(r.payload.as_deref().unwrap()).unwrap())
        .collect()
}

async fn seed_deals(base: &str, n: usize) -> Vec<String> {
    let acct = create_all(base, &[account("Acme GmbH", "DE")]).await;
    create_all(
        base,
        &(0..n)
            .map(|i| deal(&acct[0], i, "Direct"))
            .collect::<Vec<_>>(),
    )
    .await
}

#[tokio::test]
async fn the_source_reads_every_won_deal_once_in_pages_of_200_and_resumes_from_its_cursor() {
    let (running, base) = mock(|_| {}).await;
    let deals = seed_deals(&base, 450).await;
    // Not won: never read.
    let mut open = deal("001000000000001AAA", 999, "Direct");
    open["StageName"] = json!("Negotiation");
    create_all(&base, &[open]).await;
    let mut s = source(&base);
    let (records, cursor, polls) = drain(&mut s, Value::Null).await;
    assert_eq!(polls, 3, "450 deals are three pages");
    let got: Vec<String> = orders(&records).into_iter().map(|o| o.order_id).collect();
    assert_eq!(got, deals, "every won deal once, in SystemModstamp order");
    assert_eq!(cursor["id"], json!(deals[449]));

    // Nothing new: the same cursor, nothing read.
    let p = s.poll(Some(&cursor)).await.unwrap();
    assert!(p.records.is_empty() && !p.more);
    assert_eq!(p.cursor, cursor);

    // A fresh source (a restart) from the cursor reads only what changed after it.
    let c = client(&base);
    c.update("Opportunity", &deals[3], &json!({"Amount": 5000}))
        .await
        .unwrap();
    let mut restarted = source(&base);
    let (records, _, _) = drain(&mut restarted, cursor).await;
    let again = orders(&records);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].order_id, deals[3]);
    assert_eq!(again[0].total.amount.normalize().to_string(), "5000");
    running.shutdown().await;
}

#[tokio::test]
async fn an_expired_query_locator_is_read_again_from_the_cursor() {
    let (running, base) = mock(|c| c.query_locator_ttl_secs = 0).await;
    let deals = seed_deals(&base, 250).await;
    let mut s = source(&base);
    let (records, _, _) = drain(&mut s, Value::Null).await;
    let got: Vec<String> = orders(&records).into_iter().map(|o| o.order_id).collect();
    assert_eq!(got, deals);
    running.shutdown().await;
}

#[tokio::test]
async fn a_page_whose_transaction_aborted_is_read_again_not_skipped() {
    let (running, base) = mock(|_| {}).await;
    let deals = seed_deals(&base, 250).await;
    let mut s = source(&base);
    let first = s.poll(None).await.unwrap();
    assert!(first.more);
    // The loop aborted the transaction: it polls again from the old cursor (none).
    let again = s.poll(None).await.unwrap();
    let ids = |r: &[l2f_bus::OutRecord]| {
        orders(r)
            .into_iter()
            .map(|o| o.order_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&again.records), ids(&first.records));
    let rest = s.poll(Some(&again.cursor)).await.unwrap();
    assert!(!rest.more);
    let mut all = ids(&again.records);
    all.extend(ids(&rest.records));
    assert_eq!(all, deals);
    running.shutdown().await;
}

#[tokio::test]
async fn an_unmappable_deal_is_a_dead_letter_naming_the_field_and_the_cursor_moves_past_it() {
    let (running, base) = mock(|_| {}).await;
    let acct = create_all(
        &base,
        &[account("Acme UK", "UK"), account("Acme Ltd", "GB")],
    )
    .await;
    let mut bad_party = deal(&acct[1], 2, "Direct");
    bad_party["Party__c"] = json!("Partner");
    let ids = create_all(
        &base,
        &[
            deal(&acct[0], 1, "Direct"),
            bad_party,
            deal(&acct[1], 3, "Authorized Reseller"),
        ],
    )
    .await;
    let mut s = source(&base);
    let p = s.poll(None).await.unwrap();
    assert_eq!(p.records.len(), 3);
    assert_eq!(
        p.cursor["id"],
        json!(ids[2]),
        "the cursor moved past the bad deals"
    );
    let letters: Vec<DeadLetter> = p
        .records
        .iter()
        .filter(|r| r.topic == "dead-letters")
        .map(|r| {
            DeadLetter::parse(Record {
                topic: r.topic.clone(),
                partition: 0,
                offset: 0,
                key: r.key.clone(),
                payload: r.payload.clone(),
                headers: r.headers.clone(),
                timestamp_ms: None,
            })
            .unwrap()
        })
        .collect();
    assert_eq!(letters.len(), 2);
    let uk = &letters[0];
    assert_eq!(uk.source_topic, "salesforce:Opportunity");
    assert_eq!(uk.error_class, "permanent");
    assert_eq!(uk.consumer_group, "salesforce-opportunities");
    assert_eq!(uk.record.key_str(), ids[0]);
    assert!(
        uk.error_message.contains("Account.BillingCountryCode")
            && uk.error_message.contains("\"UK\""),
        "{}",
        uk.error_message
    );
    let deal_json: Value = serde_json::from_slice(uk.record.payload.as_deref().unwrap()).unwrap();
    assert_eq!(
        deal_json["Id"],
        json!(ids[0]),
        "the value is the deal's JSON"
    );
    assert!(letters[1].error_message.contains("Party__c = \"Partner\""));
    let o = orders(&p.records);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].reseller.as_ref().map(|r| r.authorized), Some(true));
    assert_eq!(o[0].bill_to_country.as_str(), "GB");
    running.shutdown().await;
}

#[tokio::test]
async fn an_outage_of_the_query_fails_the_poll_as_unavailable() {
    let (running, base) = mock(|_| {}).await;
    seed_deals(&base, 1).await;
    let mut s = source(&base);
    fault(
        &base,
        "/services/data/v62.0/query",
        json!({"kind": "status", "status": 503}),
        Some(1),
    )
    .await;
    let e = s.poll(None).await.unwrap_err();
    assert_eq!(e.class(), "unavailable", "{e}");
    assert_eq!(s.poll(None).await.unwrap().records.len(), 1);
    running.shutdown().await;
}

fn zuora<E: Clone>(mut e: E, set: impl FnOnce(&mut E)) -> E {
    set(&mut e);
    e
}

#[tokio::test]
async fn the_mirror_upserts_accounts_once_then_subscriptions_with_their_lookup() {
    let (running, base) = mock(|_| {}).await;
    let cfg = config(&base, CLIENT_SECRET);
    let s = MirrorSink::new(Arc::new(cfg.client().unwrap()), Arc::new(Codec::new()), 200);
    let created = |sub: &str| {
        zuora(examples::subscription_created(), |e| {
            e.subscription_id = sub.into();
            e.account_id = "001000000000007AAA".into();
            e.envelope.event_id = uuid::Uuid::new_v4();
        })
    };
    let from_app = zuora(examples::auto_renew_changed(), |e| {
        e.subscription_id = "A-S00000003".into();
    });
    let out = s
        .push(&[
            read(&created("A-S00000001"), 0),
            read(&created("A-S00000002"), 1),
            read(&from_app, 2),
        ])
        .await;
    assert!(
        matches!(out[0], Ok(Mirrored::Upserted(Upserted::Created(_)))),
        "{:?}",
        out[0]
    );
    assert!(
        matches!(out[1], Ok(Mirrored::Upserted(Upserted::Created(_)))),
        "{:?}",
        out[1]
    );
    assert!(
        matches!(out[2], Ok(Mirrored::Skipped)),
        "the customers app's own flag is not Zuora's: {:?}",
        out[2]
    );
    assert_eq!(
        s.stats().calls(),
        2,
        "one call for the account, one for both subscriptions"
    );
    let accounts = records(&base, "Zuora__CustomerAccount__c").await;
    assert_eq!(accounts.len(), 1);
    let (account_sf_id, a) = accounts.iter().next().unwrap();
    assert_eq!(a["Zuora__External_Id__c"], "001000000000007AAA-GMBH");
    assert_eq!(a["Zuora__Account__c"], "001000000000007AAA");
    assert_eq!(a["Entity__c"], "GITLAB_GMBH");
    assert_eq!(a["Billing_Batch__c"], "BATCH4");
    assert_eq!(a["Communication_Profile__c"], "DEFAULT");
    let subs = records_by(&base, "Zuora__Subscription__c", "Zuora__External_Id__c").await;
    assert_eq!(subs.len(), 2);
    for n in ["A-S00000001", "A-S00000002"] {
        assert_eq!(subs[n]["Zuora__CustomerAccount__c"], json!(account_sf_id));
        assert_eq!(subs[n]["Zuora__Status__c"], "Active");
        assert_eq!(subs[n]["Seats__c"], 25);
    }

    // Zuora's own changes follow; the cancellation keeps its reason; the record is the same.
    let auto = zuora(examples::auto_renew_changed(), |e| {
        e.subscription_id = "A-S00000001".into();
        e.envelope.source = SourceSystem::Zuora;
        e.flag_owner = SourceSystem::Zuora;
        e.auto_renew = true;
    });
    let cancel = zuora(examples::subscription_cancelled(), |e| {
        e.subscription_id = "A-S00000002".into();
    });
    let out = s.push(&[read(&auto, 3), read(&cancel, 4)]).await;
    assert!(
        out.iter()
            .all(|r| matches!(r, Ok(Mirrored::Upserted(Upserted::Updated(_))))),
        "{out:?}"
    );
    assert_eq!(
        s.stats().calls(),
        3,
        "no account call when no event names one"
    );
    let after = records_by(&base, "Zuora__Subscription__c", "Zuora__External_Id__c").await;
    assert_eq!(after.len(), 2);
    assert_eq!(after["A-S00000001"]["Zuora__AutoRenew__c"], true);
    assert_eq!(after["A-S00000002"]["Zuora__Status__c"], "Cancelled");
    assert_eq!(
        after["A-S00000002"]["Cancellation_Reason__c"],
        "WRONG_SEAT_COUNT"
    );
    assert_eq!(
        after["A-S00000002"]["Zuora__CustomerAccount__c"],
        json!(account_sf_id),
        "the lookup stays"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_mirror_account_that_fails_holds_back_its_subscription() {
    let (running, base) = mock(|c| {
        c.external_ids.remove("Zuora__CustomerAccount__c");
    })
    .await;
    let cfg = config(&base, CLIENT_SECRET);
    let s = MirrorSink::new(Arc::new(cfg.client().unwrap()), Arc::new(Codec::new()), 200);
    let out = s.push(&[read(&examples::subscription_created(), 0)]).await;
    let m = permanent(out[0].clone());
    assert!(m.contains("Zuora__External_Id__c"), "{m}");
    assert!(records(&base, "Zuora__Subscription__c").await.is_empty());
    running.shutdown().await;
}

#[tokio::test]
async fn an_expired_session_is_refreshed_and_the_upsert_goes_through() {
    let (running, base) = mock(|_| {}).await;
    let s = lead_sink(&base, CLIENT_SECRET);
    one(&s, &read(&lead(1, true), 1)).await.unwrap();
    let expired = reqwest::Client::new()
        .post(format!("{base}/__admin/tokens/expire"))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status().as_u16(), 204);
    one(&s, &read(&lead(2, true), 2))
        .await
        .expect("a fresh session after the 401");
    running.shutdown().await;
}

fn usage(subscription: &str, day: (i32, u32, u32), billable: i32, seats: i32) -> UsageReported {
    let mut u = examples::usage_reported();
    u.envelope.event_id = uuid::Uuid::new_v4();
    u.subscription_id = subscription.into();
    u.measured_on = chrono::NaiveDate::from_ymd_opt(day.0, day.1, day.2).unwrap();
    u.active_users = billable + 4;
    u.billable_users = billable;
    u.seats = seats;
    u
}

/// Flow g over HTTP: billable users above the seats bought → one `L2f_True_Up__c` for the
/// subscription's month; the same report again (redelivered, or reported anew) flags
/// nothing new; a report within the seats writes nothing; another month is another true-up.
#[tokio::test]
async fn a_true_up_is_flagged_once_per_subscription_and_period_and_never_within_the_seats() {
    let (running, base) = mock(|_| {}).await;
    let cfg = config(&base, CLIENT_SECRET);
    let s = TrueUpSink::new(
        Arc::new(cfg.client().unwrap()),
        Arc::new(Codec::new()),
        cfg.batch_size,
    );
    let above = usage("A-S00000042", (2026, 3, 17), 30, 25);
    let first = s.push(&[read(&above, 1)]).await.remove(0).unwrap();
    let TrueUp::Flagged(Upserted::Created(id)) = first else {
        panic!("expected a new true-up, got {first:?}")
    };
    let t = records_by(&base, "L2f_True_Up__c", "L2f_True_Up_Id__c").await;
    assert_eq!(t.len(), 1);
    let r = &t["A-S00000042:2026-03"];
    assert_eq!(r["True_Up_Seats__c"], 5, "{r}");
    assert_eq!(r["Billable_Users__c"], 30);
    assert_eq!(r["Seats_Bought__c"], 25);
    assert_eq!(r["Subscription_Number__c"], "A-S00000042");

    // Redelivered, and the same figures reported again later in the month: the same record.
    let mut again = above.clone();
    again.envelope.event_id = uuid::Uuid::new_v4();
    again.measured_on = chrono::NaiveDate::from_ymd_opt(2026, 3, 30).unwrap();
    let out = s.push(&[read(&above, 1), read(&again, 2)]).await;
    for o in out {
        assert_eq!(o.unwrap(), TrueUp::Flagged(Upserted::Updated(id.clone())));
    }
    // Within the seats (exactly at, and below): nothing.
    for billable in [25, 3] {
        let within = usage("A-S00000043", (2026, 3, 17), billable, 25);
        assert_eq!(
            s.push(&[read(&within, 3)]).await.remove(0).unwrap(),
            TrueUp::Nothing
        );
    }
    let t = records_by(&base, "L2f_True_Up__c", "L2f_True_Up_Id__c").await;
    assert_eq!(t.len(), 1, "nothing new: {t:?}");
    // The next month is its own period.
    let april = usage("A-S00000042", (2026, 4, 2), 27, 25);
    let TrueUp::Flagged(Upserted::Created(_)) = s.push(&[read(&april, 4)]).await.remove(0).unwrap()
    else {
        panic!("a new period is a new true-up")
    };
    assert_eq!(
        records_by(&base, "L2f_True_Up__c", "L2f_True_Up_Id__c").await["A-S00000042:2026-04"]
            ["True_Up_Seats__c"],
        2
    );
    // Not a usage report: nothing; an undecodable record: permanent.
    assert_eq!(
        s.push(&[read(&lead(1, true), 5)]).await.remove(0).unwrap(),
        TrueUp::Nothing
    );
    let mut bad = read(&usage("A-S00000044", (2026, 3, 1), 30, 25), 6);
    bad.payload = Some(b"not avro".to_vec());
    permanent(s.push(&[bad]).await.remove(0));
    // Salesforce down: the report waits.
    fault(
        &base,
        "/services/data/v62.0/composite/sobjects/L2f_True_Up__c",
        json!({"kind": "status", "status": 503}),
        Some(1),
    )
    .await;
    let may = usage("A-S00000042", (2026, 5, 2), 27, 25);
    unavailable(s.push(&[read(&may, 7)]).await.remove(0));
    assert_eq!(
        (
            s.stats().created(),
            s.stats().updated(),
            s.stats().skipped()
        ),
        (2, 2, 3)
    );
    running.shutdown().await;
}
