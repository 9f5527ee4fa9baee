//! The customers app: forms, purchases, terms, auto-renew, cancellation, usage, outbox.
mod common;

use axum::http::{Method, StatusCode};
use axum::Router;
use common::{get, json, kinds, raw, send};
use l2f_mocks::customers::{self, Config, Customers};
use serde_json::{json, Value};

const T: &str = "l2f-customers-token";

fn app() -> Router {
    customers::router(Customers::new(Config::default(), None).expect("app"))
}

async fn account(r: &Router, country: &str) -> String {
    let reply = json(
        r,
        Method::POST,
        "/api/v1/accounts",
        T,
        &json!({ "email": "ada@example.com", "name": "Ada", "company": "AE", "country": country }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json()["id"].as_str().expect("id").to_string()
}

async fn purchase(r: &Router, body: Value) -> Value {
    let reply = json(r, Method::POST, "/api/v1/purchases", T, &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json()
}

/// Handbook rule 1: "UK" is not an ISO code; the form edge maps it to GB and refuses what it
/// cannot map, naming the field and the value.
#[tokio::test]
async fn free_text_countries_are_normalised_or_refused_by_name() {
    let r = app();
    let id = account(&r, "UK").await;
    assert_eq!(
        get(&r, &format!("/api/v1/accounts/{id}"), T).await.json()["account"]["country"],
        "GB"
    );
    let bad = json(
        &r,
        Method::POST,
        "/api/v1/signups",
        T,
        &json!({ "email": "x@example.com", "country": "Atlantis" }),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["error"]["field"], "country");
    assert_eq!(bad.json()["error"]["value"], "Atlantis");
}

#[tokio::test]
async fn every_form_becomes_a_lead_captured_event() {
    let r = app();
    for (path, source) in [
        ("/api/v1/signups", "signup"),
        ("/api/v1/trials", "trial"),
        ("/api/v1/contact-requests", "contact_sales"),
        ("/api/v1/carts/abandoned", "abandoned_cart"),
    ] {
        let reply = json(&r, Method::POST, path, T, &json!({ "email": "lead@example.com", "first_name": "L", "last_name": "E", "company": "C", "country": "germany" })).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{path}: {}", reply.text);
        assert_eq!(reply.json()["source"], source);
        assert_eq!(reply.json()["fields"]["country"], "DE");
    }
    let feed = get(&r, "/api/v1/events?after=0", T).await.json();
    assert_eq!(kinds(&feed), vec!["LeadCaptured"; 4]);
    assert_eq!(feed["next_after"], 4);
    assert_eq!(
        get(&r, "/api/v1/events?after=4", T).await.json()["events"],
        json!([])
    );
}

/// Handbook rules 5 and 8: web-store purchases start with auto-renew on, sales-assisted
/// ones off; self-managed purchases wait for the terms; cancelling turns auto-renew off.
#[tokio::test]
async fn purchase_terms_auto_renew_cancel_and_usage() {
    let r = app();
    let id = account(&r, "NL").await;
    let saas = purchase(&r, json!({ "account_id": id, "deployment": "saas", "plan": "premium", "seats": 10, "add_ons": [{ "sku": "ci_minutes", "quantity": 2 }] })).await;
    assert_eq!(saas["auto_renew"], true);
    assert_eq!(saas["terms_required"], false);
    let sales = purchase(&r, json!({ "account_id": id, "deployment": "saas", "plan": "ultimate", "seats": 50, "channel": "sales_assisted" })).await;
    assert_eq!(sales["auto_renew"], false);
    let sm = purchase(&r, json!({ "account_id": id, "deployment": "self_managed", "plan": "ultimate", "seats": 100, "term_months": 24 })).await;
    assert_eq!(sm["license"]["status"], "pending_terms");
    let sm_id = sm["id"].as_str().expect("id");

    let eula = json(
        &r,
        Method::POST,
        &format!("/api/v1/subscriptions/{sm_id}/eula"),
        T,
        &json!({ "accepted_by": "ada@example.com" }),
    )
    .await;
    assert!(eula.json()["eula_accepted_at"].is_string());
    let lic = json(
        &r,
        Method::PUT,
        &format!("/api/v1/subscriptions/{sm_id}/license"),
        T,
        &json!({ "status": "issued", "key": "L2F-1234" }),
    )
    .await;
    assert_eq!(lic.json()["license"]["key"], "L2F-1234");
    let usage = json(
        &r,
        Method::POST,
        &format!("/api/v1/subscriptions/{sm_id}/usage"),
        T,
        &json!({ "active_users": 120, "billable_users": 110 }),
    )
    .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.text);

    let saas_id = saas["id"].as_str().expect("id");
    let off = json(
        &r,
        Method::PUT,
        &format!("/api/v1/subscriptions/{saas_id}/auto-renew"),
        T,
        &json!({ "auto_renew": false }),
    )
    .await;
    assert_eq!(off.json()["auto_renew"], false);
    let sales_id = sales["id"].as_str().expect("id");
    let cancelled = json(
        &r,
        Method::POST,
        &format!("/api/v1/subscriptions/{sales_id}/cancel"),
        T,
        &json!({ "reason": "wrong_seat_count" }),
    )
    .await
    .json();
    assert_eq!(cancelled["status"], "cancelled");
    let on_again = json(
        &r,
        Method::PUT,
        &format!("/api/v1/subscriptions/{sales_id}/auto-renew"),
        T,
        &json!({ "auto_renew": true }),
    )
    .await;
    assert_eq!(on_again.status, StatusCode::CONFLICT);

    let feed = get(&r, "/api/v1/events", T).await.json();
    assert_eq!(
        kinds(&feed),
        [
            "OrderPlaced",
            "OrderPlaced",
            "OrderPlaced",
            "EulaAccepted",
            "UsageReported",
            "AutoRenewChanged",
            "SubscriptionCancelled"
        ]
    );
}

#[tokio::test]
async fn client_mistakes_get_the_one_error_shape() {
    let r = app();
    let unauth = send(&r, Method::GET, "/api/v1/events", &[], "").await;
    assert_eq!(unauth.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unauth.json()["error"]["code"], "unauthorized");
    let broken = raw(&r, Method::POST, "/api/v1/accounts", T, "{oops").await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.json()["error"]["code"], "invalid_json");
    let missing = json(
        &r,
        Method::POST,
        "/api/v1/accounts",
        T,
        &json!({ "email": "a@b.example" }),
    )
    .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let id = account(&r, "US").await;
    let zero = json(
        &r,
        Method::POST,
        "/api/v1/purchases",
        T,
        &json!({ "account_id": id, "deployment": "saas", "plan": "premium", "seats": 0 }),
    )
    .await;
    assert_eq!(zero.json()["error"]["field"], "seats");
    let reason = json(
        &r,
        Method::POST,
        "/api/v1/subscriptions/sub_000404/cancel",
        T,
        &json!({ "reason": "bored" }),
    )
    .await;
    assert_eq!(reason.json()["error"]["field"], "reason");
    let unknown = json(
        &r,
        Method::POST,
        "/api/v1/subscriptions/sub_000404/cancel",
        T,
        &json!({ "reason": "customer_request" }),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let saas = purchase(
        &r,
        json!({ "account_id": id, "deployment": "saas", "plan": "premium", "seats": 1 }),
    )
    .await;
    let sid = saas["id"].as_str().expect("id");
    let usage = json(
        &r,
        Method::POST,
        &format!("/api/v1/subscriptions/{sid}/usage"),
        T,
        &json!({ "active_users": 1, "billable_users": 1 }),
    )
    .await;
    assert_eq!(usage.status, StatusCode::CONFLICT);
    let more_billable = json(
        &r,
        Method::POST,
        &format!("/api/v1/subscriptions/{sid}/usage"),
        T,
        &json!({ "active_users": 1, "billable_users": 2 }),
    )
    .await;
    assert_eq!(more_billable.json()["error"]["field"], "billable_users");
}
