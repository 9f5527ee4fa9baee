//! The Zuora mock on a simulated clock: term-end renewals with the Batch3 auto-renewal
//! invoice and its payment (processed or declined), terms that end without renewal, and
//! Zuora's renewal notices in the email notification history.
mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::Router;
use common::{get, json, send, zuora_token};
use l2f_mocks::kit::Clock;
use l2f_mocks::zuora::{self, Config, Zuora};
use serde_json::{json, Value};

struct Z {
    r: Router,
    t: String,
    clock: Arc<Clock>,
}

async fn zuora_at(cfg: Config) -> Z {
    let clock = Clock::simulated_at("2026-01-01T00:00:00Z").expect("clock");
    let r = zuora::router(Zuora::with_clock(cfg.clone(), None, clock.clone()).expect("mock"));
    let t = zuora_token(&r, &cfg).await;
    Z { r, t, clock }
}

impl Z {
    async fn get(&self, uri: &str) -> Value {
        let reply = get(&self.r, uri, &self.t).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text);
        reply.json()
    }

    /// An account (`autoPay`, communication profile as given) with a bill-to email.
    async fn account(&self, auto_pay: bool, profile: &str) -> (String, String) {
        let v = json(
            &self.r,
            Method::POST,
            "/v1/accounts",
            &self.t,
            &json!({
                "name": "Ada's company", "currency": "USD", "autoPay": auto_pay,
                "paymentTerm": "Net 30", "communicationProfileId": profile,
                "billToContact": { "firstName": "Ada", "lastName": "Lovelace", "country": "GB", "workEmail": "ada@example.com" }
            }),
        )
        .await
        .json();
        assert_eq!(v["success"], true, "{v}");
        (
            v["accountNumber"].as_str().expect("n").to_string(),
            v["accountId"].as_str().expect("id").to_string(),
        )
    }

    /// A 12-month subscription from `start`: 25 seats of Premium SaaS (29.00) and 2 packs
    /// of CI minutes (10.00) = 745.00 a term.
    async fn subscription(
        &self,
        account: &str,
        start: &str,
        months: u32,
        auto_renew: bool,
    ) -> String {
        let v = json(
            &self.r,
            Method::POST,
            "/v1/orders",
            &self.t,
            &json!({
                "orderDate": start,
                "existingAccountNumber": account,
                "subscriptions": [{ "orderActions": [{
                    "type": "CreateSubscription",
                    "createSubscription": {
                        "terms": {
                            "initialTerm": { "period": months, "periodType": "Month", "termType": "TERMED", "startDate": start },
                            "renewalTerms": [{ "period": 12, "periodType": "Month" }],
                            "autoRenew": auto_renew
                        },
                        "subscribeToRatePlans": [
                            { "productRatePlanId": "prp-premium-saas", "chargeOverrides": [{ "pricing": { "recurringPerUnit": { "quantity": 25 } } }] },
                            { "productRatePlanId": "prp-ci-minutes", "chargeOverrides": [{ "pricing": { "recurringPerUnit": { "quantity": 2 } } }] }
                        ]
                    }
                }]}]
            }),
        )
        .await
        .json();
        assert_eq!(v["success"], true, "{v}");
        v["subscriptionNumbers"][0]
            .as_str()
            .expect("sub")
            .to_string()
    }

    async fn events(&self) -> Vec<Value> {
        let v = send(&self.r, Method::GET, "/__admin/events", &[], "")
            .await
            .json();
        v["events"].as_array().expect("events").clone()
    }

    async fn kinds(&self, number: &str) -> Vec<String> {
        self.events()
            .await
            .iter()
            .filter(|e| {
                e["data"]["subscription"]["subscriptionNumber"] == number
                    || e["data"]["subscriptionNumber"] == number
            })
            .map(|e| e["type"].as_str().unwrap_or("").to_string())
            .collect()
    }

    async fn admin(&self, method: Method, uri: &str, body: Value) -> Value {
        let reply = send(
            &self.r,
            method,
            uri,
            &[("content-type", "application/json")],
            body.to_string(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text);
        reply.json()
    }

    /// Every renewal notice of the email history (all results), walking 3-day windows
    /// (Zuora's limit) from `from` to `to`: `(notification, sendTime, toEmail)`.
    async fn notices(&self, from: &str, to: &str) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let mut day = chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").expect("from");
        let last = chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d").expect("to");
        while day <= last {
            let end = day + chrono::Days::new(3);
            let mut uri = format!(
                "/v1/notification-history/email?startTime={day}T00:00:00&endTime={}T23:59:59&failedOnly=false&pageSize=40",
                end - chrono::Days::new(1)
            );
            loop {
                let v = self.get(&uri).await;
                assert_eq!(v["success"], true, "{v}");
                for h in v["emailHistories"].as_array().expect("rows") {
                    out.push((
                        h["notification"].as_str().unwrap_or("").to_string(),
                        h["sendTime"].as_str().unwrap_or("").to_string(),
                        h["toEmail"].as_str().unwrap_or("").to_string(),
                    ));
                }
                match v["nextPage"].as_str() {
                    Some(n) => uri = n[n.find("/v1/").expect("path")..].to_string(),
                    None => break,
                }
            }
            day = end;
        }
        out
    }
}

