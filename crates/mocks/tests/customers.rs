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

/// Handbook rule 1: "UK" is not an ISO code; an account's country is normalised to GB and
/// what cannot be mapped is refused naming the field and the value.
#[tokio::test]
async fn account_countries_are_normalised_or_refused_by_name() {
    let r = app();
    let id = account(&r, "UK").await;
    assert_eq!(
        get(&r, &format!("/api/v1/accounts/{id}"), T).await.json()["account"]["country"],
        "GB"
    );
    let bad = json(
        &r,
        Method::POST,
        "/api/v1/accounts",
        T,
        &json!({ "email": "x@example.com", "name": "X", "country": "Atlantis" }),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["error"]["field"], "country");
    assert_eq!(bad.json()["error"]["value"], "Atlantis");
}

/// DESIGN rule 1: the form keeps the country as typed (trimmed) and never refuses it; the
/// hub's edge normalises it or dead-letters the lead.
#[tokio::test]
async fn every_form_becomes_a_lead_captured_event_with_the_country_as_typed() {
    let r = app();
    for (path, source) in [
        ("/api/v1/signups", "signup"),
        ("/api/v1/trials", "trial"),
        ("/api/v1/contact-requests", "contact_sales"),
        ("/api/v1/carts/abandoned", "abandoned_cart"),
        ("/api/v1/web-forms", "web_form"),
    ] {
        let reply = json(&r, Method::POST, path, T, &json!({ "email": "lead@example.com", "first_name": "L", "last_name": "E", "company": "C", "country": "  Untied Kingdom " })).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{path}: {}", reply.text);
        assert_eq!(reply.json()["source"], source);
        assert_eq!(reply.json()["fields"]["country"], "Untied Kingdom");
        assert_eq!(reply.json()["fields"]["marketing_opt_in"], false);
    }
    let opted = json(
        &r,
        Method::POST,
        "/api/v1/web-forms",
        T,
        &json!({ "email": "o@example.com", "marketing_opt_in": true, "utm_campaign": "spring-26" }),
    )
    .await
    .json();
    assert_eq!(opted["fields"]["marketing_opt_in"], true);
    assert_eq!(opted["fields"]["utm_campaign"], "spring-26");
    let bad_email = json(
        &r,
        Method::POST,
        "/api/v1/signups",
        T,
        &json!({ "email": "nope", "country": "DE" }),
    )
    .await;
    assert_eq!(bad_email.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_email.json()["error"]["field"], "email");

    let feed = get(&r, "/api/v1/events?after=0", T).await.json();
    assert_eq!(kinds(&feed), vec!["LeadCaptured"; 6]);
    assert_eq!(feed["next_after"], 6);
    assert_eq!(feed["latest"], 6, "the newest position, for a reader's lag");
    let page = get(&r, "/api/v1/events?after=0&limit=2", T).await.json();
    assert_eq!(
        (page["next_after"].clone(), page["latest"].clone()),
        (json!(2), json!(6))
    );
    let first = &feed["events"][0];
    assert_eq!(first["origin"], "customer");
    assert_eq!(first["data"]["id"], "lead_000001");
    assert_eq!(first["data"]["source"], "signup");
    assert_eq!(first["data"]["fields"]["country"], "Untied Kingdom");
    assert!(first["data"]["created_at"].is_string(), "{first}");
    assert!(uuid::Uuid::parse_str(feed["epoch"].as_str().expect("epoch")).is_ok());
    assert_eq!(
        get(&r, "/api/v1/events?after=6", T).await.json()["events"],
        json!([])
    );
}

