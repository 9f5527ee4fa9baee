//! The license service: issued once terms are accepted, held while the profile is Silent.
mod common;

use axum::http::{Method, StatusCode};
use axum::Router;
use common::{get, json, kinds, raw, send, Reply};
use l2f_mocks::license::{self, Config, License};
use serde_json::json;

const T: &str = "l2f-license-token";

fn app() -> Router {
    license::router(License::new(Config::default(), None).expect("app"))
}

/// Sets the communication profile of `sub_1`.
async fn set_profile(r: &Router, profile: &str) -> Reply {
    json(
        r,
        Method::PUT,
        "/api/v1/subscriptions/sub_1/communication-profile",
        T,
        &json!({ "communication_profile": profile }),
    )
    .await
}

/// Handbook rules 6 and 8: no license before the terms are accepted; Silent holds it; the
/// key, once issued, never changes.
#[tokio::test]
async fn license_waits_for_terms_is_held_while_silent_and_keeps_its_key() {
    let r = app();
    let reg = json(&r, Method::PUT, "/api/v1/subscriptions/sub_1", T, &json!({ "account_id": "cust_1", "plan": "ultimate", "seats": 100, "communication_profile": "Silent" })).await;
    assert_eq!(reg.status, StatusCode::OK, "{}", reg.text);
    assert_eq!(reg.json()["status"], "pending_terms");
    assert_eq!(reg.json()["key"], serde_json::Value::Null);

    let accepted = json(
        &r,
        Method::POST,
        "/api/v1/subscriptions/sub_1/terms-accepted",
        T,
        &json!({}),
    )
    .await
    .json();
    assert_eq!(accepted["status"], "held");
    assert_eq!(accepted["key"], serde_json::Value::Null);

    let lifted = set_profile(&r, "Default").await.json();
    assert_eq!(lifted["status"], "issued");
    let key = lifted["key"].as_str().expect("key").to_string();
    assert!(key.starts_with("L2F-"));

    set_profile(&r, "Silent").await;
    let again = set_profile(&r, "Default").await.json();
    assert_eq!(again["key"], key.as_str());
    assert_eq!(
        get(&r, "/api/v1/licenses/sub_1", T).await.json()["key"],
        key.as_str()
    );

    let feed = get(&r, "/api/v1/events", T).await.json();
    assert_eq!(
        kinds(&feed),
        [
            "LicenseHeld",
            "LicenseIssued",
            "LicenseHeld",
            "LicenseIssued"
        ]
    );
}

#[tokio::test]
async fn registering_with_terms_accepted_issues_at_once() {
    let r = app();
    let v = json(
        &r,
        Method::PUT,
        "/api/v1/subscriptions/sub_2",
        T,
        &json!({ "account_id": "cust_2", "plan": "premium", "seats": 5, "terms_accepted": true }),
    )
    .await
    .json();
    assert_eq!(v["status"], "issued");
}

#[tokio::test]
async fn client_mistakes_get_the_one_error_shape() {
    let r = app();
    assert_eq!(
        send(&r, Method::GET, "/api/v1/licenses/x", &[], "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&r, "/api/v1/licenses/nope", T).await.status,
        StatusCode::NOT_FOUND
    );
    let broken = raw(&r, Method::PUT, "/api/v1/subscriptions/s", T, "nope").await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    let extra = json(
        &r,
        Method::PUT,
        "/api/v1/subscriptions/s",
        T,
        &json!({ "account_id": "a", "plan": "p", "seats": 1, "colour": "red" }),
    )
    .await;
    assert_eq!(extra.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(extra.json()["error"]["code"], "invalid_field");
    let unknown = json(
        &r,
        Method::POST,
        "/api/v1/subscriptions/none/terms-accepted",
        T,
        &json!({}),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

/// What the hub reads back: the term, licensee and order it registered, an account's
/// licenses, and a feed with its epoch (new after a reset).
#[tokio::test]
async fn registration_details_come_back_by_account_and_the_feed_has_an_epoch() {
    let r = app();
    let body = json!({ "account_id": "cust_3", "plan": "premium", "seats": 5, "terms_accepted": true,
        "starts_on": "2026-12-02", "expires_on": "2027-12-02", "licensee_email": "a@example.com",
        "reseller": true, "order_id": "sub_000003" });
    let v = json(&r, Method::PUT, "/api/v1/subscriptions/A-S3", T, &body)
        .await
        .json();
    assert_eq!(v["status"], "issued");
    assert_eq!(v["order_id"], "sub_000003");
    let list = get(&r, "/api/v1/licenses?account_id=cust_3", T)
        .await
        .json();
    let ls = list["licenses"].as_array().expect("licenses");
    assert_eq!(ls.len(), 1);
    assert_eq!(ls[0]["expires_on"], "2027-12-02");
    assert_eq!(ls[0]["licensee_email"], "a@example.com");
    assert_eq!(
        get(&r, "/api/v1/licenses?account_id=nobody", T)
            .await
            .json()["licenses"],
        json!([])
    );
    assert_eq!(
        get(&r, "/api/v1/licenses", T).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let feed = get(&r, "/api/v1/events", T).await.json();
    assert_eq!(feed["events"][0]["data"]["reseller"], true);
    let epoch = feed["epoch"].as_str().expect("epoch").to_string();
    send(&r, Method::POST, "/__admin/reset", &[], "").await;
    let after = get(&r, "/api/v1/events", T).await.json();
    assert_ne!(after["epoch"].as_str().expect("epoch"), epoch);
}
