//! What the HTTP and end-to-end tests share: the Salesforce mock in-process on loopback, the
//! connector's configuration against it, and helpers that set up an org the way a Salesforce
//! admin would (accounts, closed-won deals) and read back what the connector wrote.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use l2f_bus::Record;
use l2f_connector_kit::record::event_record;
use l2f_connector_salesforce::{SalesforceClient, SalesforceConfig};
use l2f_contracts::events::LeadCaptured;
use l2f_contracts::examples::lead_captured;
use l2f_contracts::record::Keyed;
use l2f_contracts::Codec;
use l2f_mocks::salesforce::Config;
use l2f_mocks::server::{self, MocksConfig, Running};
use l2f_secrets::SecretRef;
use serde_json::{json, Value};

/// The mock's default credentials (`l2f_mocks::salesforce::Config::default`).
pub const CLIENT_ID: &str = "l2f-client-id";
pub const CLIENT_SECRET: &str = "l2f-client-secret";
pub const USERNAME: &str = "integration@l2f.example";
pub const PASSWORD: &str = "l2f-password";

/// The Salesforce mock alone, over plain HTTP, with `tweak` applied to its configuration.
pub async fn mock(tweak: impl FnOnce(&mut Config)) -> (Running, String) {
    let mut mc = MocksConfig::default();
    mc.only(&["salesforce".to_string()]).unwrap();
    mc.without_https();
    tweak(&mut mc.salesforce);
    let running = server::start(&mc).await.unwrap();
    let base = running.endpoint("salesforce").unwrap().http.clone();
    (running, base)
}

/// The connector's configuration against the mock at `base` (password grant).
pub fn config(base: &str, secret: &str) -> SalesforceConfig {
    let mut cfg = SalesforceConfig::new(base, CLIENT_ID, SecretRef::Inline(secret.into()))
        .with_user(USERNAME, SecretRef::Inline(PASSWORD.into()));
    cfg.request_timeout = Duration::from_millis(800);
    cfg
}

/// A client of the mock at `base`.
pub fn client(base: &str) -> Arc<SalesforceClient> {
    Arc::new(config(base, CLIENT_SECRET).client().unwrap())
}

/// `record` as the consumer loop hands it to a sink.
pub fn as_read(out: l2f_bus::OutRecord, offset: i64) -> Record {
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

/// The record of `event` on its catalog topic, as read.
pub fn read<E: Keyed>(event: &E, offset: i64) -> Record {
    as_read(
        event_record(&Codec::new(), E::TOPIC, event, None).unwrap(),
        offset,
    )
}

/// Lead `i` (the golden example with its own ids and email); an incomplete one lacks its
/// company.
pub fn lead(i: usize, complete: bool) -> LeadCaptured {
    let mut l = lead_captured();
    l.envelope.event_id = uuid::Uuid::new_v4();
    l.lead_id = format!("lead-{i}");
    l.email = format!("person{i}@example.com");
    l.first_name = Some(format!("First{i}"));
    l.last_name = Some(format!("Last{i}"));
    l.company = complete.then(|| format!("Company {i}"));
    l
}

/// Adds a fault rule to the mock (`times` none: until cleared).
pub async fn fault(base: &str, path: &str, action: Value, times: Option<u64>) {
    let mut rule = json!({ "path": path, "action": action });
    if let Some(t) = times {
        rule["times"] = json!(t);
    }
    let status = reqwest::Client::new()
        .post(format!("{base}/__admin/faults"))
        .json(&rule)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 201, "fault rule refused");
}

/// Removes every fault rule.
pub async fn clear_faults(base: &str) {
    let status = reqwest::Client::new()
        .delete(format!("{base}/__admin/faults"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
}

/// The fault rules with their counters.
pub async fn faults(base: &str) -> Vec<Value> {
    reqwest::get(format!("{base}/__admin/faults"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The mock's records of `sobject`, by Id.
pub async fn records(base: &str, sobject: &str) -> BTreeMap<String, Value> {
    let state: Value = reqwest::get(format!("{base}/__admin/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    state["records"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["sobject"] == sobject)
        .map(|(id, r)| (id.clone(), r["fields"].clone()))
        .collect()
}

/// The mock's records of `sobject` by the value of `field`.
pub async fn records_by(base: &str, sobject: &str, field: &str) -> BTreeMap<String, Value> {
    records(base, sobject)
        .await
        .into_values()
        .map(|f| (f[field].as_str().unwrap_or("").to_string(), f))
        .collect()
}

/// An access token of the mock (password grant).
pub async fn token(base: &str) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", USERNAME),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// Creates records through sObject Collections create (200 a call), as an admin's data load
/// would; answers their ids in order.
pub async fn create_all(base: &str, records: &[Value]) -> Vec<String> {
    let token = token(base).await;
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for chunk in records.chunks(200) {
        let results: Vec<Value> = http
            .post(format!("{base}/services/data/v62.0/composite/sobjects"))
            .bearer_auth(&token)
            .json(&json!({ "allOrNone": true, "records": chunk }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for r in results {
            assert_eq!(r["success"], true, "{r}");
            ids.push(r["id"].as_str().unwrap().to_string());
        }
    }
    ids
}

/// An Account billed to `country`.
pub fn account(name: &str, country: &str) -> Value {
    json!({ "attributes": {"type": "Account"}, "Name": name, "BillingCountryCode": country })
}

/// A deal of `account_id` with every contract field filled (closed won), for `party`.
pub fn deal(account_id: &str, n: usize, party: &str) -> Value {
    let reseller = (party != "Direct").then(|| format!("Reseller {n} Ltd"));
    json!({
        "attributes": {"type": "Opportunity"},
        "Name": format!("Deal {n}"),
        "AccountId": account_id,
        "StageName": "Closed Won",
        "CloseDate": "2026-04-01",
        "Amount": 1000 + n,
        "Type": "New Business",
        "Deployment__c": if n % 2 == 0 { "SaaS" } else { "Self-Managed" },
        "Sku__c": if n % 2 == 0 { "premium-saas-1y" } else { "premium-self-managed-1y" },
        "Seats__c": 10,
        "Term_Months__c": 12,
        "Party__c": party,
        "Reseller_Name__c": reseller,
        "Sold_To_Email__c": format!("buyer{n}@example.com"),
    })
}