/// Handbook rules 5 and 8: web-store purchases start with auto-renew on, reseller
/// ones off; self-managed purchases wait for the terms; cancelling turns auto-renew off.
#[tokio::test]
async fn purchase_terms_auto_renew_cancel_and_usage() {
    let r = app();
    let id = account(&r, "NL").await;
    let saas = purchase(&r, json!({ "account_id": id, "deployment": "saas", "plan": "premium", "seats": 10, "add_ons": [{ "sku": "ci_minutes", "quantity": 2 }] })).await;
    assert_eq!(saas["auto_renew"], true);
    assert_eq!(saas["terms_required"], false);
    let sales = purchase(&r, json!({ "account_id": id, "deployment": "saas", "plan": "ultimate", "seats": 50, "channel": "reseller", "reseller": { "name": "Resell BV", "authorized": true } })).await;
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

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

fn plus_months(d: chrono::NaiveDate, m: u32) -> String {
    d.checked_add_months(chrono::Months::new(m))
        .expect("date")
        .to_string()
}

/// The order carries the catalog's SKUs and prices, the total and the term (spec-mocks 1.3).
#[tokio::test]
async fn order_placed_carries_skus_prices_total_and_term() {
    let r = app();
    let id = account(&r, "NL").await;
    let sub = purchase(&r, json!({ "account_id": id, "deployment": "saas", "plan": "premium", "seats": 10, "add_ons": [{ "sku": "ci_minutes", "quantity": 2 }] })).await;
    assert_eq!(sub["plan_sku"], "premium-saas-1y");
    assert_eq!(sub["term_start"], today().to_string());
    assert_eq!(sub["term_end"], plus_months(today(), 12));
    let feed = get(&r, "/api/v1/events", T).await.json();
    let ev = &feed["events"][0];
    assert_eq!(ev["type"], "OrderPlaced");
    assert_eq!(ev["origin"], "customer");
    let sub_id = sub["id"].as_str().expect("id");
    assert_eq!(
        ev["data"],
        json!({
            "order_id": sub_id, "subscription_id": sub_id,
            "account": { "id": id, "email": "ada@example.com", "name": "Ada", "company": "AE", "country": "NL" },
            "deployment": "saas", "plan": "premium", "channel": "web_store", "reseller": null,
            "lines": [
                { "sku": "premium-saas-1y", "quantity": 10, "unit_price": "29.00" },
                { "sku": "ci-minutes-1000", "quantity": 2, "unit_price": "10.00" }
            ],
            "currency": "USD", "total": "310.00",
            "term_start": today().to_string(), "term_end": plus_months(today(), 12),
            "auto_renew": true
        })
    );
    // Self-managed from the web store renews too; a marketplace deal does not (rule 5).
    let sm = purchase(&r, json!({ "account_id": id, "deployment": "self_managed", "plan": "ultimate", "seats": 3, "term_months": 24 })).await;
    assert_eq!(sm["auto_renew"], true);
    assert_eq!(sm["plan_sku"], "ultimate-self-managed-1y");
    assert_eq!(sm["term_end"], plus_months(today(), 24));
    let aws = purchase(&r, json!({ "account_id": id, "deployment": "saas", "plan": "ultimate", "seats": 5, "channel": "aws_marketplace" })).await;
    assert_eq!(aws["auto_renew"], false);
    let feed = get(&r, "/api/v1/events?after=1", T).await.json();
    assert_eq!(feed["events"][0]["data"]["total"], "297.00");
    assert_eq!(feed["events"][1]["data"]["channel"], "aws_marketplace");
}

#[tokio::test]
async fn sales_assisted_purchases_are_refused_and_a_reseller_deal_names_its_reseller() {
    let r = app();
    let id = account(&r, "DE").await;
    let refuse = |body: Value| {
        let r = r.clone();
        async move {
            let reply = json(&r, Method::POST, "/api/v1/purchases", T, &body).await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                reply.text
            );
            reply.json()["error"]["field"]
                .as_str()
                .unwrap_or("")
                .to_string()
        }
    };
    let base = json!({ "account_id": id, "deployment": "saas", "plan": "premium", "seats": 1 });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    assert_eq!(
        refuse(with("channel", json!("sales_assisted"))).await,
        "channel"
    );
    assert_eq!(refuse(with("channel", json!("reseller"))).await, "reseller");
    assert_eq!(
        refuse(with(
            "reseller",
            json!({ "name": "R", "authorized": false })
        ))
        .await,
        "reseller"
    );
    assert_eq!(refuse(with("plan", json!("platinum"))).await, "plan");
    assert_eq!(
        refuse(with(
            "add_ons",
            json!([{ "sku": "storage", "quantity": 1 }])
        ))
        .await,
        "add_ons"
    );
    let deal = purchase(
        &r,
        with("channel", json!("reseller"))
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.insert(
                    "reseller".into(),
                    json!({ "name": "Resell GmbH", "authorized": false }),
                );
                Value::Object(o)
            })
            .expect("object"),
    )
    .await;
    assert_eq!(deal["reseller"]["name"], "Resell GmbH");
    let feed = get(&r, "/api/v1/events", T).await.json();
    assert_eq!(
        feed["events"][0]["data"]["reseller"],
        json!({ "name": "Resell GmbH", "authorized": false })
    );
}

