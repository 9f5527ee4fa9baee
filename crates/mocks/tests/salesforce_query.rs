//! Salesforce growth for the connectors: custom objects, upsert only by External ID,
//! SOQL OR / IN / parentheses / two sort keys / parent fields, and query paging.
mod common;

use axum::http::{Method, StatusCode};
use axum::Router;
use common::{get, json, salesforce_token, send};
use l2f_mocks::salesforce::{self, Config, Salesforce};
use serde_json::{json, Value};

const V: &str = "/services/data/v62.0";

fn app(cfg: Config) -> Router {
    salesforce::router(Salesforce::new(cfg, None).expect("mock"))
}

async fn create(r: &Router, t: &str, sobject: &str, body: Value) -> String {
    let reply = json(
        r,
        Method::POST,
        &format!("{V}/sobjects/{sobject}"),
        t,
        &body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json()["id"].as_str().expect("id").to_string()
}

async fn query(r: &Router, t: &str, soql: &str) -> Value {
    let q = serde_urlencoded::to_string([("q", soql)]).expect("q");
    let reply = get(r, &format!("{V}/query?{q}"), t).await;
    assert_eq!(reply.status, StatusCode::OK, "{soql}: {}", reply.text);
    reply.json()
}

fn ids(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["Id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The Zuora-for-Salesforce objects the mirrors write are custom objects with their own
/// key prefix; they take `Name` and any `*__c` field.
#[tokio::test]
async fn custom_objects_take_name_and_custom_fields_under_their_prefix() {
    let r = app(Config::default());
    let t = salesforce_token(&r).await;
    let id = create(&r, &t, "Zuora__Subscription__c", json!({ "Name": "A-S00000001", "Zuora__External_Id__c": "8a8aa0", "Zuora__AutoRenew__c": true })).await;
    assert!(id.starts_with("a0B"), "{id}");
    let rec = get(&r, &format!("{V}/sobjects/Zuora__Subscription__c/{id}"), &t)
        .await
        .json();
    assert_eq!(rec["attributes"]["type"], "Zuora__Subscription__c");
    assert_eq!(rec["Name"], "A-S00000001");
    assert_eq!(rec["Zuora__AutoRenew__c"], true);
    let bad = json(
        &r,
        Method::POST,
        &format!("{V}/sobjects/Zuora__Subscription__c"),
        &t,
        &json!({ "StageName": "x" }),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()[0]["errorCode"], "INVALID_FIELD");
    let unknown = json(
        &r,
        Method::POST,
        &format!("{V}/sobjects/Nope__c"),
        &t,
        &json!({ "Name": "x" }),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(Salesforce::new(
        Config {
            custom_objects: [(
                "Bad".to_string(),
                salesforce::CustomObject {
                    prefix: "a0C".into()
                }
            )]
            .into_iter()
            .collect(),
            ..Config::default()
        },
        None
    )
    .is_err());
}

/// Upsert matches only on `Id` or a field declared External ID:
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm
#[tokio::test]
async fn upsert_matches_only_on_id_or_a_declared_external_id() {
    let r = app(Config::default());
    let t = salesforce_token(&r).await;
    let path = |f: &str, v: &str| format!("{V}/sobjects/Lead/{f}/{v}");
    let lead = json!({ "LastName": "Lovelace", "Company": "AE" });
    let created = json(
        &r,
        Method::PATCH,
        &path("L2f_Lead_Id__c", "lead_000001"),
        &t,
        &lead,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.json()["id"].as_str().expect("id").to_string();
    let again = json(
        &r,
        Method::PATCH,
        &path("l2f_lead_id__c", "lead_000001"),
        &t,
        &lead,
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["id"], id.as_str());

    let not_ext = json(&r, Method::PATCH, &path("Email", "a@b.example"), &t, &lead).await;
    assert_eq!(not_ext.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        not_ext.json(),
        json!([{ "message": "Field Email is not an External ID or indexed field for Lead", "errorCode": "INVALID_FIELD", "fields": ["Email"] }])
    );
    let undeclared = json(&r, Method::PATCH, &path("Other_Id__c", "1"), &t, &lead).await;
    assert_eq!(undeclared.status, StatusCode::BAD_REQUEST);
    let missing = json(&r, Method::PATCH, &path("Nope", "1"), &t, &lead).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json(),
        json!([{ "message": "Provided external ID field does not exist or is not accessible: Nope", "errorCode": "NOT_FOUND" }])
    );
    let by_id = json(
        &r,
        Method::PATCH,
        &path("Id", &id),
        &t,
        &json!({ "Company": "AE Ltd" }),
    )
    .await;
    assert_eq!(by_id.status, StatusCode::OK, "{}", by_id.text);
    assert_eq!(by_id.json()["created"], false);
    let no_such_id = json(
        &r,
        Method::PATCH,
        &path("Id", "00Q000000000999AAA"),
        &t,
        &lead,
    )
    .await;
    assert_eq!(no_such_id.status, StatusCode::NOT_FOUND);
    let fetched = get(&r, &path("L2f_Lead_Id__c", "lead_000001"), &t).await;
    assert_eq!(fetched.json()["Company"], "AE Ltd");
    assert_eq!(
        get(&r, &path("Email", "x"), &t).await.status,
        StatusCode::BAD_REQUEST
    );
}

/// The poller's query: closed-won deals after a `(SystemModstamp, Id)` cursor, ordered by
/// both, with the Account's billing country.
#[tokio::test]
async fn soql_takes_or_in_parentheses_two_sort_keys_and_parent_fields() {
    let r = app(Config::default());
    let t = salesforce_token(&r).await;
    let de = create(
        &r,
        &t,
        "Account",
        json!({ "Name": "Acme GmbH", "BillingCountryCode": "DE" }),
    )
    .await;
    let nl = create(
        &r,
        &t,
        "Account",
        json!({ "Name": "Acme BV", "BillingCountryCode": "NL" }),
    )
    .await;
    let mut opps = Vec::new();
    for (name, account, stage) in [
        ("o1", Some(&de), "Closed Won"),
        ("o2", Some(&nl), "Closed Won"),
        ("o3", None, "Closed Won"),
        ("o4", Some(&de), "Prospecting"),
    ] {
        let mut body = json!({ "Name": name, "StageName": stage, "CloseDate": "2026-12-01", "Type": "New Business", "Sku__c": "premium-saas-1y" });
        if let Some(a) = account {
            body["AccountId"] = json!(a);
        }
        opps.push(create(&r, &t, "Opportunity", body).await);
    }
    let page = query(&r, &t, "SELECT Id, Name, Type, IsWon, Account.BillingCountryCode, Account.Name FROM Opportunity WHERE IsWon = true ORDER BY SystemModstamp ASC, Id ASC").await;
    assert_eq!(ids(&page), opps[..3].to_vec());
    let rec = &page["records"][0];
    assert_eq!(rec["Type"], "New Business");
    assert_eq!(rec["IsWon"], true);
    assert_eq!(
        rec["Account"],
        json!({ "attributes": { "type": "Account", "url": format!("{V}/sobjects/Account/{de}") }, "BillingCountryCode": "DE", "Name": "Acme GmbH" })
    );
    assert_eq!(page["records"][2]["Account"], Value::Null);

    let first_id = page["records"][0]["Id"].as_str().expect("id").to_string();
    let after = query(&r, &t, &format!(
        "SELECT Id FROM Opportunity WHERE IsWon = true AND (SystemModstamp > 2000-01-01T00:00:00Z OR (SystemModstamp = 2000-01-01T00:00:00Z AND Id > '{first_id}')) ORDER BY Name DESC"
    )).await;
    assert_eq!(
        ids(&after),
        vec![opps[2].clone(), opps[1].clone(), opps[0].clone()]
    );
    let by_country = query(&r, &t, "SELECT Id FROM Opportunity WHERE Account.BillingCountryCode IN ('NL', 'GB') OR Name = 'o3'").await;
    assert_eq!(ids(&by_country), vec![opps[1].clone(), opps[2].clone()]);
    let not_in = query(
        &r,
        &t,
        "SELECT Id FROM Opportunity WHERE StageName NOT IN ('Closed Won')",
    )
    .await;
    assert_eq!(ids(&not_in), vec![opps[3].clone()]);
    let custom_parent = create(
        &r,
        &t,
        "Zuora__CustomerAccount__c",
        json!({ "Name": "A00000001", "Zuora__External_Id__c": "za1" }),
    )
    .await;
    create(
        &r,
        &t,
        "Zuora__Subscription__c",
        json!({ "Name": "A-S1", "Zuora__CustomerAccount__c": custom_parent }),
    )
    .await;
    let nested = query(
        &r,
        &t,
        "SELECT Name, Zuora__CustomerAccount__r.Name FROM Zuora__Subscription__c",
    )
    .await;
    assert_eq!(
        nested["records"][0]["Zuora__CustomerAccount__r"]["Name"],
        "A00000001"
    );

    for bad in [
        "SELECT Id FROM Opportunity WHERE IsWon = true AND Name = 'a' OR Name = 'b'",
        "SELECT Nope.Name FROM Opportunity",
        "SELECT Account.Nope FROM Opportunity",
    ] {
        let q = serde_urlencoded::to_string([("q", bad)]).expect("q");
        let reply = get(&r, &format!("{V}/query?{q}"), &t).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text
        );
    }
}

/// Two writes in the same millisecond still get increasing SystemModstamps.
#[tokio::test]
async fn system_modstamp_strictly_increases_between_writes() {
    let r = app(Config::default());
    let t = salesforce_token(&r).await;
    let mut ids_made = Vec::new();
    for i in 0..30 {
        ids_made.push(create(&r, &t, "Account", json!({ "Name": format!("A{i}") })).await);
    }
    let first = ids_made[0].clone();
    let upd = json(
        &r,
        Method::PATCH,
        &format!("{V}/sobjects/Account/{first}"),
        &t,
        &json!({ "Name": "A0 again" }),
    )
    .await;
    assert_eq!(upd.status, StatusCode::NO_CONTENT);
    let page = query(
        &r,
        &t,
        "SELECT Id, SystemModstamp FROM Account ORDER BY SystemModstamp",
    )
    .await;
    let stamps: Vec<String> = page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["SystemModstamp"].as_str().expect("stamp").to_string())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    let mut expected = ids_made[1..].to_vec();
    expected.push(first);
    assert_eq!(ids(&page), expected);
}

async fn accounts(r: &Router, t: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|i| json!({ "attributes": { "type": "Account" }, "Name": format!("Acct {i:04}") }))
            .collect();
        let reply = json(
            r,
            Method::POST,
            &format!("{V}/composite/sobjects"),
            t,
            &json!({ "records": records }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
}

/// Query More Results: the rest of a result is a snapshot paged through
/// `nextRecordsUrl` until `done`:
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query_more_results.htm
#[tokio::test]
async fn query_pages_through_next_records_url_over_a_snapshot() {
    let r = app(Config {
        query_batch_size: 2,
        ..Config::default()
    });
    let t = salesforce_token(&r).await;
    accounts(&r, &t, 5).await;
    let first = query(&r, &t, "SELECT Id, Name FROM Account ORDER BY Name").await;
    assert_eq!(first["totalSize"], 5);
    assert_eq!(first["done"], false);
    assert_eq!(first["records"].as_array().map(Vec::len), Some(2));
    let next = first["nextRecordsUrl"].as_str().expect("next").to_string();
    assert!(
        next.starts_with(&format!("{V}/query/01gL2F")) && next.ends_with("-2"),
        "{next}"
    );
    // A write between pages does not shift them.
    accounts(&r, &t, 1).await;
    let mut names: Vec<String> = first["records"]
        .as_array()
        .expect("r")
        .iter()
        .map(|r| r["Name"].as_str().unwrap_or("").to_string())
        .collect();
    let mut url = next;
    loop {
        let reply = get(&r, &url, &t).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let page = reply.json();
        assert_eq!(page["totalSize"], 5);
        names.extend(
            page["records"]
                .as_array()
                .expect("r")
                .iter()
                .map(|r| r["Name"].as_str().unwrap_or("").to_string()),
        );
        match page["nextRecordsUrl"].as_str() {
            Some(u) => {
                assert_eq!(page["done"], false);
                url = u.to_string();
            }
            None => {
                assert_eq!(page["done"], true);
                break;
            }
        }
    }
    assert_eq!(
        names,
        [
            "Acct 0000",
            "Acct 0001",
            "Acct 0002",
            "Acct 0003",
            "Acct 0004"
        ]
    );
    // Re-reading a page (a client's retry) gives the same records.
    assert_eq!(
        get(&r, &url, &t).await.json()["records"][0]["Name"],
        "Acct 0004"
    );
}

/// `Sforce-Query-Options: batchSize=N` takes 200 to 2,000:
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm
#[tokio::test]
async fn batch_size_header_overrides_the_default_within_200_and_2000() {
    let r = app(Config::default());
    let t = salesforce_token(&r).await;
    accounts(&r, &t, 450).await;
    let q = serde_urlencoded::to_string([("q", "SELECT Id FROM Account")]).expect("q");
    let all = get(&r, &format!("{V}/query?{q}"), &t).await.json();
    assert_eq!(all["done"], true);
    assert_eq!(all["records"].as_array().map(Vec::len), Some(450));
    let auth = format!("Bearer {t}");
    let paged = |size: &'static str| {
        let (r, auth, q) = (r.clone(), auth.clone(), q.clone());
        async move {
            let h = format!("batchSize={size}");
            send(
                &r,
                Method::GET,
                &format!("{V}/query?{q}"),
                &[("authorization", &auth), ("sforce-query-options", &h)],
                "",
            )
            .await
            .json()
        }
    };
    let p = paged("300").await;
    assert_eq!(p["records"].as_array().map(Vec::len), Some(300));
    assert!(p["nextRecordsUrl"]
        .as_str()
        .expect("next")
        .ends_with("-300"));
    let small = paged("50").await;
    assert_eq!(small["records"].as_array().map(Vec::len), Some(200));
    let next = get(&r, small["nextRecordsUrl"].as_str().expect("next"), &t)
        .await
        .json();
    assert_eq!(next["records"].as_array().map(Vec::len), Some(200));
    assert_eq!(next["done"], false);
}

#[tokio::test]
async fn an_expired_or_unknown_query_locator_is_invalid() {
    let r = app(Config {
        query_batch_size: 1,
        query_locator_ttl_secs: 0,
        ..Config::default()
    });
    let t = salesforce_token(&r).await;
    accounts(&r, &t, 2).await;
    let first = query(&r, &t, "SELECT Id FROM Account").await;
    let expired = get(&r, first["nextRecordsUrl"].as_str().expect("next"), &t).await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        expired.json(),
        json!([{ "message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR" }])
    );
    for bad in ["01gL2F9999999999-1", "garbage"] {
        let reply = get(&r, &format!("{V}/query/{bad}"), &t).await;
        assert_eq!(
            reply.json()[0]["errorCode"],
            "INVALID_QUERY_LOCATOR",
            "{bad}"
        );
    }
}

/// Clients (jsforce's retrieve of several ids, simple-salesforce's `describe()`) read the
/// fields from sObject Describe; the declared External ID fields say so:
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
#[tokio::test]
async fn describe_lists_fields_and_marks_external_ids() {
    let r = app(Config::default());
    let t = salesforce_token(&r).await;
    let d = get(&r, &format!("{V}/sobjects/Lead/describe"), &t).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    let d = d.json();
    assert_eq!(d["name"], "Lead");
    assert_eq!(d["keyPrefix"], "00Q");
    let field = |n: &str| {
        d["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["name"] == n)
            .cloned()
            .expect(n)
    };
    assert_eq!(field("Id")["type"], "id");
    assert_eq!(field("LastName")["nillable"], false);
    assert_eq!(field("L2f_Lead_Id__c")["externalId"], true);
    assert_eq!(field("Email")["externalId"], false);
    let global = get(&r, &format!("{V}/sobjects"), &t).await.json();
    let names: Vec<&str> = global["sobjects"]
        .as_array()
        .expect("s")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or(""))
        .collect();
    assert!(
        names.contains(&"Zuora__Subscription__c") && names.contains(&"Opportunity"),
        "{names:?}"
    );
    assert_eq!(
        get(&r, &format!("{V}/sobjects/Nope/describe"), &t)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}
