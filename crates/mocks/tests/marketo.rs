//! The Marketo mock against Adobe's Marketo REST documentation.
mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::Router;
use common::{get, json, raw, send};
use l2f_mocks::kit::{FaultAction, FaultRule};
use l2f_mocks::marketo::{self, Config, Marketo};
use serde_json::{json, Value};

fn app(cfg: Config) -> Router {
    marketo::router(Marketo::new(cfg, None).expect("mock"))
}

fn lenient() -> Config {
    Config {
        required_fields: vec![],
        ..Config::default()
    }
}

/// Authentication: `GET /identity/oauth/token?grant_type=client_credentials&client_id=&client_secret=`
/// answers `{"access_token","token_type":"bearer","expires_in","scope"}`.
/// https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/authentication
async fn token(r: &Router) -> String {
    let c = Config::default();
    let uri = format!(
        "/identity/oauth/token?grant_type=client_credentials&client_id={}&client_secret={}",
        c.client_id, c.client_secret
    );
    let reply = send(r, Method::GET, &uri, &[], Body::empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let v = reply.json();
    assert_eq!(v["token_type"], "bearer");
    assert!(v["expires_in"].is_number() && v["scope"].is_string());
    v["access_token"].as_str().expect("token").to_string()
}

/// A cheap API call that every limit counts: a lead query.
const LEAD_QUERY: &str = "/rest/v1/leads.json?filterType=email&filterValues=a@b.example";

async fn push(r: &Router, t: &str, body: &Value) -> Value {
    let reply = json(r, Method::POST, "/rest/v1/leads.json", t, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()
}

/// "Leads" → Create/Update: the documented createOnly request with lookupField email and
/// three leads answers `{"requestId","success":true,"result":[{"id","status":"created"},...]}`.
/// https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/leads
#[tokio::test]
async fn sync_leads_round_trips_the_documented_example() {
    let r = app(lenient());
    let t = token(&r).await;
    let doc = json!({
        "action": "createOnly",
        "lookupField": "email",
        "input": [
            { "email": "kjashaedd-1@klooblept.com", "firstName": "Kataldar-1", "postalCode": "04828" },
            { "email": "kjashaedd-2@klooblept.com", "firstName": "Kataldar-2", "postalCode": "04828" },
            { "email": "kjashaedd-3@klooblept.com", "firstName": "Kataldar-3", "postalCode": "04828" }
        ]
    });
    let v = push(&r, &t, &doc).await;
    assert_eq!(v["success"], true);
    assert!(v["requestId"].as_str().is_some_and(|s| s.contains('#')));
    let result = v["result"].as_array().expect("result");
    assert_eq!(result.len(), 3);
    assert!(result
        .iter()
        .all(|x| x["status"] == "created" && x["id"].is_number()));

    // createOnly again: each is skipped with 1005 "Lead already exists".
    let again = push(&r, &t, &doc).await;
    assert_eq!(
        again["result"][0],
        json!({ "status": "skipped", "reasons": [{ "code": "1005", "message": "Lead already exists" }] })
    );
}

/// "Leads" → Query: `GET /rest/v1/leads.json?filterType=email&filterValues=...&fields=...`
/// answers `{"requestId","success":true,"result":[{...fields}]}`.
/// https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/leads
#[tokio::test]
async fn create_or_update_is_the_default_and_matches_email() {
    let r = app(Config::default());
    let t = token(&r).await;
    let lead = json!({ "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace", "company": "AE", "country": "GB", "leadSource": "Web" });
    let first = push(&r, &t, &json!({ "input": [lead] })).await;
    assert_eq!(first["result"][0]["status"], "created");
    let mut changed = lead.clone();
    changed["email"] = json!("ADA@example.com");
    changed["firstName"] = json!("Augusta");
    let second = push(&r, &t, &json!({ "input": [changed] })).await;
    assert_eq!(second["result"][0]["status"], "updated");
    assert_eq!(second["result"][0]["id"], first["result"][0]["id"]);

    let found = get(
        &r,
        "/rest/v1/leads.json?filterType=email&filterValues=ada@example.com&fields=email,firstName",
        &t,
    )
    .await
    .json();
    assert_eq!(found["result"][0]["firstName"], "Augusta");

    let update_only = push(
        &r,
        &t,
        &json!({ "action": "updateOnly", "input": [{ "email": "nobody@example.com" }] }),
    )
    .await;
    assert_eq!(update_only["result"][0]["reasons"][0]["code"], "1004");
}

/// Required fields come from configuration (handbook rule 2): an incomplete lead is
/// skipped with a reason naming the field; the others in the batch go through.
#[tokio::test]
async fn required_fields_from_configuration_are_enforced_per_record() {
    let r = app(Config::default());
    let t = token(&r).await;
    let v = push(&r, &t, &json!({ "input": [
        { "email": "half@example.com", "firstName": "Half" },
        { "email": "full@example.com", "firstName": "F", "lastName": "L", "company": "C", "country": "NL", "leadSource": "Trial" }
    ] })).await;
    assert_eq!(v["result"][0]["status"], "skipped");
    assert_eq!(v["result"][0]["reasons"][0]["code"], "1003");
    assert!(v["result"][0]["reasons"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("lastName")));
    assert_eq!(v["result"][1]["status"], "created");
}

/// Error codes: 600/601/602 token, 606 rate, 609 invalid JSON, 615 concurrency,
/// 1003 invalid data, 1006 field not found — all HTTP 200 with `errors[]`.
/// https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/error-codes
#[tokio::test]
async fn token_errors_are_600_601_and_602() {
    let r = app(lenient());
    let none = send(&r, Method::POST, "/rest/v1/leads.json", &[], "{}").await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.json()["errors"][0]["code"], "600");
    let bad = json(
        &r,
        Method::POST,
        "/rest/v1/leads.json",
        "forged",
        &json!({}),
    )
    .await;
    assert_eq!(bad.json()["success"], false);
    assert_eq!(bad.json()["errors"][0]["code"], "601");

    let expired = app(Config {
        token_ttl_secs: 0,
        ..lenient()
    });
    let t = token(&expired).await;
    let v = json(
        &expired,
        Method::POST,
        "/rest/v1/leads.json",
        &t,
        &json!({ "input": [{ "email": "a@b.example" }] }),
    )
    .await;
    assert_eq!(v.json()["errors"][0]["code"], "602");

    // The token may also be passed as the access_token query parameter.
    let r2 = app(lenient());
    let t2 = token(&r2).await;
    let q = send(
        &r2,
        Method::GET,
        &format!("/rest/v1/leads.json?access_token={t2}&filterType=email&filterValues=x@y.example"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(q.json()["success"], true);
}

#[tokio::test]
async fn the_101st_call_in_20_seconds_gets_606() {
    let r = app(lenient());
    let t = token(&r).await;
    for _ in 0..100 {
        let v = get(&r, LEAD_QUERY, &t).await.json();
        assert_eq!(v["success"], true, "{v}");
    }
    let v = get(&r, LEAD_QUERY, &t).await.json();
    assert_eq!(v["success"], false);
    assert_eq!(v["errors"][0]["code"], "606");
}

#[tokio::test]
async fn past_the_daily_quota_calls_get_607() {
    let r = app(Config {
        daily_quota: 2,
        ..lenient()
    });
    let t = token(&r).await;
    for _ in 0..2 {
        assert_eq!(get(&r, LEAD_QUERY, &t).await.json()["success"], true);
    }
    let v = get(&r, LEAD_QUERY, &t).await.json();
    assert_eq!(v["errors"][0]["code"], "607");
}

#[tokio::test]
async fn the_11th_concurrent_call_gets_615() {
    let cfg = Config {
        faults: vec![FaultRule {
            path: "/rest/".into(),
            method: None,
            action: FaultAction::Latency { ms: 300 },
            nth: None,
            times: None,
            every: None,
            phase: 0,
            seen: 0,
            fired: 0,
        }],
        ..lenient()
    };
    let r = app(cfg);
    let t = token(&r).await;
    let calls = (0..11).map(|_| get(&r, LEAD_QUERY, &t));
    let replies = futures::future::join_all(calls).await;
    let codes: Vec<Value> = replies
        .iter()
        .map(|x| x.json()["errors"][0]["code"].clone())
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == json!("615")).count(),
        1,
        "{codes:?}"
    );
    assert!(replies.iter().all(|x| x.status == StatusCode::OK));
}

#[tokio::test]
async fn bad_batches_get_1003_1006_and_609() {
    let r = app(lenient());
    let t = token(&r).await;
    let too_many: Vec<Value> = (0..301)
        .map(|i| json!({ "email": format!("u{i}@example.com") }))
        .collect();
    let v = push(&r, &t, &json!({ "input": too_many })).await;
    assert_eq!(v["errors"][0]["code"], "1003");
    let v = push(
        &r,
        &t,
        &json!({ "input": [{ "email": "a@b.example", "favouriteColour": "red" }] }),
    )
    .await;
    assert_eq!(
        v["errors"][0],
        json!({ "code": "1006", "message": "Field 'favouriteColour' not found" })
    );
    let v = push(
        &r,
        &t,
        &json!({ "lookupField": "shoeSize", "input": [{ "email": "a@b.example" }] }),
    )
    .await;
    assert_eq!(v["errors"][0]["code"], "1003");
    let broken = raw(&r, Method::POST, "/rest/v1/leads.json", &t, "[{").await;
    assert_eq!(broken.status, StatusCode::OK);
    assert_eq!(broken.json()["errors"][0]["code"], "609");
    let huge = raw(
        &r,
        Method::POST,
        "/rest/v1/leads.json",
        &t,
        vec![b' '; (1 << 20) + 1],
    )
    .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// "Leads" → Query: a query too long for a URL is sent as `POST /rest/v1/leads.json?_method=GET`
/// with `application/x-www-form-urlencoded` parameters, and answers as the GET does;
/// results come `batchSize` (≤ 300) at a time with `nextPageToken`.
/// https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/leads
#[tokio::test]
async fn a_query_posted_with_method_get_answers_as_the_get_and_pages() {
    let r = app(lenient());
    let t = token(&r).await;
    let input: Vec<Value> = (0..5)
        .map(|i| json!({ "email": format!("l{i}@example.com"), "firstName": format!("L{i}") }))
        .collect();
    push(&r, &t, &json!({ "input": input })).await;
    let emails: Vec<String> = (0..5).map(|i| format!("l{i}@example.com")).collect();
    let form = serde_urlencoded::to_string([
        ("filterType", "email"),
        ("filterValues", &emails.join(",")),
        ("fields", "email,firstName"),
        ("batchSize", "2"),
    ])
    .expect("form");
    let auth = format!("Bearer {t}");
    let post = |body: String| {
        let (r, auth) = (r.clone(), auth.clone());
        async move {
            send(
                &r,
                Method::POST,
                "/rest/v1/leads.json?_method=GET",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                body,
            )
            .await
            .json()
        }
    };
    let first = post(form.clone()).await;
    assert_eq!(first["success"], true, "{first}");
    assert_eq!(
        first["result"],
        json!([{ "email": "l0@example.com", "firstName": "L0" }, { "email": "l1@example.com", "firstName": "L1" }])
    );
    let token1 = first["nextPageToken"].as_str().expect("token").to_string();
    let via_get = get(&r, &format!("/rest/v1/leads.json?{form}"), &t)
        .await
        .json();
    assert_eq!(via_get["result"], first["result"]);
    assert_eq!(via_get["nextPageToken"], first["nextPageToken"]);
    let second = post(format!("{form}&nextPageToken={token1}")).await;
    assert_eq!(second["result"][0]["email"], "l2@example.com");
    let token2 = second["nextPageToken"].as_str().expect("token").to_string();
    let last = post(format!("{form}&nextPageToken={token2}")).await;
    assert_eq!(last["result"].as_array().map(Vec::len), Some(1));
    assert!(last.get("nextPageToken").is_none());
    // The token may travel in the form body, as some clients send it.
    let body_token = send(
        &r,
        Method::POST,
        "/rest/v1/leads.json?_method=GET",
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("access_token={t}&filterType=email&filterValues=l4@example.com"),
    )
    .await
    .json();
    assert_eq!(body_token["result"][0]["email"], "l4@example.com");
    let no_token = send(
        &r,
        Method::POST,
        "/rest/v1/leads.json?_method=GET",
        &[],
        "filterType=email&filterValues=x@y.example",
    )
    .await
    .json();
    assert_eq!(no_token["errors"][0]["code"], "600");
    let bad_batch = post("filterType=email&filterValues=a@b.example&batchSize=301".into()).await;
    assert_eq!(bad_batch["errors"][0]["code"], "1003");
    let bad_token =
        post("filterType=email&filterValues=a@b.example&nextPageToken=zzz".into()).await;
    assert_eq!(bad_token["errors"][0]["code"], "1003");
    // A GET past Marketo's 8 KB URL limit is the 414 that _method=GET avoids.
    let long: Vec<String> = (0..300)
        .map(|i| format!("someone.with.a.long.address{i}@example.com"))
        .collect();
    let too_long = get(
        &r,
        &format!(
            "/rest/v1/leads.json?filterType=email&filterValues={}",
            long.join(",")
        ),
        &t,
    )
    .await;
    assert_eq!(too_long.status, StatusCode::URI_TOO_LONG);
    let as_post = post(format!("filterType=email&filterValues={}", long.join(","))).await;
    assert_eq!(as_post["success"], true);
}

/// marketorestpython sends `_method=GET` inside the form body, not in the query string;
/// Marketo takes both.
#[tokio::test]
async fn method_get_in_the_form_body_is_a_query_too() {
    let r = app(lenient());
    let t = token(&r).await;
    push(
        &r,
        &t,
        &json!({ "input": [{ "email": "body@example.com" }] }),
    )
    .await;
    let reply = send(
        &r,
        Method::POST,
        "/rest/v1/leads.json",
        &[
            ("authorization", &format!("Bearer {t}")),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ],
        "_method=GET&filterType=email&filterValues=body%40example.com&fields=email",
    )
    .await
    .json();
    assert_eq!(reply["success"], true, "{reply}");
    assert_eq!(reply["result"], json!([{ "email": "body@example.com" }]));
}