/// The catalog is configuration: a test may sell a plan whose SKU the hub does not know.
#[tokio::test]
async fn a_plan_added_by_configuration_is_sold_at_its_price() {
    let mut cfg = Config::default();
    cfg.plans.insert(
        "platinum".into(),
        customers::Plan {
            saas_sku: "platinum-saas-1y".into(),
            self_managed_sku: "platinum-self-managed-1y".into(),
            unit_price: "199.50".into(),
        },
    );
    let r = customers::router(Customers::new(cfg, None).expect("app"));
    let id = account(&r, "US").await;
    purchase(
        &r,
        json!({ "account_id": id, "deployment": "saas", "plan": "platinum", "seats": 2 }),
    )
    .await;
    let ev = &get(&r, "/api/v1/events", T).await.json()["events"][0];
    assert_eq!(
        ev["data"]["lines"][0],
        json!({ "sku": "platinum-saas-1y", "quantity": 2, "unit_price": "199.50" })
    );
    assert_eq!(ev["data"]["total"], "399.00");

    let bad = Config {
        currency: "dollars".into(),
        ..Config::default()
    };
    assert!(Customers::new(bad, None).is_err());
}

/// A hub that kept a cursor must notice that the feed started again.
#[tokio::test]
async fn reset_gives_the_feed_a_new_epoch() {
    let r = app();
    let before = get(&r, "/api/v1/events", T).await.json()["epoch"].clone();
    account(&r, "US").await;
    assert_eq!(get(&r, "/api/v1/events", T).await.json()["epoch"], before);
    let reset = send(&r, Method::POST, "/__admin/reset", &[], "").await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    let after = get(&r, "/api/v1/events", T).await.json()["epoch"].clone();
    assert!(after.is_string());
    assert_ne!(after, before);
}

#[tokio::test]
async fn the_epoch_survives_a_restart_with_a_store() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Some(std::sync::Arc::new(
        l2f_mocks::store::Store::open(&dir.path().join("m.sqlite")).expect("store"),
    ));
    let epoch = |store| async move {
        let r = customers::router(Customers::new(Config::default(), store).expect("app"));
        get(&r, "/api/v1/events", T).await.json()["epoch"].clone()
    };
    let first = epoch(store.clone()).await;
    assert_eq!(epoch(store).await, first);
}

