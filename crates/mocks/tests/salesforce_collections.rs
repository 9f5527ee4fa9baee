//! sObject Collections against the REST API developer guide's shapes: up to 200 records
//! a call, results in input order, `allOrNone` rollback, one API request per call.
mod common;

use axum::http::{Method, StatusCode};
use axum::Router;
use common::{get, json, salesforce_token, send};
use l2f_mocks::salesforce::{self, Config, Salesforce};
use serde_json::{json, Value};

const V: &str = "/services/data/v62.0";

fn app() -> Router {
    salesforce::router(Salesforce::new(Config::default(), None).expect("mock"))
}

fn rolled_back() -> Value {
    json!({ "success": false, "errors": [{ "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": [] }] })
}

async fn count(r: &Router, t: &str, sobject: &str) -> u64 {
    let q = serde_urlencoded::to_string([("q", format!("SELECT Id FROM {sobject}"))]).expect("q");
    get(r, &format!("{V}/query?{q}"), t).await.json()["totalSize"]
        .as_u64()
        .expect("total")
}

/// Create Records Using sObject Collections, the documented request (an Account and a
/// Contact in one call):
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_create.htm
#[tokio::test]
async fn create_answers_one_result_per_record_in_order() {
    let r = app();
    let t = salesforce_token(&r).await;
    let body = json!({ "allOrNone": false, "records": [
        { "attributes": { "type": "Account" }, "Name": "example.com", "BillingCity": "San Francisco" },
        { "attributes": { "type": "Contact" }, "LastName": "Johnson", "FirstName": "Erica" },
        { "attributes": { "type": "Lead" }, "LastName": "NoCompany" },
        { "Name": "no type" }
    ] });
    let reply = json(
        &r,
        Method::POST,
        &format!("{V}/composite/sobjects"),
        &t,
        &body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let out = reply.json();
    assert!(out[0]["id"].as_str().expect("id").starts_with("001"));
    assert_eq!(out[0]["success"], true);
    assert_eq!(out[0]["errors"], json!([]));
    assert!(out[1]["id"].as_str().expect("id").starts_with("003"));
    assert_eq!(
        out[2],
        json!({ "success": false, "errors": [{ "statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Company]", "fields": ["Company"] }] })
    );
    assert_eq!(out[3]["errors"][0]["statusCode"], "INVALID_TYPE");
    assert_eq!(count(&r, &t, "Account").await, 1);
    assert_eq!(count(&r, &t, "Contact").await, 1);
}

/// allOrNone: one failure rolls back the whole call:
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_create.htm
#[tokio::test]
async fn all_or_none_rolls_every_record_back_when_one_fails() {
    let r = app();
    let t = salesforce_token(&r).await;
    let body = json!({ "allOrNone": true, "records": [
        { "attributes": { "type": "Account" }, "Name": "kept?" },
        { "attributes": { "type": "Account" }, "Nope": "x" }
    ] });
    let out = json(
        &r,
        Method::POST,
        &format!("{V}/composite/sobjects"),
        &t,
        &body,
    )
    .await
    .json();
    assert_eq!(out[0], rolled_back());
    assert_eq!(out[1]["errors"][0]["statusCode"], "INVALID_FIELD");
    assert_eq!(out[1]["errors"][0]["fields"], json!(["Nope"]));
    assert_eq!(count(&r, &t, "Account").await, 0);
}

#[tokio::test]
async fn more_than_200_records_is_exceeded_id_limit() {
    let r = app();
    let t = salesforce_token(&r).await;
    let records: Vec<Value> = (0..201)
        .map(|i| json!({ "attributes": { "type": "Account" }, "Name": format!("A{i}") }))
        .collect();
    let reply = json(
        &r,
        Method::POST,
        &format!("{V}/composite/sobjects"),
        &t,
        &json!({ "records": records }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!([{ "message": "record limit reached. cannot submit more than 200 records into this call", "errorCode": "EXCEEDED_ID_LIMIT" }])
    );
    let ids = vec!["001000000000001AAA"; 201].join(",");
    let del = send(
        &r,
        Method::DELETE,
        &format!("{V}/composite/sobjects?ids={ids}"),
        &[("authorization", &format!("Bearer {t}"))],
        "",
    )
    .await;
    assert_eq!(del.json()[0]["errorCode"], "EXCEEDED_ID_LIMIT");
    let exactly: Vec<Value> = (0..200)
        .map(|i| json!({ "attributes": { "type": "Account" }, "Name": format!("A{i}") }))
        .collect();
    let ok = json(
        &r,
        Method::POST,
        &format!("{V}/composite/sobjects"),
        &t,
        &json!({ "records": exactly }),
    )
    .await;
    assert_eq!(ok.json().as_array().map(Vec::len), Some(200));
}

/// A collections call is one API request against the allocation.
#[tokio::test]
async fn one_collections_call_counts_as_one_api_request() {
    let r = app();
    let t = salesforce_token(&r).await;
    let used = |reply: &common::Reply| reply.header("sforce-limit-info").expect("limit info");
    let before = get(&r, &format!("{V}/limits"), &t).await;
    let records: Vec<Value> = (0..150).map(|i| json!({ "attributes": { "type": "Lead" }, "LastName": format!("L{i}"), "Company": "C" })).collect();
    let after = json(
        &r,
        Method::POST,
        &format!("{V}/composite/sobjects"),
        &t,
        &json!({ "records": records }),
    )
    .await;
    let n = |s: String| {
        s.trim_start_matches("api-usage=")
            .split('/')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .expect("n")
    };
    assert_eq!(n(used(&after)), n(used(&before)) + 1);
}

/// Update Records Using sObject Collections: each record carries its `id`:
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
#[tokio::test]
async fn update_takes_each_record_by_its_id() {
    let r = app();
    let t = salesforce_token(&r).await;
    let made = json(
        &r,
        Method::POST,
        &format!("{V}/composite/sobjects"),
        &t,
        &json!({ "records": [
        { "attributes": { "type": "Account" }, "Name": "one" },
        { "attributes": { "type": "Contact" }, "LastName": "two" }
    ] }),
    )
    .await
    .json();
    let (a, c) = (
        made[0]["id"].as_str().expect("a"),
        made[1]["id"].as_str().expect("c"),
    );
    let out = json(
        &r,
        Method::PATCH,
        &format!("{V}/composite/sobjects"),
        &t,
        &json!({ "allOrNone": false, "records": [
        { "attributes": { "type": "Account" }, "id": a, "NumberOfEmployees": 27000 },
        { "attributes": { "type": "Contact" }, "id": c, "Title": "Lead Engineer" },
        { "attributes": { "type": "Account" }, "NumberOfEmployees": 1 },
        { "attributes": { "type": "Account" }, "id": "001RM000003oLrB000", "Name": "x" },
        { "attributes": { "type": "Account" }, "id": "bogus", "Name": "x" }
    ] }),
    )
    .await
    .json();
    assert_eq!(out[0], json!({ "id": a, "success": true, "errors": [] }));
    assert_eq!(out[1]["success"], true);
    assert_eq!(
        out[2]["errors"][0],
        json!({ "statusCode": "MISSING_ARGUMENT", "message": "Id not specified in an update call", "fields": [] })
    );
    assert_eq!(
        out[3]["errors"][0]["statusCode"],
        "INVALID_CROSS_REFERENCE_KEY"
    );
    assert_eq!(
        out[4]["errors"][0],
        json!({ "statusCode": "MALFORMED_ID", "message": "malformed id bogus", "fields": [] })
    );
    assert_eq!(
        get(&r, &format!("{V}/sobjects/Contact/{c}"), &t)
            .await
            .json()["Title"],
        "Lead Engineer"
    );

    let rollback = json(
        &r,
        Method::PATCH,
        &format!("{V}/composite/sobjects"),
        &t,
        &json!({ "allOrNone": true, "records": [
        { "attributes": { "type": "Account" }, "id": a, "Name": "renamed" },
        { "attributes": { "type": "Account" }, "id": a, "Nope": 1 }
    ] }),
    )
    .await
    .json();
    assert_eq!(rollback[0], rolled_back());
    assert_eq!(
        get(&r, &format!("{V}/sobjects/Account/{a}"), &t)
            .await
            .json()["Name"],
        "one"
    );
}

/// Upsert Records Using sObject Collections, by a declared External ID field in each
/// record's body (API 46.0+):
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm
#[tokio::test]
async fn upsert_creates_then_updates_by_the_external_id_in_each_record() {
    let r = app();
    let t = salesforce_token(&r).await;
    let path = format!("{V}/composite/sobjects/Zuora__Subscription__c/Zuora__External_Id__c");
    let rec = |ext: &str, name: &str| json!({ "attributes": { "type": "Zuora__Subscription__c" }, "Zuora__External_Id__c": ext, "Name": name });
    let first = json(
        &r,
        Method::PATCH,
        &path,
        &t,
        &json!({ "allOrNone": false, "records": [rec("z1", "A-S1"), rec("z2", "A-S2")] }),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let first = first.json();
    assert_eq!(first[0]["created"], true);
    assert_eq!(first[0]["success"], true);
    let second = json(&r, Method::PATCH, &path, &t, &json!({ "records": [rec("z1", "A-S1 v2"), rec("z3", "A-S3"), rec("z4", "d"), rec("z4", "d again"), json!({ "attributes": { "type": "Zuora__Subscription__c" }, "Name": "no key" })] })).await.json();
    assert_eq!(
        second[0],
        json!({ "id": first[0]["id"], "success": true, "errors": [], "created": false })
    );
    assert_eq!(second[1]["created"], true);
    assert_eq!(second[2]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    assert_eq!(second[3]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    assert_eq!(second[4]["errors"][0]["statusCode"], "MISSING_ARGUMENT");
    let id1 = first[0]["id"].as_str().expect("id");
    assert_eq!(
        get(
            &r,
            &format!("{V}/sobjects/Zuora__Subscription__c/{id1}"),
            &t
        )
        .await
        .json()["Name"],
        "A-S1 v2"
    );

    let rollback = json(&r, Method::PATCH, &path, &t, &json!({ "allOrNone": true, "records": [rec("z5", "new"), json!({ "attributes": { "type": "Zuora__Subscription__c" }, "Zuora__External_Id__c": "z6", "Bad": 1 })] })).await.json();
    assert_eq!(rollback[0], rolled_back());
    assert_eq!(count(&r, &t, "Zuora__Subscription__c").await, 3);

    let by_name = json(
        &r,
        Method::PATCH,
        &format!("{V}/composite/sobjects/Zuora__Subscription__c/Name"),
        &t,
        &json!({ "records": [rec("z1", "x")] }),
    )
    .await;
    assert_eq!(by_name.status, StatusCode::BAD_REQUEST);
    assert_eq!(by_name.json()[0]["errorCode"], "INVALID_FIELD");
    let old = json(
        &r,
        Method::PATCH,
        "/services/data/v45.0/composite/sobjects/Zuora__Subscription__c/Zuora__External_Id__c",
        &t,
        &json!({ "records": [rec("z1", "x")] }),
    )
    .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
}

/// Retrieve (GET with ids and fields) and delete (DELETE with ids):
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_retrieve.htm
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_delete.htm
#[tokio::test]
async fn retrieve_and_delete_by_ids() {
    let r = app();
    let t = salesforce_token(&r).await;
    let made = json(
        &r,
        Method::POST,
        &format!("{V}/composite/sobjects"),
        &t,
        &json!({ "records": [
        { "attributes": { "type": "Account" }, "Name": "one" },
        { "attributes": { "type": "Account" }, "Name": "two" }
    ] }),
    )
    .await
    .json();
    let (a, b) = (
        made[0]["id"].as_str().expect("a"),
        made[1]["id"].as_str().expect("b"),
    );
    let missing = "001000000000999AAA";
    let got = get(
        &r,
        &format!("{V}/composite/sobjects/Account?ids={b},{missing},{a}&fields=Id,Name"),
        &t,
    )
    .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    let got = got.json();
    assert_eq!(got[0]["Name"], "two");
    assert_eq!(got[0]["attributes"]["type"], "Account");
    assert_eq!(got[1], Value::Null);
    assert_eq!(got[2]["Id"], a);
    let posted = json(
        &r,
        Method::POST,
        &format!("{V}/composite/sobjects/Account"),
        &t,
        &json!({ "ids": [a], "fields": ["Name"] }),
    )
    .await
    .json();
    assert_eq!(posted[0]["Name"], "one");

    let auth = format!("Bearer {t}");
    let del = send(
        &r,
        Method::DELETE,
        &format!("{V}/composite/sobjects?ids={a},{missing}&allOrNone=true"),
        &[("authorization", &auth)],
        "",
    )
    .await
    .json();
    assert_eq!(del[0], rolled_back());
    assert_eq!(del[1]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");
    assert_eq!(count(&r, &t, "Account").await, 2);
    let del = send(
        &r,
        Method::DELETE,
        &format!("{V}/composite/sobjects?ids={a},{missing}"),
        &[("authorization", &auth)],
        "",
    )
    .await
    .json();
    assert_eq!(del[0], json!({ "id": a, "success": true, "errors": [] }));
    assert_eq!(count(&r, &t, "Account").await, 1);
}

/// The upsert's External ID index, once built, follows writes made through the other APIs:
/// an External ID changed by a single-record PATCH, a record created by a single-record POST
/// and one deleted by DELETE are each matched (or not) by their current values.
#[tokio::test]
async fn upsert_matches_current_external_ids_after_writes_through_other_apis() {
    let r = app();
    let t = salesforce_token(&r).await;
    let ty = "Zuora__Subscription__c";
    let path = format!("{V}/composite/sobjects/{ty}/Zuora__External_Id__c");
    let rec = |ext: &str, name: &str| json!({ "attributes": { "type": ty }, "Zuora__External_Id__c": ext, "Name": name });
    let upsert = |records: Vec<Value>| {
        let (r, t, path) = (r.clone(), t.clone(), path.clone());
        async move {
            let reply = json(&r, Method::PATCH, &path, &t, &json!({ "records": records })).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            reply.json()
        }
    };
    // Builds the index: a and b.
    let first = upsert(vec![rec("a", "A"), rec("b", "B")]).await;
    let (id_a, id_b) = (first[0]["id"].clone(), first[1]["id"].clone());
    // a becomes a2; c is created and b deleted, none of it through collections.
    let id_a_str = id_a.as_str().expect("id");
    let renamed = json(
        &r,
        Method::PATCH,
        &format!("{V}/sobjects/{ty}/{id_a_str}"),
        &t,
        &json!({ "Zuora__External_Id__c": "a2" }),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::NO_CONTENT, "{}", renamed.text);
    let created = json(
        &r,
        Method::POST,
        &format!("{V}/sobjects/{ty}"),
        &t,
        &json!({ "Zuora__External_Id__c": "c", "Name": "C" }),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id_c = created.json()["id"].clone();
    let id_b_str = id_b.as_str().expect("id");
    let auth = format!("Bearer {t}");
    let deleted = send(
        &r,
        Method::DELETE,
        &format!("{V}/sobjects/{ty}/{id_b_str}"),
        &[("authorization", auth.as_str())],
        "",
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);

    let second = upsert(vec![
        rec("a", "A again"),
        rec("a2", "A2"),
        rec("b", "B again"),
        rec("c", "C2"),
    ])
    .await;
    assert_eq!(
        second[0]["created"], true,
        "a is no one's any more: {second}"
    );
    assert_eq!(
        second[1],
        json!({ "id": id_a, "success": true, "errors": [], "created": false })
    );
    assert_eq!(second[2]["created"], true, "b was deleted: {second}");
    assert_ne!(second[2]["id"], id_b);
    assert_eq!(
        second[3],
        json!({ "id": id_c, "success": true, "errors": [], "created": false })
    );
    assert_eq!(count(&r, &t, ty).await, 4);
}