/// At term end an auto-renewing subscription renews for its renewal term (version + 1,
/// `SubscriptionRenewed`), the day's Batch3 auto-renewal bill run posts an invoice of
/// catalog price × quantity per rate plan, and the card is charged (`PaymentProcessed`).
/// Invoices, items, payments and the bill run are readable over their endpoints.
/// https://developer.zuora.com/v1-api-reference/api/operation/GET_RetrieveAllPayments/
/// https://developer.zuora.com/docs/get-started/tutorials/view-all-invoices
#[tokio::test]
async fn auto_renewal_at_term_end_posts_a_batch3_invoice_and_collects_it() {
    let z = zuora_at(Config::default()).await;
    let (account, account_id) = z.account(true, "Default").await;
    let sub = z.subscription(&account, "2026-01-01", 12, true).await;

    z.clock.set("2026-12-31T23:59:59Z").expect("set");
    let before = z.get(&format!("/v1/subscriptions/{sub}")).await;
    assert_eq!(
        (before["termEndDate"].clone(), before["version"].clone()),
        (json!("2027-01-01"), json!(1))
    );

    z.clock.advance("1s").expect("advance");
    let s = z.get(&format!("/v1/subscriptions/{sub}")).await;
    assert_eq!(s["termStartDate"], "2027-01-01");
    assert_eq!(s["termEndDate"], "2028-01-01");
    assert_eq!(s["status"], "Active");
    assert_eq!(s["version"], 2);
    assert_eq!(
        z.kinds(&sub).await,
        [
            "SubscriptionCreated",
            "SubscriptionRenewed",
            "PaymentProcessed"
        ]
    );

    let events = z.events().await;
    let renewed = events
        .iter()
        .find(|e| e["type"] == "SubscriptionRenewed")
        .expect("renewed");
    assert_eq!(renewed["occurred_at"], "2027-01-01T00:00:00.000Z");
    assert_eq!(renewed["data"]["amount"], 745.0);
    let inv_no = renewed["data"]["invoiceNumber"]
        .as_str()
        .expect("invoice")
        .to_string();

    let inv = z.get(&format!("/v1/invoices/{inv_no}")).await;
    assert_eq!(inv["success"], true);
    assert_eq!(inv["accountId"], account_id.as_str());
    assert_eq!(
        (inv["amount"].clone(), inv["balance"].clone()),
        (json!(745.0), json!(0.0))
    );
    assert_eq!(inv["invoiceDate"], "2027-01-01");
    assert_eq!(inv["dueDate"], "2027-01-31");
    assert_eq!(inv["status"], "Posted");
    let items = z.get(&format!("/v1/invoices/{inv_no}/items")).await;
    let lines: Vec<(f64, f64, f64)> = items["invoiceItems"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["quantity"].as_f64().unwrap_or(0.0),
                i["unitPrice"].as_f64().unwrap_or(0.0),
                i["chargeAmount"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    assert_eq!(lines, [(25.0, 29.0, 725.0), (2.0, 10.0, 20.0)]);
    assert_eq!(items["invoiceItems"][0]["serviceStartDate"], "2027-01-01");
    assert_eq!(items["invoiceItems"][0]["serviceEndDate"], "2027-12-31");
    assert_eq!(items["invoiceItems"][0]["subscriptionName"], sub.as_str());

    let run = z
        .get(&format!(
            "/v1/bill-runs/{}",
            inv["billRunId"].as_str().expect("run")
        ))
        .await;
    assert_eq!(run["batches"], json!(["Batch3"]));
    assert_eq!(run["autoRenewal"], true);
    assert_eq!(run["targetDate"], "2027-01-01");

    let payments = z.get(&format!("/v1/payments?accountId={account_id}")).await;
    let p = &payments["payments"][0];
    assert_eq!(payments["payments"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        (
            p["status"].clone(),
            p["amount"].clone(),
            p["appliedAmount"].clone()
        ),
        (json!("Processed"), json!(745.0), json!(745.0))
    );
    assert_eq!(p["type"], "Electronic");
    let parts = z
        .get(&format!(
            "/v1/payments/{}/parts",
            p["number"].as_str().expect("n")
        ))
        .await;
    assert_eq!(parts["parts"][0]["invoiceId"], inv["id"]);

    let q = z
        .get(&format!(
            "/object-query/invoices?expand[]=invoiceitems&filter[]=accountId.EQ%3A{account_id}"
        ))
        .await;
    assert_eq!(q["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        q["data"][0]["invoiceItems"].as_array().map(Vec::len),
        Some(2)
    );
    let none = z
        .get("/object-query/invoices?filter[]=accountId.EQ%3Anobody")
        .await;
    assert_eq!(none["data"], json!([]));
    let bad = get(&z.r, "/object-query/invoices?filter[]=accountId", &z.t).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// A card set to decline (`POST /__admin/accounts/{n}/card`) fails the auto-renewal
/// payment as Zuora reports it: a payment in status `Error` with the gateway's code and
/// message, `PaymentDeclined`; the subscription stays renewed and the invoice unpaid (the
/// hub cancels it, rule 10).
#[tokio::test]
async fn a_declined_card_fails_the_renewal_payment_and_leaves_it_renewed_but_unpaid() {
    let z = zuora_at(Config::default()).await;
    let (account, account_id) = z.account(true, "Default").await;
    let sub = z.subscription(&account, "2026-01-01", 12, true).await;
    let card = z
        .admin(
            Method::POST,
            &format!("/__admin/accounts/{account}/card"),
            json!({ "declines": true, "gatewayResponseCode": "51", "gatewayResponse": "Insufficient funds" }),
        )
        .await;
    assert_eq!(card["card"]["declines"], true);
    z.clock.set("2027-01-01T06:00:00Z").expect("set");

    let s = z.get(&format!("/v1/subscriptions/{sub}")).await;
    assert_eq!(
        (
            s["status"].clone(),
            s["termEndDate"].clone(),
            s["autoRenew"].clone()
        ),
        (json!("Active"), json!("2028-01-01"), json!(true))
    );
    assert_eq!(
        z.kinds(&sub).await,
        [
            "SubscriptionCreated",
            "SubscriptionRenewed",
            "PaymentDeclined"
        ]
    );
    let declined = z
        .events()
        .await
        .into_iter()
        .find(|e| e["type"] == "PaymentDeclined")
        .expect("declined");
    assert_eq!(declined["data"]["reason"], "card_declined");
    assert_eq!(declined["data"]["gatewayResponseCode"], "51");
    assert_eq!(declined["data"]["autoRenewal"], true);
    assert_eq!(declined["data"]["amount"], 745.0);

    let payments = z
        .get(&format!("/v1/payments?accountId={account_id}&status=Error"))
        .await;
    let p = &payments["payments"][0];
    assert_eq!(p["status"], "Error");
    assert_eq!(p["gatewayResponseCode"], "51");
    assert_eq!(p["gatewayResponse"], "Insufficient funds");
    assert_eq!(p["appliedAmount"], 0.0);
    let one = z
        .get(&format!("/v1/payments/{}", p["id"].as_str().expect("id")))
        .await;
    assert_eq!(one["number"], p["number"]);
    let parts = z
        .get(&format!(
            "/v1/payments/{}/parts",
            p["number"].as_str().expect("n")
        ))
        .await;
    assert_eq!(parts["parts"], json!([]));
    let inv = z
        .get(&format!(
            "/v1/invoices/{}",
            declined["data"]["invoiceNumber"].as_str().expect("inv")
        ))
        .await;
    assert_eq!(inv["balance"], 745.0);
    assert!(z.get("/v1/payments?status=Processed").await["payments"]
        .as_array()
        .is_some_and(Vec::is_empty));
}

/// `{"declines": true, "times": 1}` declines only the next payment: the next year's
/// renewal is collected again.
#[tokio::test]
async fn a_card_set_to_decline_once_declines_only_the_next_renewal_payment() {
    let z = zuora_at(Config::default()).await;
    let (account, account_id) = z.account(true, "Default").await;
    let sub = z.subscription(&account, "2026-01-01", 12, true).await;
    z.admin(
        Method::POST,
        &format!("/__admin/accounts/{account}/card"),
        json!({ "declines": true, "times": 1 }),
    )
    .await;
    z.clock.set("2028-01-02T00:00:00Z").expect("set");
    assert_eq!(
        z.kinds(&sub).await,
        [
            "SubscriptionCreated",
            "SubscriptionRenewed",
            "PaymentDeclined",
            "SubscriptionRenewed",
            "PaymentProcessed"
        ]
    );
    let statuses: Vec<String> = z.get(&format!("/v1/payments?accountId={account_id}")).await
        ["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .map(|p| p["status"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(statuses, ["Error", "Processed"]);
    let card = send(
        &z.r,
        Method::GET,
        &format!("/__admin/accounts/{account}/card"),
        &[],
        "",
    )
    .await
    .json();
    assert_eq!(card["card"]["declines"], false);
}

/// Zuora collects automatically only from `autoPay` accounts: without it the renewal is
/// invoiced and no payment is attempted.
#[tokio::test]
async fn without_auto_pay_the_renewal_is_invoiced_and_no_payment_attempted() {
    let z = zuora_at(Config::default()).await;
    let (account, _) = z.account(false, "Default").await;
    let sub = z.subscription(&account, "2026-01-01", 12, true).await;
    z.clock.set("2027-01-02T00:00:00Z").expect("set");
    assert_eq!(
        z.kinds(&sub).await,
        ["SubscriptionCreated", "SubscriptionRenewed"]
    );
    assert_eq!(z.get("/v1/payments").await["payments"], json!([]));
}

/// A termed subscription without auto-renew that reaches its term end stays `Active`
/// with the term ended (Zuora does not cancel it); the mock raises
/// `SubscriptionTermEnded` once, and bills nothing.
#[tokio::test]
async fn a_term_without_auto_renew_ends_active_and_is_announced_once() {
    let z = zuora_at(Config::default()).await;
    let (account, _) = z.account(true, "Default").await;
    let sub = z.subscription(&account, "2026-01-01", 12, false).await;
    z.clock.set("2027-01-01T00:00:00Z").expect("set");
    z.clock.advance("400d").expect("advance");
    let s = z.get(&format!("/v1/subscriptions/{sub}")).await;
    assert_eq!(
        (
            s["status"].clone(),
            s["termEndDate"].clone(),
            s["version"].clone()
        ),
        (json!("Active"), json!("2027-01-01"), json!(1))
    );
    assert_eq!(
        z.kinds(&sub).await,
        ["SubscriptionCreated", "SubscriptionTermEnded"]
    );
    let ended = z
        .events()
        .await
        .into_iter()
        .find(|e| e["type"] == "SubscriptionTermEnded")
        .expect("ended");
    assert_eq!(ended["occurred_at"], "2027-01-01T00:00:00.000Z");
    assert_eq!(z.get("/object-query/invoices").await["data"], json!([]));
}

/// One advance across several term ends applies them in order, each at its own time.
#[tokio::test]
async fn one_advance_across_two_term_ends_renews_twice_in_order() {
    let z = zuora_at(Config::default()).await;
    let (account, _) = z.account(true, "Default").await;
    let sub = z.subscription(&account, "2026-01-01", 12, true).await;
    z.clock.advance("800d").expect("advance");
    let s = z.get(&format!("/v1/subscriptions/{sub}")).await;
    assert_eq!(
        (s["termEndDate"].clone(), s["version"].clone()),
        (json!("2029-01-01"), json!(3))
    );
    let renewals: Vec<String> = z
        .events()
        .await
        .iter()
        .filter(|e| e["type"] == "SubscriptionRenewed")
        .map(|e| e["occurred_at"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        renewals,
        ["2027-01-01T00:00:00.000Z", "2028-01-01T00:00:00.000Z"]
    );
    let dates: Vec<String> = z.get("/object-query/invoices").await["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|i| i["invoiceDate"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(dates, ["2027-01-01", "2028-01-01"]);
}

fn expected(days: &[u32], term_end: &str, to: &str) -> Vec<(String, String, String)> {
    let end = chrono::NaiveDate::parse_from_str(term_end, "%Y-%m-%d").expect("end");
    days.iter()
        .map(|d| {
            (
                format!("Renewal notice {d} days"),
                format!("{}T00:00:00", end - chrono::Days::new(u64::from(*d))),
                to.to_string(),
            )
        })
        .collect()
}

/// Handbook rule 7, Zuora's share: 90, 45, 15 and 0 days before term end always, 21 and
/// 3 with auto-renew, as emails in the email notification history, each once per
/// subscription and term, however the clock is advanced.
/// https://developer.zuora.com/v1-api-reference/api/operation/GET_EmailHistory/
#[tokio::test]
async fn zuora_sends_the_rule_7_notices_once_per_term_on_their_days() {
    let z = zuora_at(Config::default()).await;
    let (account, _) = z.account(true, "Default").await;
    let on = z.subscription(&account, "2026-01-01", 12, true).await;
    let off = z.subscription(&account, "2026-01-01", 12, false).await;
    for _ in 0..40 {
        z.clock.advance("10d").expect("advance");
    }
    z.clock.advance("0s").expect("again");
    let all = z.notices("2026-09-01", "2027-01-05").await;
    let mut want = expected(&[90, 45, 21, 15, 3, 0], "2027-01-01", "ada@example.com");
    want.extend(expected(&[90, 45, 15, 0], "2027-01-01", "ada@example.com"));
    want.sort();
    let mut got = all.clone();
    got.sort();
    assert_eq!(got, want);
    // The renewed term's notices come in the next year, the ended term's never again.
    let next = z.notices("2027-09-01", "2028-01-05").await;
    assert!(
        next.is_empty(),
        "nothing due yet in the next term: {next:?}"
    );
    z.clock.set("2028-01-02T00:00:00Z").expect("set");
    let next = z.notices("2027-09-01", "2028-01-05").await;
    assert_eq!(next.len(), 6, "{next:?}");
    let state = send(&z.r, Method::GET, "/__admin/state", &[], "")
        .await
        .json();
    assert_eq!(state["terms"][&off]["notices"]["21"], "skipped");
    assert_eq!(state["terms"][&on]["termStartDate"], "2028-01-01");
}

/// The Silent communication profile mutes Zuora's notices: none is sent and, as with a
/// Zuora notification that is inactive for the profile, nothing is recorded.
#[tokio::test]
async fn the_silent_profile_mutes_notices_and_nothing_is_recorded() {
    let z = zuora_at(Config::default()).await;
    let (account, _) = z.account(true, "Silent").await;
    let sub = z.subscription(&account, "2026-01-01", 12, true).await;
    z.clock.set("2027-01-01T00:00:00Z").expect("set");
    assert!(z.notices("2026-09-01", "2027-01-02").await.is_empty());
    let state = send(&z.r, Method::GET, "/__admin/state", &[], "")
        .await
        .json();
    assert_eq!(
        state["terms"][&sub]["termStartDate"], "2027-01-01",
        "renewed"
    );
    assert_eq!(z.kinds(&sub).await[1], "SubscriptionRenewed");
}

/// Auto-renew is read when a notice falls due: turned off after the 45-day notice, the
/// 21- and 3-day notices are not sent and the term ends without renewal.
#[tokio::test]
async fn auto_renew_turned_off_mid_term_drops_its_notices_and_the_renewal() {
    let z = zuora_at(Config::default()).await;
    let (account, _) = z.account(true, "Default").await;
    let sub = z.subscription(&account, "2026-01-01", 12, true).await;
    z.clock.set("2026-11-20T00:00:00Z").expect("set");
    let off = json(
        &z.r,
        Method::PUT,
        &format!("/v1/subscriptions/{sub}"),
        &z.t,
        &json!({ "autoRenew": false }),
    )
    .await;
    assert_eq!(off.json()["success"], true);
    z.clock.set("2027-01-10T00:00:00Z").expect("set");
    let names: Vec<String> = z
        .notices("2026-09-01", "2027-01-05")
        .await
        .into_iter()
        .map(|n| n.0)
        .collect();
    assert_eq!(
        names,
        [
            "Renewal notice 90 days",
            "Renewal notice 45 days",
            "Renewal notice 15 days",
            "Renewal notice 0 days"
        ]
    );
    assert_eq!(
        z.kinds(&sub).await,
        [
            "SubscriptionCreated",
            "AutoRenewChanged",
            "SubscriptionTermEnded"
        ]
    );
}

/// Notices due before the mock learned of the term (a backdated order) are not sent.
#[tokio::test]
async fn notices_already_past_when_the_subscription_is_created_are_not_sent() {
    let z = zuora_at(Config::default()).await;
    let (account, _) = z.account(true, "Default").await;
    z.subscription(&account, "2025-12-01", 3, false).await;
    z.clock.set("2026-03-02T00:00:00Z").expect("set");
    let names: Vec<String> = z
        .notices("2025-11-25", "2026-03-02")
        .await
        .into_iter()
        .map(|n| n.0)
        .collect();
    assert_eq!(
        names,
        [
            "Renewal notice 45 days",
            "Renewal notice 15 days",
            "Renewal notice 0 days"
        ]
    );
}

/// The email history's filters and limits: `failedOnly` defaults to true (OK rows are
/// then left out), `accountId`, `objectId`, `eventCategory`, `pageSize`/`nextPage`, and at
/// most three days between `startTime` and `endTime`.
#[tokio::test]
async fn email_history_filters_pages_and_limits_its_window() {
    let cfg = Config {
        notices: vec![
            zuora::notices::NoticeRule {
                days: 10,
                when: zuora::notices::NoticeWhen::Always,
            },
            zuora::notices::NoticeRule {
                days: 9,
                when: zuora::notices::NoticeWhen::Always,
            },
        ],
        ..Config::default()
    };
    let z = zuora_at(cfg).await;
    let (account, account_id) = z.account(true, "Default").await;
    let a = z.subscription(&account, "2026-01-01", 1, false).await;
    z.subscription(&account, "2026-01-01", 1, false).await;
    z.clock.set("2026-01-25T00:00:00Z").expect("set");
    let window = "startTime=2026-01-21T00:00:00&endTime=2026-01-24T00:00:00";
    let failed = z
        .get(&format!("/v1/notification-history/email?{window}"))
        .await;
    assert_eq!(
        failed["emailHistories"],
        json!([]),
        "failedOnly defaults to true"
    );
    let all = z
        .get(&format!(
            "/v1/notification-history/email?{window}&failedOnly=false"
        ))
        .await;
    let rows = all["emailHistories"].as_array().expect("rows");
    assert_eq!(rows.len(), 4);
    let row = &rows[0];
    for f in [
        "accountId",
        "bcc",
        "cc",
        "errorMessage",
        "eventCategory",
        "fromEmail",
        "notification",
        "replyTo",
        "result",
        "sendTime",
        "subject",
        "toEmail",
    ] {
        assert!(row.get(f).is_some(), "{f} missing in {row}");
    }
    assert_eq!(
        row["eventCategory"],
        "user.notification:SubscriptionRenewalNotice"
    );
    assert_eq!(row["result"], "OK");
    assert_eq!(row["accountId"], account_id.as_str());
    assert_eq!(row["sendTime"], "2026-01-22T00:00:00");
    let sub_a = z.get(&format!("/v1/subscriptions/{a}")).await;
    let by_object = z
        .get(&format!(
            "/v1/notification-history/email?{window}&failedOnly=false&objectId={}",
            sub_a["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(
        by_object["emailHistories"].as_array().map(Vec::len),
        Some(2)
    );
    let by_cat = z
        .get(&format!("/v1/notification-history/email?{window}&failedOnly=false&eventCategory=SubscriptionRenewalNotice&accountId={account_id}"))
        .await;
    assert_eq!(by_cat["emailHistories"].as_array().map(Vec::len), Some(4));
    let other = z.get(&format!("/v1/notification-history/email?{window}&failedOnly=false&eventCategory=user.notification:Other")).await;
    assert_eq!(other["emailHistories"], json!([]));
    let paged = z
        .get(&format!(
            "/v1/notification-history/email?{window}&failedOnly=false&pageSize=3"
        ))
        .await;
    assert_eq!(paged["emailHistories"].as_array().map(Vec::len), Some(3));
    let next = paged["nextPage"].as_str().expect("nextPage");
    let rest = z.get(&next[next.find("/v1/").expect("path")..]).await;
    assert_eq!(rest["emailHistories"].as_array().map(Vec::len), Some(1));
    assert!(rest.get("nextPage").is_none());
    let wide = z.get("/v1/notification-history/email?startTime=2026-01-01T00:00:00&endTime=2026-01-05T00:00:00").await;
    assert_eq!(wide["success"], false, "{wide}");
}

/// 200 subscriptions run a year in 1-day steps: every renewal, invoice and notice once.
#[tokio::test]
async fn a_year_of_200_subscriptions_in_daily_steps_is_quick_and_exact() {
    let z = zuora_at(Config::default()).await;
    let (account, _) = z.account(true, "Default").await;
    for i in 0..200u32 {
        let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("d")
            + chrono::Days::new(u64::from(i % 28));
        z.subscription(&account, &start.to_string(), 12, i % 2 == 0)
            .await;
    }
    let started = std::time::Instant::now();
    for _ in 0..400 {
        z.clock.advance("1d").expect("advance");
    }
    let took = started.elapsed();
    let state = send(&z.r, Method::GET, "/__admin/state", &[], "")
        .await
        .json();
    let emails = state["email_history"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(emails, 100 * 6 + 100 * 4);
    let renewed = z
        .events()
        .await
        .iter()
        .filter(|e| e["type"] == "SubscriptionRenewed")
        .count();
    assert_eq!(renewed, 100);
    assert_eq!(state["invoices"].as_object().map(|o| o.len()), Some(100));
    eprintln!("400 daily advances over 200 subscriptions: {took:?}");
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
}

// ---- over real sockets: one clock for the process, callouts, restarts -------------------

struct Hook {
    url: String,
    seen: Arc<std::sync::Mutex<Vec<Value>>>,
}

async fn hook() -> Hook {
    let seen: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                s.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Hook { url, seen }
}

impl Hook {
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if seen.len() >= n || tokio::time::Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

fn simulated(
    sqlite: Option<std::path::PathBuf>,
    callout_url: Option<String>,
) -> l2f_mocks::server::MocksConfig {
    let mut cfg = l2f_mocks::server::MocksConfig {
        clock: l2f_mocks::clock::ClockConfig {
            mode: l2f_mocks::clock::ClockMode::Simulated,
            start: "2026-01-01T00:00:00Z".into(),
            tick_ms: 100,
        },
        sqlite,
        ..Default::default()
    };
    cfg.zuora.callout_url = callout_url;
    cfg.zuora.callout_retry_base_ms = 10;
    cfg.without_https();
    cfg
}

struct Http {
    c: reqwest::Client,
    base: String,
    token: String,
}

impl Http {
    async fn new(running: &l2f_mocks::server::Running) -> Self {
        let base = running.endpoint("zuora").expect("zuora").http.clone();
        let cfg = Config::default();
        let c = reqwest::Client::new();
        let v: Value = c
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("client_id", cfg.client_id.as_str()),
                ("client_secret", &cfg.client_secret),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        Self {
            c,
            base,
            token: v["access_token"].as_str().expect("t").to_string(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .c
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("send").json().await.expect("json")
    }
}

/// Over sockets, with the process's one simulated clock advanced through *another* app
/// (the customers app): when the advance answers, the renewal and the declined payment
/// are applied and their callouts on their way; they arrive in order, in Zuora's shape.
#[tokio::test]
async fn an_advance_through_any_app_renews_and_declines_with_callouts_in_order() {
    let h = hook().await;
    let running = l2f_mocks::server::start(&simulated(None, Some(h.url.clone())))
        .await
        .expect("start");
    let z = Http::new(&running).await;
    let acct = z
        .call(reqwest::Method::POST, "/v1/accounts", Some(json!({
            "name": "Ada", "autoPay": true,
            "billToContact": { "firstName": "Ada", "lastName": "L", "country": "GB", "workEmail": "ada@example.com" }
        })))
        .await;
    let account = acct["accountNumber"].as_str().expect("n").to_string();
    let order = z
        .call(reqwest::Method::POST, "/v1/orders", Some(json!({
            "orderDate": "2026-01-01", "existingAccountNumber": account,
            "subscriptions": [{ "orderActions": [{ "type": "CreateSubscription", "createSubscription": {
                "terms": { "initialTerm": { "period": 12, "periodType": "Month", "termType": "TERMED" }, "renewalTerms": [{ "period": 12, "periodType": "Month" }], "autoRenew": true },
                "subscribeToRatePlans": [{ "productRatePlanId": "prp-premium-saas", "chargeOverrides": [{ "pricing": { "recurringPerUnit": { "quantity": 10 } } }] }]
            }}]}]
        })))
        .await;
    let sub = order["subscriptionNumbers"][0]
        .as_str()
        .expect("sub")
        .to_string();
    let http = reqwest::Client::new();
    let zuora_admin = running.endpoint("zuora").expect("z").http.clone();
    let card = http
        .post(format!("{zuora_admin}/__admin/accounts/{account}/card"))
        .json(&json!({ "declines": true }))
        .send()
        .await
        .expect("card");
    assert_eq!(card.status(), reqwest::StatusCode::OK);
    assert_eq!(h.wait_for(1).await.len(), 1, "SubscriptionCreated");

    let customers = running.endpoint("customers").expect("c").http.clone();
    let moved: Value = http
        .post(format!("{customers}/__admin/clock"))
        .json(&json!({ "advance": "366d" }))
        .send()
        .await
        .expect("advance")
        .json()
        .await
        .expect("json");
    assert_eq!(moved["now"], "2027-01-02T00:00:00.000Z");
    // Applied before the advance answered.
    let payments = z
        .call(reqwest::Method::GET, "/v1/payments?status=Error", None)
        .await;
    assert_eq!(
        payments["payments"].as_array().map(Vec::len),
        Some(1),
        "{payments}"
    );

    let seen = h.wait_for(3).await;
    let kinds: Vec<&str> = seen
        .iter()
        .map(|b| b["eventType"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "SubscriptionCreated",
            "SubscriptionRenewed",
            "PaymentDeclined"
        ]
    );
    let renewed = &seen[1];
    assert_eq!(renewed["subscriptionNumber"], sub.as_str());
    assert_eq!(renewed["subscriptionVersion"], 2);
    assert_eq!(renewed["termStartDate"], "2027-01-01");
    assert_eq!(renewed["termEndDate"], "2028-01-01");
    assert_eq!(renewed["amount"], 290.0);
    assert_eq!(renewed["eventTime"], "2027-01-01T00:00:00.000Z");
    let declined = &seen[2];
    assert_eq!(
        declined["eventCategory"],
        "user.notification:PaymentDeclined"
    );
    assert_eq!(declined["invoiceNumber"], renewed["invoiceNumber"]);
    assert_eq!(declined["gatewayResponseCode"], "05");
    assert_eq!(declined["paymentStatus"], "Error");
    assert_eq!(declined["autoRenewal"], true);
    assert!(declined["paymentNumber"]
        .as_str()
        .is_some_and(|n| n.starts_with("P-")));
    let history = z
        .call(reqwest::Method::GET, "/v1/notification-history/callout?failedOnly=false&startTime=2027-01-01T00:00:00&endTime=2027-01-02T00:00:00", None)
        .await;
    assert_eq!(
        history["calloutHistories"].as_array().map(Vec::len),
        Some(2),
        "{history}"
    );
    running.shutdown().await;
}

/// Notices and renewals are kept with the state: a process restarted halfway through a
/// term (SQLite) resumes its clock and sends each remaining notice once, none again.
#[tokio::test]
async fn a_restart_halfway_through_a_term_sends_every_notice_exactly_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = simulated(Some(dir.path().join("m.sqlite")), None);
    let running = l2f_mocks::server::start(&cfg).await.expect("start");
    let z = Http::new(&running).await;
    let acct = z
        .call(reqwest::Method::POST, "/v1/accounts", Some(json!({
            "name": "Ada", "billToContact": { "firstName": "Ada", "lastName": "L", "workEmail": "ada@example.com" }
        })))
        .await;
    z.call(reqwest::Method::POST, "/v1/orders", Some(json!({
        "orderDate": "2026-01-01", "existingAccountNumber": acct["accountNumber"],
        "subscriptions": [{ "orderActions": [{ "type": "CreateSubscription", "createSubscription": {
            "terms": { "initialTerm": { "period": 12, "periodType": "Month", "termType": "TERMED" }, "autoRenew": true },
            "subscribeToRatePlans": [{ "productRatePlanId": "prp-premium-saas" }]
        }}]}]
    })))
    .await;
    running.clock().set("2026-11-20T00:00:00Z").expect("set");
    running.shutdown().await;

    let again = l2f_mocks::server::start(&cfg).await.expect("restart");
    assert_eq!(again.clock().rfc3339(), "2026-11-20T00:00:00.000Z");
    again.clock().set("2027-01-02T00:00:00Z").expect("set");
    again.clock().advance("1d").expect("advance");
    let z = Http::new(&again).await;
    let mut names = Vec::new();
    for (from, to) in [
        ("2026-10-01", "2026-10-04"),
        ("2026-11-15", "2026-11-18"),
        ("2026-12-10", "2026-12-13"),
        ("2026-12-16", "2026-12-19"),
        ("2026-12-28", "2026-12-31"),
        ("2026-12-31", "2027-01-03"),
    ] {
        let v = z
            .call(reqwest::Method::GET, &format!("/v1/notification-history/email?failedOnly=false&startTime={from}T00:00:00&endTime={to}T00:00:00"), None)
            .await;
        for h in v["emailHistories"].as_array().expect("rows") {
            names.push(h["notification"].as_str().unwrap_or("").to_string());
        }
    }
    names.dedup();
    assert_eq!(
        names,
        [
            "Renewal notice 90 days",
            "Renewal notice 45 days",
            "Renewal notice 21 days",
            "Renewal notice 15 days",
            "Renewal notice 3 days",
            "Renewal notice 0 days"
        ]
    );
    let state: Value = reqwest::get(format!(
        "{}/__admin/state",
        again.endpoint("zuora").expect("z").http
    ))
    .await
    .expect("state")
    .json()
    .await
    .expect("json");
    assert_eq!(state["email_history"].as_array().map(Vec::len), Some(6));
    again.shutdown().await;
}

/// On the wall clock nothing is advanced: the served process's ticker runs what fell due
/// by itself (here a term that ended yesterday, renewed within a tick).
#[tokio::test]
async fn on_the_wall_clock_the_ticker_renews_a_term_that_has_ended() {
    let mut cfg = l2f_mocks::server::MocksConfig::default();
    cfg.clock.tick_ms = 50;
    cfg.without_https();
    let running = l2f_mocks::server::start(&cfg).await.expect("start");
    let z = Http::new(&running).await;
    let acct = z
        .call(
            reqwest::Method::POST,
            "/v1/accounts",
            Some(json!({
                "name": "Ada", "billToContact": { "firstName": "Ada", "lastName": "L" }
            })),
        )
        .await;
    let start = chrono::Utc::now().date_naive() - chrono::Months::new(12) - chrono::Days::new(1);
    let order = z
        .call(reqwest::Method::POST, "/v1/orders", Some(json!({
            "orderDate": start.to_string(), "existingAccountNumber": acct["accountNumber"],
            "subscriptions": [{ "orderActions": [{ "type": "CreateSubscription", "createSubscription": {
                "terms": { "initialTerm": { "period": 12, "periodType": "Month", "termType": "TERMED", "startDate": start.to_string() }, "autoRenew": true },
                "subscribeToRatePlans": [{ "productRatePlanId": "prp-premium-saas" }]
            }}]}]
        })))
        .await;
    let sub = order["subscriptionNumbers"][0]
        .as_str()
        .expect("sub")
        .to_string();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut version = json!(1);
    while tokio::time::Instant::now() < deadline {
        version = z
            .call(
                reqwest::Method::GET,
                &format!("/v1/subscriptions/{sub}"),
                None,
            )
            .await["version"]
            .clone();
        if version == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(version, 2, "renewed by the ticker");
    running.shutdown().await;
}