#[tokio::test]
async fn a_country_change_is_normalised_and_emits_account_updated() {
    let r = app();
    let id = account(&r, "NL").await;
    let path = format!("/api/v1/accounts/{id}");
    let bad = json(
        &r,
        Method::PATCH,
        &path,
        T,
        &json!({ "country": "Untied Kingdom" }),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["error"]["field"], "country");
    assert_eq!(bad.json()["error"]["value"], "Untied Kingdom");
    let ok = json(
        &r,
        Method::PATCH,
        &path,
        T,
        &json!({ "country": "germany", "company": "AE GmbH" }),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.json()["country"], "DE");
    // The same change again changes nothing and says nothing.
    json(&r, Method::PATCH, &path, T, &json!({ "country": "DE" })).await;
    let feed = get(&r, "/api/v1/events", T).await.json();
    assert_eq!(kinds(&feed), ["AccountUpdated"]);
    assert_eq!(feed["events"][0]["origin"], "customer");
    assert_eq!(feed["events"][0]["data"]["account"]["country"], "DE");
    assert_eq!(feed["events"][0]["data"]["account"]["company"], "AE GmbH");
    let missing = json(
        &r,
        Method::PATCH,
        "/api/v1/accounts/cust_404404",
        T,
        &json!({ "name": "N" }),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

const SF_ACCOUNT: &str = "001L2F000000000001AAA";

async fn hub_account(r: &Router) {
    let reply = json(r, Method::PUT, &format!("/api/v1/hub/accounts/{SF_ACCOUNT}"), T, &json!({ "email": "buyer@acme.example", "name": "Buyer", "company": "Acme", "country": "DE" })).await;
    assert!(reply.status.is_success(), "{}", reply.text);
}

fn mirror(account_id: &str, order_id: Option<&str>) -> Value {
    json!({
        "account_id": account_id, "order_id": order_id, "deployment": "saas",
        "plan_sku": "premium-saas-1y", "seats": 10, "term_start": "2026-12-02",
        "term_end": "2027-12-02", "auto_renew": true, "status": "active"
    })
}

#[tokio::test]
async fn hub_upserts_an_account_under_its_id_without_an_event() {
    let r = app();
    let path = format!("/api/v1/hub/accounts/{SF_ACCOUNT}");
    let body = json!({ "email": "buyer@acme.example", "name": "Buyer", "company": "Acme", "country": "UK" });
    let created = json(&r, Method::PUT, &path, T, &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json()["id"], SF_ACCOUNT);
    assert_eq!(created.json()["country"], "GB");
    let again = json(
        &r,
        Method::PUT,
        &path,
        T,
        &json!({ "email": "buyer@acme.example", "name": "Buyer B", "country": "GB" }),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["name"], "Buyer B");
    assert_eq!(
        get(&r, &format!("/api/v1/accounts/{SF_ACCOUNT}"), T)
            .await
            .json()["account"]["name"],
        "Buyer B"
    );
    assert_eq!(
        get(&r, "/api/v1/events", T).await.json()["events"],
        json!([])
    );
}

/// A web-store purchase is found by its order id and gets Zuora's number; the same body
/// again changes nothing and says nothing (spec-mocks 1.5).
#[tokio::test]
async fn hub_mirror_finds_a_web_store_purchase_by_order_id_and_is_idempotent() {
    let r = app();
    let id = account(&r, "US").await;
    let sub = purchase(
        &r,
        json!({ "account_id": id, "deployment": "saas", "plan": "premium", "seats": 10 }),
    )
    .await;
    let sub_id = sub["id"].as_str().expect("id");
    let path = "/api/v1/hub/subscriptions/A-S00000001";
    let first = json(&r, Method::PUT, path, T, &mirror(&id, Some(sub_id))).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.json()["id"], sub_id);
    assert_eq!(first.json()["zuora_subscription_number"], "A-S00000001");
    assert_eq!(first.json()["term_end"], "2027-12-02");
    let again = json(&r, Method::PUT, path, T, &mirror(&id, Some(sub_id))).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json(), first.json());
    // Only the purchase itself is in the feed: no echo of the hub's writes.
    assert_eq!(
        kinds(&get(&r, "/api/v1/events", T).await.json()),
        ["OrderPlaced"]
    );
    // The customer-facing endpoints take the Zuora number as the id.
    let by_number = get(&r, "/api/v1/subscriptions/A-S00000001", T).await;
    assert_eq!(by_number.json()["id"], sub_id);
}

