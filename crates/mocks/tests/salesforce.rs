//! The Salesforce mock against the REST API developer guide's documented examples.
mod common;

use axum::http::{Method, StatusCode};
use axum::Router;
use common::{form, form_token, get, json, raw, send};
use l2f_mocks::salesforce::{self, Config, Salesforce};
use serde_json::json;

fn app(cfg: Config) -> Router {
    salesforce::router(Salesforce::new(cfg, None).expect("mock"))
}

async fn login(r: &Router) -> String {
    let c = Config::default();
    form_token(
        r,
        "/services/oauth2/token",
        &[
            ("grant_type", "password"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("username", &c.username),
            ("password", &c.password),
        ],
    )
    .await
}

/// Username-password OAuth flow, response fields as documented:
/// https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_username_password_flow.htm
#[tokio::test]
async fn password_grant_answers_the_documented_token_fields() {
    let r = app(Config::default());
    let c = Config::default();
    let reply = send(
        &r,
        Method::POST,
        "/services/oauth2/token",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("host", "127.0.0.1:8443"),
        ],
        format!(
            "grant_type=password&client_id={}&client_secret={}&username={}&password={}",
            c.client_id, c.client_secret, c.username, c.password
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    for field in [
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
    ] {
        assert!(body.get(field).is_some(), "missing {field} in {body}");
    }
    assert_eq!(body["instance_url"], "http://127.0.0.1:8443");
    assert_eq!(body["token_type"], "Bearer");
}

#[tokio::test]
async fn client_credentials_grant_is_accepted_and_bad_secrets_are_not() {
    let r = app(Config::default());
    let c = Config::default();
    let ok = form(
        &r,
        "/services/oauth2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
        ],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let bad = form(
        &r,
        "/services/oauth2/token",
        &[
            ("grant_type", "password"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("username", &c.username),
            ("password", "wrong"),
        ],
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json(),
        json!({"error": "invalid_grant", "error_description": "authentication failure"})
    );
    let grant = form(
        &r,
        "/services/oauth2/token",
        &[
            ("grant_type", "implicit"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
        ],
    )
    .await;
    assert_eq!(grant.json()["error"], "unsupported_grant_type");
}

/// "Create a Record": request `{"Name":"Express Logistics and Transport"}` answers 201
/// `{"id":"001D000000IqhSLIAZ","errors":[],"success":true}`; a body carrying `id` answers
/// `[{"message":"The Id field should not be specified in the sobject data.","errorCode":"INVALID_FIELD"}]`.
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api/dome_sobject_create.htm
#[tokio::test]
async fn create_record_round_trips_the_documented_example() {
    let r = app(Config::default());
    let t = login(&r).await;
    let reply = json(
        &r,
        Method::POST,
        "/services/data/v62.0/sobjects/Account/",
        &t,
        &json!({ "Name": "Express Logistics and Transport" }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let body = reply.json();
    assert_eq!(body["errors"], json!([]));
    assert_eq!(body["success"], true);
    let id = body["id"].as_str().expect("id");
    assert!(id.starts_with("001") && id.len() == 18, "{id}");

    let bad = json(
        &r,
        Method::POST,
        "/services/data/v62.0/sobjects/Account/",
        &t,
        &json!({ "id": "001D000000IqhSLIAZ", "Name": "Express Donuts and Pies" }),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json(),
        json!([{ "message": "The Id field should not be specified in the sobject data.", "errorCode": "INVALID_FIELD" }])
    );
}

/// "Get Field Values from a Standard Object Record" and "Update a Record" (PATCH → 204):
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_update_fields.htm
#[tokio::test]
async fn get_and_patch_a_record() {
    let r = app(Config::default());
    let t = login(&r).await;
    let created = json(
        &r,
        Method::POST,
        "/services/data/v62.0/sobjects/Lead",
        &t,
        &json!({ "LastName": "Lovelace", "Company": "Analytical Engines", "Country": "GB" }),
    )
    .await;
    let id = created.json()["id"].as_str().expect("id").to_string();
    let url = format!("/services/data/v62.0/sobjects/Lead/{id}");
    let before = get(&r, &url, &t).await.json();
    assert_eq!(before["attributes"]["type"], "Lead");
    assert_eq!(before["attributes"]["url"], url);
    assert_eq!(before["Company"], "Analytical Engines");

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let patched = json(
        &r,
        Method::PATCH,
        &url,
        &t,
        &json!({ "Company": "Babbage & Co" }),
    )
    .await;
    assert_eq!(patched.status, StatusCode::NO_CONTENT);
    assert!(patched.text.is_empty());
    let after = get(&r, &format!("{url}?fields=Company,SystemModstamp"), &t)
        .await
        .json();
    assert_eq!(after["Company"], "Babbage & Co");
    assert!(after["SystemModstamp"].as_str() > before["SystemModstamp"].as_str());

    let missing = get(
        &r,
        "/services/data/v62.0/sobjects/Lead/00Q000000000999AAA",
        &t,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()[0]["errorCode"], "NOT_FOUND");
}

/// "Insert or Update (Upsert) a Record Using an External ID": PATCH
/// `/sobjects/Account/customExtIdField__c/11999` with `{"Name":"California Wheat Corporation","Type":"New Customer"}`
/// creates (201), then updates (204 before API 46.0, 200 with `created:false` since), and
/// answers 300 when the value matches several records.
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm
#[tokio::test]
async fn upsert_by_external_id_creates_updates_and_reports_multiple_matches() {
    let mut cfg = Config::default();
    cfg.external_ids
        .insert("Account".into(), vec!["customExtIdField__c".into()]);
    let r = app(cfg);
    let t = login(&r).await;
    let doc = json!({ "Name": "California Wheat Corporation", "Type": "New Customer" });
    let created = json(
        &r,
        Method::PATCH,
        "/services/data/v62.0/sobjects/Account/customExtIdField__c/11999",
        &t,
        &doc,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let body = created.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["errors"], json!([]));
    assert_eq!(body["created"], true);
    let id = body["id"].as_str().expect("id").to_string();

    let updated = json(
        &r,
        Method::PATCH,
        "/services/data/v62.0/sobjects/Account/customExtIdField__c/11999",
        &t,
        &json!({ "Type": "Customer" }),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(
        updated.json(),
        json!({ "id": id, "success": true, "errors": [], "created": false })
    );
    let old_api = json(
        &r,
        Method::PATCH,
        "/services/data/v45.0/sobjects/Account/customExtIdField__c/11999",
        &t,
        &json!({ "Type": "Customer" }),
    )
    .await;
    assert_eq!(old_api.status, StatusCode::NO_CONTENT);

    // "Do not specify Id or an external ID field in the request body or an error is generated."
    // https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_upsert_patch.htm
    let in_body = json(
        &r,
        Method::PATCH,
        "/services/data/v62.0/sobjects/Account/customExtIdField__c/11999",
        &t,
        &json!({ "customExtIdField__c": "11999", "Type": "X" }),
    )
    .await;
    assert_eq!(in_body.status, StatusCode::BAD_REQUEST);
    assert_eq!(in_body.json()[0]["errorCode"], "INVALID_FIELD");

    // A second record with the same value makes the id ambiguous.
    json(
        &r,
        Method::POST,
        "/services/data/v62.0/sobjects/Account",
        &t,
        &json!({ "Name": "Twin", "customExtIdField__c": "11999" }),
    )
    .await;
    let multi = json(
        &r,
        Method::PATCH,
        "/services/data/v62.0/sobjects/Account/customExtIdField__c/11999",
        &t,
        &json!({ "Type": "X" }),
    )
    .await;
    assert_eq!(multi.status, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(multi.json().as_array().map(Vec::len), Some(2));
}

/// "Execute a SOQL Query": `GET /query/?q=SELECT+name+from+Account` answers
/// `{"done":true,"totalSize":n,"records":[{"attributes":{"type":"Account","url":...},"Name":...}]}`.
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm
#[tokio::test]
async fn query_round_trips_the_documented_example() {
    let r = app(Config::default());
    let t = login(&r).await;
    for name in ["GenePoint", "United Oil & Gas, UK"] {
        json(
            &r,
            Method::POST,
            "/services/data/v62.0/sobjects/Account",
            &t,
            &json!({ "Name": name }),
        )
        .await;
    }
    let reply = get(
        &r,
        "/services/data/v62.0/query/?q=SELECT+name+from+Account",
        &t,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["done"], true);
    assert_eq!(body["totalSize"], 2);
    assert_eq!(body["records"][0]["attributes"]["type"], "Account");
    assert_eq!(body["records"][1]["Name"], "United Oil & Gas, UK");

    let filtered = get(
        &r,
        "/services/data/v62.0/query?q=SELECT+Id,Name+FROM+Account+WHERE+Name+=+'GenePoint'",
        &t,
    )
    .await
    .json();
    assert_eq!(filtered["totalSize"], 1);

    let malformed = get(&r, "/services/data/v62.0/query?q=SELEC+Id", &t).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.json()[0]["errorCode"], "MALFORMED_QUERY");
    let bad_field = get(
        &r,
        "/services/data/v62.0/query?q=SELECT+Nope+FROM+Account",
        &t,
    )
    .await;
    assert_eq!(bad_field.json()[0]["errorCode"], "INVALID_FIELD");
}

/// A source connector finds closed-won opportunities by polling SystemModstamp, with SOQL
/// or the "get updated" resource (`/sobjects/Opportunity/updated/?start=&end=`):
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_get_updated.htm
#[tokio::test]
async fn closed_won_opportunities_are_found_by_system_modstamp() {
    let r = app(Config::default());
    let t = login(&r).await;
    let start = chrono::Utc::now() - chrono::Duration::seconds(1);
    let opp = json(
        &r,
        Method::POST,
        "/services/data/v62.0/sobjects/Opportunity",
        &t,
        &json!({ "Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31" }),
    )
    .await;
    let id = opp.json()["id"].as_str().expect("id").to_string();
    let q = format!(
        "/services/data/v62.0/query?q=SELECT+Id+FROM+Opportunity+WHERE+IsWon+=+true+AND+SystemModstamp+%3E+{}",
        start.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
    assert_eq!(get(&r, &q, &t).await.json()["totalSize"], 0);
    json(
        &r,
        Method::PATCH,
        &format!("/services/data/v62.0/sobjects/Opportunity/{id}"),
        &t,
        &json!({ "StageName": "Closed Won" }),
    )
    .await;
    let won = get(&r, &q, &t).await.json();
    assert_eq!(won["records"][0]["Id"], id.as_str());

    let end = chrono::Utc::now() + chrono::Duration::seconds(1);
    let updated = get(
        &r,
        &format!(
            "/services/data/v62.0/sobjects/Opportunity/updated/?start={}&end={}",
            start.format("%Y-%m-%dT%H:%M:%S%%2B00:00"),
            end.format("%Y-%m-%dT%H:%M:%S%%2B00:00")
        ),
        &t,
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.json()["ids"], json!([id]));
    assert!(updated.json()["latestDateCovered"].is_string());
}

/// Status codes and error responses: 401 INVALID_SESSION_ID, 403 REQUEST_LIMIT_EXCEEDED;
/// usage reported in `Sforce-Limit-Info: api-usage=N/M`.
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm
#[tokio::test]
async fn usage_is_reported_and_the_daily_cap_is_enforced() {
    let r = app(Config {
        daily_api_cap: 3,
        ..Config::default()
    });
    let t = login(&r).await;
    for n in 1..=3 {
        let reply = get(
            &r,
            "/services/data/v62.0/query?q=SELECT+Id+FROM+Account",
            &t,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.header("sforce-limit-info"),
            Some(format!("api-usage={n}/3"))
        );
    }
    let over = get(
        &r,
        "/services/data/v62.0/query?q=SELECT+Id+FROM+Account",
        &t,
    )
    .await;
    assert_eq!(over.status, StatusCode::FORBIDDEN);
    assert_eq!(over.json()[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(
        over.header("sforce-limit-info").as_deref(),
        Some("api-usage=3/3")
    );
}

#[tokio::test]
async fn a_bad_session_is_refused_with_invalid_session_id() {
    let r = app(Config::default());
    let reply = get(
        &r,
        "/services/data/v62.0/sobjects/Account/001000000000001AAA",
        "00Dbogus",
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.json(),
        json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }])
    );
    assert!(reply.header("sforce-limit-info").is_some());
}

#[tokio::test]
async fn client_mistakes_get_the_documented_error_bodies_not_500s() {
    let r = app(Config::default());
    let t = login(&r).await;
    let broken = raw(
        &r,
        Method::POST,
        "/services/data/v62.0/sobjects/Account",
        &t,
        "{not json",
    )
    .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.json()[0]["errorCode"], "JSON_PARSER_ERROR");

    let unknown = json(
        &r,
        Method::POST,
        "/services/data/v62.0/sobjects/Account",
        &t,
        &json!({ "Name": "A", "Colour": "red" }),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()[0]["errorCode"], "INVALID_FIELD");
    assert_eq!(unknown.json()[0]["fields"], json!(["Colour"]));

    let required = json(
        &r,
        Method::POST,
        "/services/data/v62.0/sobjects/Opportunity",
        &t,
        &json!({ "Name": "A" }),
    )
    .await;
    assert_eq!(required.json()[0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(
        required.json()[0]["fields"],
        json!(["StageName", "CloseDate"])
    );

    let bad_type = json(
        &r,
        Method::POST,
        "/services/data/v62.0/sobjects/Widget",
        &t,
        &json!({}),
    )
    .await;
    assert_eq!(bad_type.status, StatusCode::NOT_FOUND);
    let bad_version = get(&r, "/services/data/v9/query?q=SELECT+Id+FROM+Account", &t).await;
    assert_eq!(bad_version.status, StatusCode::NOT_FOUND);
    let array = json(
        &r,
        Method::POST,
        "/services/data/v62.0/sobjects/Account",
        &t,
        &json!([1, 2]),
    )
    .await;
    assert_eq!(array.status, StatusCode::BAD_REQUEST);
}
