//! The Zuora mock against the developer.zuora.com documentation.
mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::Router;
use common::{form, get, json, kinds, raw, send, zuora_token};
use l2f_mocks::kit::{FaultAction, FaultRule};
use l2f_mocks::zuora::{self, Config, Zuora};
use serde_json::{json, Value};

fn app(cfg: Config) -> Router {
    zuora::router(Zuora::new(cfg, None).expect("mock"))
}

async fn token(r: &Router) -> String {
    zuora_token(r, &Config::default()).await
}

/// The "Create an account" request sample (name, autoPay, billCycleDay, billToContact with
/// a country, currency) and its response fields (success, accountId, accountNumber,
/// billToContactId, soldToContactId).
/// https://developer.zuora.com/v1-api-reference/api/operation/POST_Account/
async fn create_account(r: &Router, t: &str, extra: Value) -> String {
    let mut body = json!({
        "name": "Amy Lawrence's account",
        "autoPay": false,
        "billCycleDay": 1,
        "currency": "USD",
        "billToContact": { "firstName": "Amy", "lastName": "Lawrence", "state": "California", "country": "USA" }
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let reply = json(r, Method::POST, "/v1/accounts", t, &body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let v = reply.json();
    assert_eq!(v["success"], true, "{v}");
    for f in [
        "accountId",
        "accountNumber",
        "billToContactId",
        "soldToContactId",
    ] {
        assert!(v[f].is_string(), "{f} missing in {v}");
    }
    v["accountNumber"].as_str().expect("number").to_string()
}

async fn post_order(r: &Router, t: &str, body: &Value) -> Value {
    json(r, Method::POST, "/v1/orders", t, body).await.json()
}

fn create_order(account: &str, plan: &str, term_type: &str) -> Value {
    json!({
        "orderDate": "2026-01-01",
        "existingAccountNumber": account,
        "subscriptions": [{
            "orderActions": [{
                "type": "CreateSubscription",
                "triggerDates": [{ "name": "ContractEffective", "triggerDate": "2026-01-01" }],
                "createSubscription": {
                    "terms": {
                        "initialTerm": { "period": 12, "periodType": "Month", "termType": term_type },
                        "renewalSetting": "RENEW_WITH_SPECIFIC_TERM",
                        "renewalTerms": [{ "period": 12, "periodType": "Month" }],
                        "autoRenew": true
                    },
                    "subscribeToRatePlans": [{
                        "productRatePlanId": plan,
                        "chargeOverrides": [{ "productRatePlanChargeId": "prpc-seat", "pricing": { "recurringPerUnit": { "quantity": 25 } } }]
                    }]
                }
            }]
        }]
    })
}

/// OAuth: `POST /oauth/token` with client_id, client_secret and
/// grant_type=client_credentials answers access_token, token_type, expires_in, scope, jti.
/// https://developer.zuora.com/v1-api-reference/api/operation/createToken/
#[tokio::test]
async fn token_endpoint_answers_the_documented_fields() {
    let r = app(Config::default());
    let c = Config::default();
    let reply = form(
        &r,
        "/oauth/token",
        &[
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    let v = reply.json();
    for f in ["access_token", "token_type", "expires_in", "scope", "jti"] {
        assert!(v.get(f).is_some(), "{f} missing in {v}");
    }
    assert_eq!(v["token_type"], "bearer");
    let bad = form(
        &r,
        "/oauth/token",
        &[
            ("client_id", &c.client_id),
            ("client_secret", "nope"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn account_keeps_country_entity_batch_profile_and_auto_pay() {
    let r = app(Config::default());
    let t = token(&r).await;
    let auth = format!("Bearer {t}");
    let body = json!({
        "name": "Acme GmbH", "currency": "EUR", "autoPay": true, "batch": "Batch2",
        "communicationProfileId": "Silent",
        "billToContact": { "firstName": "Ada", "lastName": "Lovelace", "country": "Germany" }
    });
    let reply = send(
        &r,
        Method::POST,
        "/v1/accounts",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("Zuora-Entity-Ids", "GitLab GmbH"),
        ],
        body.to_string(),
    )
    .await;
    let number = reply.json()["accountNumber"]
        .as_str()
        .expect("number")
        .to_string();
    let got = get(&r, &format!("/v1/accounts/{number}"), &t).await.json();
    assert_eq!(got["billToContact"]["country"], "DE");
    assert_eq!(got["basicInfo"]["batch"], "Batch2");
    assert_eq!(got["basicInfo"]["communicationProfileId"], "Silent");
    assert_eq!(got["basicInfo"]["Entity__c"], "GitLab GmbH");
    assert_eq!(got["billingAndPayment"]["autoPay"], true);

    let bad_batch = json(&r, Method::POST, "/v1/accounts", &t, &json!({ "name": "X", "batch": "Batch99", "billToContact": { "firstName": "A", "lastName": "B" } })).await;
    assert_eq!(bad_batch.status, StatusCode::OK);
    assert_eq!(bad_batch.json()["success"], false);
    assert_eq!(bad_batch.json()["reasons"][0]["code"], 50000020);
}

/// "Create an order" with a CreateSubscription action answers success, orderNumber,
/// accountNumber, status and the subscription numbers.
/// https://developer.zuora.com/v1-api-reference/api/operation/POST_Order/
#[tokio::test]
async fn order_creates_amends_renews_and_cancels_a_subscription() {
    let r = app(Config::default());
    let t = token(&r).await;
    let account = create_account(&r, &t, json!({})).await;
    let created = post_order(
        &r,
        &t,
        &create_order(&account, "prp-premium-saas", "TERMED"),
    )
    .await;
    assert_eq!(created["success"], true, "{created}");
    assert_eq!(created["status"], "Completed");
    assert!(created["orderNumber"]
        .as_str()
        .is_some_and(|n| n.starts_with("O-")));
    let sub = created["subscriptionNumbers"][0]
        .as_str()
        .expect("sub")
        .to_string();
    assert_eq!(created["subscriptions"][0]["status"], "Active");

    let s = get(&r, &format!("/v1/subscriptions/{sub}"), &t)
        .await
        .json();
    assert_eq!(s["termStartDate"], "2026-01-01");
    assert_eq!(s["termEndDate"], "2027-01-01");
    assert_eq!(s["autoRenew"], true);
    assert_eq!(s["ratePlans"][0]["quantity"], 25.0);

    let amend = |action: Value| json!({ "orderDate": "2026-06-01", "existingAccountNumber": account, "subscriptions": [{ "subscriptionNumber": sub, "orderActions": [action] }] });
    let add = post_order(&r, &t, &amend(json!({ "type": "AddProduct", "addProduct": { "productRatePlanId": "prp-ci-minutes" } }))).await;
    assert_eq!(add["success"], true, "{add}");
    let off = post_order(
        &r,
        &t,
        &amend(
            json!({ "type": "TermsAndConditions", "termsAndConditions": { "autoRenew": false } }),
        ),
    )
    .await;
    assert_eq!(off["success"], true, "{off}");
    let renew = post_order(
        &r,
        &t,
        &amend(json!({ "type": "RenewSubscription", "renewSubscription": {} })),
    )
    .await;
    assert_eq!(renew["success"], true, "{renew}");
    let s = get(&r, &format!("/v1/subscriptions/{sub}"), &t)
        .await
        .json();
    assert_eq!(s["termEndDate"], "2028-01-01");
    assert_eq!(s["autoRenew"], false);
    assert_eq!(s["ratePlans"].as_array().map(Vec::len), Some(2));
    let cancel = post_order(&r, &t, &amend(json!({ "type": "CancelSubscription", "cancelSubscription": { "cancellationPolicy": "SpecificDate", "cancellationEffectiveDate": "2026-07-01" } }))).await;
    assert_eq!(cancel["subscriptions"][0]["status"], "Cancelled");

    let events = get(&r, "/__admin/events?after=0", &t).await.json();
    assert_eq!(
        kinds(&events),
        [
            "SubscriptionCreated",
            "SubscriptionAmended",
            "AutoRenewChanged",
            "SubscriptionRenewed",
            "SubscriptionCancelled"
        ]
    );

    let declined = json(
        &r,
        Method::POST,
        "/__admin/payments/decline",
        &t,
        &json!({ "subscriptionNumber": sub }),
    )
    .await;
    assert_eq!(declined.json()["success"], true);
    let after = get(&r, "/__admin/events?after=5", &t).await.json();
    assert_eq!(after["events"][0]["type"], "PaymentDeclined");
}

/// The error-codes guide's sample: an invalid termType answers HTTP 200 with
/// `{"success":false,"processId":...,"reasons":[{"code":53100320,"message":"'termType' value should be one of: TERMED, EVERGREEN"}]}`.
/// https://developer.zuora.com/docs/guides/error-codes
#[tokio::test]
async fn invalid_term_type_round_trips_the_documented_error() {
    let r = app(Config::default());
    let t = token(&r).await;
    let account = create_account(&r, &t, json!({})).await;
    let reply = json(
        &r,
        Method::POST,
        "/v1/orders",
        &t,
        &create_order(&account, "prp-premium-saas", "SOMETIMES"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let v = reply.json();
    assert_eq!(v["success"], false);
    assert!(v["processId"].is_string());
    assert_eq!(
        v["reasons"],
        json!([{ "code": 53100320, "message": "'termType' value should be one of: TERMED, EVERGREEN" }])
    );
    // Nothing was created by the failed order.
    let subs = get(&r, &format!("/v1/subscriptions/accounts/{account}"), &t)
        .await
        .json();
    assert_eq!(subs["subscriptions"], json!([]));
}

/// All or nothing: an order whose last part fails leaves nothing of its earlier parts — not
/// the amendment of an existing subscription, not a subscription it created, not the number
/// it would have used.
#[tokio::test]
async fn an_order_that_fails_in_a_later_part_changes_nothing() {
    let r = app(Config::default());
    let t = token(&r).await;
    let account = create_account(&r, &t, json!({})).await;
    let created = post_order(
        &r,
        &t,
        &create_order(&account, "prp-premium-saas", "TERMED"),
    )
    .await;
    let sub = created["subscriptionNumbers"][0]
        .as_str()
        .expect("sub")
        .to_string();
    let before = get(&r, &format!("/v1/subscriptions/{sub}"), &t)
        .await
        .json();
    let good = create_order(&account, "prp-premium-saas", "TERMED")["subscriptions"][0].clone();
    let bad = create_order(&account, "prp-premium-saas", "SOMETIMES")["subscriptions"][0].clone();
    let off = json!({ "subscriptionNumber": sub, "orderActions": [{ "type": "TermsAndConditions", "termsAndConditions": { "autoRenew": false } }] });
    let order = |parts: Vec<Value>| json!({ "orderDate": "2026-06-01", "existingAccountNumber": account, "subscriptions": parts });
    let failed = post_order(&r, &t, &order(vec![off.clone(), good.clone(), bad])).await;
    assert_eq!(failed["success"], false, "{failed}");
    assert_eq!(
        get(&r, &format!("/v1/subscriptions/{sub}"), &t)
            .await
            .json(),
        before
    );
    let subs = get(&r, &format!("/v1/subscriptions/accounts/{account}"), &t)
        .await
        .json();
    assert_eq!(
        subs["subscriptions"].as_array().map(Vec::len),
        Some(1),
        "{subs}"
    );
    // The same order without the bad part: the numbers the failed one would have used.
    let again = post_order(&r, &t, &order(vec![off, good])).await;
    assert_eq!(again["success"], true, "{again}");
    let after = get(&r, &format!("/v1/subscriptions/{sub}"), &t)
        .await
        .json();
    assert_eq!(after["autoRenew"], false);
    let twin = app(Config::default());
    let t2 = token(&twin).await;
    let account2 = create_account(&twin, &t2, json!({})).await;
    assert_eq!(account2, account);
    post_order(
        &twin,
        &t2,
        &create_order(&account, "prp-premium-saas", "TERMED"),
    )
    .await;
    let off2 = json!({ "subscriptionNumber": sub, "orderActions": [{ "type": "TermsAndConditions", "termsAndConditions": { "autoRenew": false } }] });
    let good2 = create_order(&account, "prp-premium-saas", "TERMED")["subscriptions"][0].clone();
    let same = post_order(&twin, &t2, &order(vec![off2, good2])).await;
    assert_eq!(
        (&again["subscriptionNumbers"], &again["orderNumber"]),
        (&same["subscriptionNumbers"], &same["orderNumber"]),
        "the failed order used no numbers"
    );
    // A new account in a failed order is not kept either.
    let mut fresh = create_order(&account, "prp-premium-saas", "SOMETIMES");
    fresh
        .as_object_mut()
        .expect("order")
        .remove("existingAccountNumber");
    fresh["newAccount"] = json!({ "name": "Never", "currency": "USD", "billCycleDay": 1, "autoPay": false, "billToContact": { "firstName": "N", "lastName": "V", "country": "USA" } });
    let failed = post_order(&r, &t, &fresh).await;
    assert_eq!(failed["success"], false, "{failed}");
    let accounts = get(&r, "/__admin/state", "").await.json();
    assert_eq!(
        accounts["accounts"].as_object().map(|a| a.len()),
        Some(1),
        "{}",
        accounts["accounts"]
    );
}

/// Idempotent requests: the same key and body replay the first answer and create nothing;
/// the same key with another body answers 422; a concurrent duplicate answers 409.
/// https://developer.zuora.com/docs/guides/idempotent-requests
#[tokio::test]
async fn two_creates_with_one_idempotency_key_make_one_subscription() {
    let r = app(Config::default());
    let t = token(&r).await;
    let auth = format!("Bearer {t}");
    let account = create_account(&r, &t, json!({})).await;
    let body = create_order(&account, "prp-premium-saas", "TERMED").to_string();
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("Idempotency-Key", "order-evt-1"),
    ];
    let first = send(&r, Method::POST, "/v1/orders", &headers, body.clone()).await;
    let second = send(&r, Method::POST, "/v1/orders", &headers, body.clone()).await;
    assert_eq!(first.text, second.text);
    let subs = get(&r, &format!("/v1/subscriptions/accounts/{account}"), &t)
        .await
        .json();
    assert_eq!(subs["subscriptions"].as_array().map(Vec::len), Some(1));

    let other = create_order(&account, "prp-ultimate-saas", "TERMED").to_string();
    let mismatch = send(&r, Method::POST, "/v1/orders", &headers, other).await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(mismatch.json()["success"], false);
}

#[tokio::test]
async fn a_concurrent_duplicate_gets_409() {
    let cfg = Config {
        faults: vec![FaultRule {
            path: "/v1/orders".into(),
            method: Some("POST".into()),
            action: FaultAction::Latency { ms: 300 },
            nth: Some(1),
            times: None,
            every: None,
            phase: 0,
            seen: 0,
            fired: 0,
        }],
        ..Config::default()
    };
    let r = app(cfg);
    let t = token(&r).await;
    let auth = format!("Bearer {t}");
    let account = create_account(&r, &t, json!({})).await;
    let body = create_order(&account, "prp-premium-saas", "TERMED").to_string();
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("Idempotency-Key", "order-evt-2"),
    ];
    let slow = send(&r, Method::POST, "/v1/orders", &headers, body.clone());
    let dup = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        send(&r, Method::POST, "/v1/orders", &headers, body.clone()).await
    };
    let (a, b) = tokio::join!(slow, dup);
    assert_eq!(a.json()["success"], true);
    assert_eq!(b.status, StatusCode::CONFLICT);
}

/// Zuora-Track-Id is echoed; RateLimit-Limit/Remaining/Reset accompany responses and 429
/// answers past the limit.
/// https://developer.zuora.com/docs/guides/rate-limits
#[tokio::test]
async fn track_id_is_echoed_and_rate_limits_answer_429() {
    let r = app(Config {
        requests_per_minute: Some(3),
        ..Config::default()
    });
    let t = token(&r).await; // 1
    let auth = format!("Bearer {t}");
    let one = send(
        &r,
        Method::GET,
        "/v1/accounts/A404",
        &[("authorization", &auth), ("Zuora-Track-Id", "trace-42")],
        "",
    )
    .await; // 2
    assert_eq!(one.header("zuora-track-id").as_deref(), Some("trace-42"));
    assert_eq!(one.header("ratelimit-limit").as_deref(), Some("3"));
    assert_eq!(one.header("ratelimit-remaining").as_deref(), Some("1"));
    assert!(one.header("ratelimit-reset").is_some());
    assert_eq!(one.json()["reasons"][0]["code"], 50000040);
    get(&r, "/v1/accounts/A404", &t).await; // 3
    let over = get(&r, "/v1/accounts/A404", &t).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(over.header("retry-after").is_some());
    assert_eq!(over.json()["reasons"][0]["code"], 59000070);
}

#[tokio::test]
async fn bad_credentials_and_bad_bodies_get_zuora_errors_not_500s() {
    let r = app(Config::default());
    let unauth = get(&r, "/v1/accounts/A1", "nope").await;
    assert_eq!(unauth.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unauth.json()["reasons"][0]["code"], 90000011);
    let t = token(&r).await;
    let broken = raw(&r, Method::POST, "/v1/accounts", &t, "{").await;
    assert_eq!(broken.status, StatusCode::OK);
    assert_eq!(broken.json()["reasons"][0]["code"], 50000090);
    let missing = json(
        &r,
        Method::POST,
        "/v1/accounts",
        &t,
        &json!({ "currency": "USD" }),
    )
    .await;
    assert_eq!(missing.json()["reasons"][0]["code"], 50000022);
    let no_date = json(
        &r,
        Method::POST,
        "/v1/orders",
        &t,
        &json!({ "subscriptions": [] }),
    )
    .await;
    assert_eq!(no_date.json()["reasons"][0]["code"], 53100022);
    let unknown_plan = {
        let account = create_account(&r, &t, json!({})).await;
        json(
            &r,
            Method::POST,
            "/v1/orders",
            &t,
            &create_order(&account, "prp-nope", "TERMED"),
        )
        .await
    };
    assert_eq!(unknown_plan.json()["reasons"][0]["code"], 53100020);
    let no_account = json(
        &r,
        Method::POST,
        "/v1/orders",
        &t,
        &create_order("A99999999", "prp-premium-saas", "TERMED"),
    )
    .await;
    assert_eq!(no_account.json()["reasons"][0]["code"], 50000040);
}

#[tokio::test]
async fn auto_renew_flips_through_the_subscription_update_call() {
    let r = app(Config::default());
    let t = token(&r).await;
    let account = create_account(&r, &t, json!({})).await;
    let created = post_order(
        &r,
        &t,
        &create_order(&account, "prp-premium-saas", "TERMED"),
    )
    .await;
    let sub = created["subscriptionNumbers"][0]
        .as_str()
        .expect("sub")
        .to_string();
    let upd = json(
        &r,
        Method::PUT,
        &format!("/v1/subscriptions/{sub}"),
        &t,
        &json!({ "autoRenew": false }),
    )
    .await
    .json();
    assert_eq!(upd["success"], true);
    assert_eq!(
        get(&r, &format!("/v1/subscriptions/{sub}"), &t)
            .await
            .json()["autoRenew"],
        false
    );
    let events = get(&r, "/__admin/events", &t).await.json();
    assert_eq!(events["events"][1]["type"], "AutoRenewChanged");
}

/// "List all products": `products[]` with `sku` and `productRatePlans[]` whose charges
/// carry their pricing, paged with `nextPage`:
/// https://developer.zuora.com/v1-api-reference/api/operation/GET_Catalog/
#[tokio::test]
async fn the_catalog_lists_products_by_sku_with_rate_plans_and_prices() {
    let r = app(Config::default());
    let t = token(&r).await;
    let first = get(&r, "/v1/catalog/products?pageSize=2", &t).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let first = first.json();
    assert_eq!(first["success"], true);
    assert_eq!(first["products"].as_array().map(Vec::len), Some(2));
    assert!(first["nextPage"]
        .as_str()
        .expect("next")
        .ends_with("/v1/catalog/products?page=2&pageSize=2"));
    let all = get(&r, "/v1/catalog/products", &t).await.json();
    assert!(all.get("nextPage").is_none());
    let skus: Vec<&str> = all["products"]
        .as_array()
        .expect("p")
        .iter()
        .map(|p| p["sku"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        skus,
        [
            "premium-saas-1y",
            "ultimate-saas-1y",
            "premium-self-managed-1y",
            "ultimate-self-managed-1y",
            "ci-minutes-1000"
        ]
    );
    let premium = &all["products"][0];
    assert_eq!(premium["productRatePlans"][0]["id"], "prp-premium-saas");
    assert_eq!(
        premium["productRatePlans"][0]["name"],
        "Premium SaaS - 1 Year"
    );
    let charge = &premium["productRatePlans"][0]["productRatePlanCharges"][0];
    assert_eq!(charge["model"], "PerUnit");
    assert_eq!(
        charge["pricing"][0],
        json!({ "currency": "USD", "price": 29.0, "tiers": null, "includedUnits": null, "overagePrice": null, "discountPercentage": null, "discountAmount": null })
    );
    assert_eq!(charge["pricingSummary"], json!(["USD29/Seat"]));
    let by_sku = get(&r, "/v1/catalog/products/ci-minutes-1000", &t)
        .await
        .json();
    assert_eq!(by_sku["productRatePlans"][0]["id"], "prp-ci-minutes");
    let by_id = get(
        &r,
        &format!(
            "/v1/catalog/products/{}",
            by_sku["id"].as_str().expect("id")
        ),
        &t,
    )
    .await
    .json();
    assert_eq!(by_id["sku"], "ci-minutes-1000");
    assert_eq!(
        get(&r, "/v1/catalog/products/nope", &t).await.json()["success"],
        false
    );
    assert_eq!(
        get(&r, "/v1/catalog/products?pageSize=41", &t).await.json()["success"],
        false
    );

    // An order for a rate plan the catalog does not have still fails.
    let acct = create_account(&r, &t, json!({})).await;
    let order = json!({ "orderDate": "2026-01-01", "existingAccountNumber": acct, "subscriptions": [{ "orderActions": [{ "type": "CreateSubscription", "createSubscription": { "subscribeToRatePlans": [{ "productRatePlanId": "prp-platinum" }] } }] }] });
    let refused = json(&r, Method::POST, "/v1/orders", &t, &order)
        .await
        .json();
    assert_eq!(refused["success"], false);
    assert_eq!(
        refused["reasons"][0]["message"],
        "Invalid productRatePlanId: prp-platinum"
    );
}

/// Custom fields of a subscription come back as top-level `Name__c` keys; orders carry
/// them in `subscriptions[].customFields` (and `createSubscription.customFields`), the
/// update call as top-level keys.
#[tokio::test]
async fn subscription_custom_fields_are_kept_and_shown_top_level() {
    let r = app(Config::default());
    let t = token(&r).await;
    let acct = create_account(&r, &t, json!({})).await;
    let order = json!({ "orderDate": "2026-01-01", "existingAccountNumber": acct, "subscriptions": [{
        "customFields": { "L2fOrderId__c": "sub_000002" },
        "orderActions": [{ "type": "CreateSubscription", "createSubscription": {
            "customFields": { "L2fChannel__c": "web_store" },
            "subscribeToRatePlans": [{ "productRatePlanId": "prp-premium-saas" }] } }]
    }] });
    let created = json(&r, Method::POST, "/v1/orders", &t, &order)
        .await
        .json();
    assert_eq!(created["success"], true, "{created}");
    let n = created["subscriptionNumbers"][0]
        .as_str()
        .expect("n")
        .to_string();
    let sub = get(&r, &format!("/v1/subscriptions/{n}"), &t).await.json();
    assert_eq!(sub["L2fOrderId__c"], "sub_000002");
    assert_eq!(sub["L2fChannel__c"], "web_store");
    let cancel = json!({ "orderDate": "2026-02-01", "existingAccountNumber": acct, "subscriptions": [{
        "subscriptionNumber": n,
        "customFields": { "L2fCancellationReason__c": "customer_request" },
        "clearingCustomFields": ["L2fChannel__c"],
        "orderActions": [{ "type": "CancelSubscription", "cancelSubscription": { "cancellationPolicy": "EndOfCurrentTerm" } }]
    }] });
    assert_eq!(
        json(&r, Method::POST, "/v1/orders", &t, &cancel)
            .await
            .json()["success"],
        true
    );
    let put = json(
        &r,
        Method::PUT,
        &format!("/v1/subscriptions/{n}"),
        &t,
        &json!({ "L2fNote__c": "mirrored" }),
    )
    .await
    .json();
    assert_eq!(put["success"], true);
    let listed = get(&r, &format!("/v1/subscriptions/accounts/{acct}"), &t)
        .await
        .json();
    let s = &listed["subscriptions"][0];
    assert_eq!(s["status"], "Cancelled");
    assert_eq!(s["L2fCancellationReason__c"], "customer_request");
    assert_eq!(s["L2fNote__c"], "mirrored");
    assert_eq!(s["L2fOrderId__c"], "sub_000002");
    assert_eq!(s["L2fChannel__c"], Value::Null);
    let bad = json!({ "orderDate": "2026-01-01", "existingAccountNumber": acct, "subscriptions": [{
        "customFields": { "NotCustom": "x" },
        "orderActions": [{ "type": "CreateSubscription", "createSubscription": { "subscribeToRatePlans": [{ "productRatePlanId": "prp-premium-saas" }] } }]
    }] });
    let refused = json(&r, Method::POST, "/v1/orders", &t, &bad).await.json();
    assert_eq!(refused["success"], false);
    assert_eq!(
        refused["reasons"][0]["message"],
        "Invalid custom field name: NotCustom"
    );
    // All or nothing: the refused order created no subscription.
    assert_eq!(
        get(&r, &format!("/v1/subscriptions/accounts/{acct}"), &t)
            .await
            .json()["subscriptions"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

/// A request dropped before Zuora handled it (the connection reset) gives its
/// Idempotency-Key back: the client's retry with the same key is processed, once, instead of
/// being refused with 409 until the claim expires.
#[tokio::test]
async fn a_reset_request_frees_its_idempotency_key_for_the_retry() {
    let mut cfg = l2f_mocks::server::MocksConfig::default();
    cfg.only(&["zuora".into()]).expect("only");
    cfg.without_https();
    cfg.zuora.faults = vec![FaultRule {
        method: Some("POST".into()),
        nth: Some(1),
        ..FaultRule::on("/v1/orders", FaultAction::Reset)
    }];
    let running = l2f_mocks::server::start(&cfg).await.expect("start");
    let base = running.endpoint("zuora").expect("ep").http.clone();
    let http = reqwest::Client::new();
    let t: Value = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", cfg.zuora.client_id.as_str()),
            ("client_secret", cfg.zuora.client_secret.as_str()),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = t["access_token"].as_str().expect("token").to_string();
    let acct: Value = http
        .post(format!("{base}/v1/accounts"))
        .bearer_auth(&token)
        .json(
            &json!({"name": "Reset Ltd", "autoPay": false, "billCycleDay": 1, "currency": "USD",
                      "billToContact": {"firstName": "A", "lastName": "B", "country": "USA"}}),
        )
        .send()
        .await
        .expect("account")
        .json()
        .await
        .expect("json");
    let account = acct["accountNumber"].as_str().expect("number").to_string();
    let order = create_order(&account, "prp-premium-saas", "TERMED");
    let send = || {
        http.post(format!("{base}/v1/orders"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "order-reset-1")
            .json(&order)
            .send()
    };
    assert!(send().await.is_err(), "the first attempt is reset");
    let retry = send().await.expect("retry");
    assert_eq!(retry.status(), 200);
    let v: Value = retry.json().await.expect("json");
    assert_eq!(v["success"], true, "{v}");
    let subs: Value = http
        .get(format!("{base}/v1/subscriptions/accounts/{account}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("subs")
        .json()
        .await
        .expect("json");
    assert_eq!(subs["subscriptions"].as_array().map(Vec::len), Some(1));
    running.shutdown().await;
}