/// The hub's own changes come back with origin `hub`, so the hub can prove it ignores them.
#[tokio::test]
async fn hub_mirror_changes_emit_events_with_origin_hub() {
    let r = app();
    hub_account(&r).await;
    let path = "/api/v1/hub/subscriptions/A-S00000007";
    let created = json(&r, Method::PUT, path, T, &json!({
        "account_id": SF_ACCOUNT, "order_id": "006L2F000000000001AAA", "deployment": "self_managed",
        "plan_sku": "ultimate-self-managed-1y", "seats": 50, "term_start": "2026-12-02",
        "term_end": "2027-12-02", "auto_renew": false, "status": "active"
    })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let c = created.json();
    assert_eq!(c["channel"], "sales_assisted");
    assert_eq!(c["terms_required"], true);
    assert_eq!(c["plan"], "ultimate");
    assert_eq!(c["term_months"], 12);
    assert_eq!(
        get(&r, "/api/v1/events", T).await.json()["events"],
        json!([])
    );

    let mut cancel = json!({
        "account_id": SF_ACCOUNT, "deployment": "self_managed", "plan_sku": "ultimate-self-managed-1y",
        "seats": 50, "term_start": "2026-12-02", "term_end": "2027-12-02", "auto_renew": true, "status": "active"
    });
    json(&r, Method::PUT, path, T, &cancel).await;
    cancel["auto_renew"] = json!(false);
    cancel["status"] = json!("cancelled");
    cancel["cancellation_reason"] = json!("entity_change");
    let cancelled = json(&r, Method::PUT, path, T, &cancel).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.json()["status"], "cancelled");
    let feed = get(&r, "/api/v1/events", T).await.json();
    assert_eq!(
        kinds(&feed),
        [
            "AutoRenewChanged",
            "AutoRenewChanged",
            "SubscriptionCancelled"
        ]
    );
    for ev in feed["events"].as_array().expect("events") {
        assert_eq!(ev["origin"], "hub");
        assert_eq!(ev["data"]["zuora_subscription_number"], "A-S00000007");
        assert_eq!(ev["data"]["account_id"], SF_ACCOUNT);
    }
    assert_eq!(feed["events"][2]["data"]["reason"], "entity_change");
    // The license push is a hub write too: no event.
    json(
        &r,
        Method::PUT,
        "/api/v1/subscriptions/A-S00000007/license",
        T,
        &json!({ "status": "held" }),
    )
    .await;
    assert_eq!(kinds(&get(&r, "/api/v1/events", T).await.json()).len(), 3);
}

#[tokio::test]
async fn hub_mirror_refuses_what_it_cannot_store() {
    let r = app();
    hub_account(&r).await;
    let put = |body: Value| {
        let r = r.clone();
        async move {
            let reply = json(&r, Method::PUT, "/api/v1/hub/subscriptions/A-S1", T, &body).await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                reply.text
            );
            reply.json()["error"]["field"]
                .as_str()
                .unwrap_or("")
                .to_string()
        }
    };
    let with = |k: &str, v: Value| {
        let mut b = mirror(SF_ACCOUNT, None);
        b[k] = v;
        b
    };
    assert_eq!(
        put(with("account_id", json!("001NOPE"))).await,
        "account_id"
    );
    assert_eq!(put(with("status", json!("paused"))).await, "status");
    assert_eq!(put(with("term_end", json!("2026-01-01"))).await, "term_end");
    assert_eq!(
        put(with("term_start", json!("02/12/2026"))).await,
        "term_start"
    );
    assert_eq!(put(with("channel", json!("fax"))).await, "channel");
    assert_eq!(
        put(with("cancellation_reason", json!("bored"))).await,
        "cancellation_reason"
    );
}

/// Customer-facing subscription events carry Zuora's number once mirrored, and the
/// endpoints take that number as the id (spec-mocks 1.6).
#[tokio::test]
async fn customer_events_carry_the_zuora_number_and_take_it_as_id() {
    let r = app();
    let id = account(&r, "US").await;
    let sub = purchase(
        &r,
        json!({ "account_id": id, "deployment": "self_managed", "plan": "premium", "seats": 10 }),
    )
    .await;
    let sub_id = sub["id"].as_str().expect("id").to_string();
    let before = json(
        &r,
        Method::PUT,
        &format!("/api/v1/subscriptions/{sub_id}/auto-renew"),
        T,
        &json!({ "auto_renew": false }),
    )
    .await;
    assert_eq!(before.status, StatusCode::OK);
    let mut m = mirror(&id, Some(&sub_id));
    m["deployment"] = json!("self_managed");
    m["plan_sku"] = json!("premium-self-managed-1y");
    m["auto_renew"] = json!(false);
    json(
        &r,
        Method::PUT,
        "/api/v1/hub/subscriptions/A-S00000042",
        T,
        &m,
    )
    .await;
    let n = "A-S00000042";
    assert_eq!(
        json(
            &r,
            Method::PUT,
            &format!("/api/v1/subscriptions/{n}/auto-renew"),
            T,
            &json!({ "auto_renew": true })
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        json(
            &r,
            Method::POST,
            &format!("/api/v1/subscriptions/{n}/eula"),
            T,
            &json!({ "accepted_by": "ada@example.com" })
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        json(
            &r,
            Method::POST,
            &format!("/api/v1/subscriptions/{n}/usage"),
            T,
            &json!({ "active_users": 9, "billable_users": 8 })
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        json(
            &r,
            Method::POST,
            &format!("/api/v1/subscriptions/{n}/cancel"),
            T,
            &json!({ "reason": "customer_request" })
        )
        .await
        .status,
        StatusCode::OK
    );
    let feed = get(&r, "/api/v1/events", T).await.json();
    assert_eq!(
        kinds(&feed),
        [
            "OrderPlaced",
            "AutoRenewChanged",
            "AutoRenewChanged",
            "EulaAccepted",
            "UsageReported",
            "SubscriptionCancelled"
        ]
    );
    let ev = feed["events"].as_array().expect("events");
    assert_eq!(
        ev[1]["data"],
        json!({ "subscription_id": sub_id, "zuora_subscription_number": null, "account_id": id, "auto_renew": false })
    );
    assert_eq!(
        ev[2]["data"],
        json!({ "subscription_id": sub_id, "zuora_subscription_number": n, "account_id": id, "auto_renew": true })
    );
    assert_eq!(
        ev[5]["data"],
        json!({ "subscription_id": sub_id, "zuora_subscription_number": n, "account_id": id, "reason": "customer_request" })
    );
    for e in &ev[1..] {
        assert_eq!(e["origin"], "customer");
    }
    assert_eq!(ev[3]["data"]["zuora_subscription_number"], n);
    assert_eq!(ev[4]["data"]["zuora_subscription_number"], n);
}

/// Reconciliation reads every account and subscription a page at a time.
#[tokio::test]
async fn lists_are_paged_with_a_link_to_the_next_page() {
    let r = app();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(account(&r, "US").await);
    }
    let p1 = get(&r, "/api/v1/accounts?per_page=2", T).await;
    assert_eq!(p1.status, StatusCode::OK, "{}", p1.text);
    assert_eq!(p1.json()["total"], 5);
    assert_eq!(p1.json()["page"], 1);
    assert_eq!(p1.json()["per_page"], 2);
    assert_eq!(p1.json()["items"][0]["id"], ids[0].as_str());
    assert_eq!(
        p1.header("link").as_deref(),
        Some("</api/v1/accounts?page=2&per_page=2>; rel=\"next\"")
    );
    let p3 = get(&r, "/api/v1/accounts?page=3&per_page=2", T).await;
    assert_eq!(p3.json()["items"].as_array().map(Vec::len), Some(1));
    assert!(p3.header("link").is_none());
    let all = get(&r, "/api/v1/accounts", T).await.json();
    assert_eq!(all["per_page"], 100);
    assert_eq!(
        get(&r, "/api/v1/accounts?per_page=5000", T).await.json()["per_page"],
        1000
    );
    assert_eq!(
        get(&r, "/api/v1/accounts?page=x", T).await.status,
        StatusCode::BAD_REQUEST
    );

    for _ in 0..3 {
        purchase(
            &r,
            json!({ "account_id": ids[1], "deployment": "saas", "plan": "premium", "seats": 1 }),
        )
        .await;
    }
    purchase(
        &r,
        json!({ "account_id": ids[2], "deployment": "saas", "plan": "premium", "seats": 1 }),
    )
    .await;
    let subs = get(
        &r,
        &format!("/api/v1/subscriptions?account_id={}&per_page=2", ids[1]),
        T,
    )
    .await;
    assert_eq!(subs.json()["total"], 3);
    assert_eq!(
        subs.header("link").as_deref(),
        Some(
            format!(
                "</api/v1/subscriptions?page=2&per_page=2&account_id={}>; rel=\"next\"",
                ids[1]
            )
            .as_str()
        )
    );
    assert_eq!(get(&r, "/api/v1/subscriptions", T).await.json()["total"], 4);
}

/// Handbook rule 7: the 14-day notice is the customers app's. The hub sends it through
/// mail and records it here, once per subscription, term and day: 201 first, 200 with the
/// notice as first recorded after; `RenewalNoticeSent` with origin `hub` (dropped by the
/// hub's own source, kept for audits); shown with the subscription.
#[tokio::test]
async fn the_hub_records_the_14_day_notice_once_per_term() {
    let r = app();
    let acct = account(&r, "GB").await;
    let sub = purchase(
        &r,
        json!({ "account_id": acct, "deployment": "saas", "plan": "premium", "seats": 5 }),
    )
    .await;
    let id = sub["id"].as_str().expect("id");
    let term_end = sub["term_end"].as_str().expect("end");
    let body = json!({
        "subscription_id": id, "days_before": 14, "term_end": term_end,
        "sent_at": "2027-01-01T09:00:00Z", "message_id": "<20270101090000.ab@mg.l2f.example>",
        "recipient": "ada@example.com"
    });
    let first = json(&r, Method::POST, "/api/v1/hub/notices", T, &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.json()["sent_at"], "2027-01-01T09:00:00.000Z");
    let mut again = body.clone();
    again["sent_at"] = json!("2027-01-02T09:00:00Z");
    let second = json(&r, Method::POST, "/api/v1/hub/notices", T, &again).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(
        second.json()["sent_at"],
        "2027-01-01T09:00:00.000Z",
        "kept as first recorded"
    );

    let shown = get(&r, &format!("/api/v1/subscriptions/{id}"), T)
        .await
        .json();
    assert_eq!(shown["notices"].as_array().map(Vec::len), Some(1));
    assert_eq!(shown["notices"][0]["days_before"], 14);
    let feed = get(&r, "/api/v1/events", T).await.json();
    let sent: Vec<&Value> = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "RenewalNoticeSent")
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["origin"], "hub");
    assert_eq!(sent[0]["data"]["subscription_id"], id);
    assert_eq!(sent[0]["data"]["sent_by"], "customers");

    for (bad, field) in [
        (
            json!({ "subscription_id": id, "days_before": 14, "term_end": "soon" }),
            "term_end",
        ),
        (
            json!({ "subscription_id": id, "days_before": 14, "term_end": term_end, "channel": "sms" }),
            "channel",
        ),
        (
            json!({ "subscription_id": id, "days_before": 400, "term_end": term_end }),
            "days_before",
        ),
    ] {
        let reply = json(&r, Method::POST, "/api/v1/hub/notices", T, &bad).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(reply.json()["error"]["field"], field);
    }
    let unknown = json(
        &r,
        Method::POST,
        "/api/v1/hub/notices",
        T,
        &json!({ "subscription_id": "sub_999999", "days_before": 14, "term_end": term_end }),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}
