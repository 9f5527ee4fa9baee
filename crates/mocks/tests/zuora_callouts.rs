//! Zuora callouts in Zuora's shape: merge fields as the JSON body, the tracing headers,
//! basic auth after a 401 challenge (or preemptive), retries, and the callout history.
//! https://docs.zuora.com/en/zuora-platform/extensibility/events-and-notifications/notifications/callout-notification-overview
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use common::{get, json, zuora_token};
use l2f_mocks::zuora::{self, Config, Zuora};
use serde_json::{json, Value};

/// What the receiver saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    headers: HeaderMap,
    body: Value,
}

type Policy = Arc<dyn Fn(usize, &HeaderMap) -> axum::response::Response + Send + Sync>;

struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(policy: Policy) -> Self {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let s = seen.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let (s, policy) = (s.clone(), policy.clone());
                async move {
                    let n = {
                        let mut seen = s.lock().unwrap_or_else(|p| p.into_inner());
                        seen.push(Seen {
                            headers: headers.clone(),
                            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        });
                        seen.len()
                    };
                    policy(n, &headers)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/hook"),
            seen,
            server,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits (at most 5 s) until `n` requests arrived.
    async fn wait_for(&self, n: usize) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.seen().len() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.seen()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn accept_all() -> Policy {
    Arc::new(|_, _| StatusCode::OK.into_response())
}

fn fast(url: &str) -> Config {
    Config {
        callout_url: Some(url.to_string()),
        callout_retry_base_ms: 10,
        ..Config::default()
    }
}

fn h(seen: &Seen, name: &str) -> Option<String> {
    seen.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn account(r: &Router, t: &str) -> Value {
    json(r, Method::POST, "/v1/accounts", t, &json!({ "name": "Hooked", "billToContact": { "firstName": "A", "lastName": "B", "country": "US" } })).await.json()
}

async fn subscribe(r: &Router, t: &str, account: &str) -> Value {
    let order = json!({
        "orderDate": "2026-01-01", "existingAccountNumber": account,
        "subscriptions": [{ "orderActions": [{ "type": "CreateSubscription", "createSubscription": { "subscribeToRatePlans": [{ "productRatePlanId": "prp-premium-saas", "chargeOverrides": [{ "pricing": { "recurringPerUnit": { "quantity": 10 } } }] }] } }] }]
    });
    let reply = json(r, Method::POST, "/v1/orders", t, &order).await.json();
    assert_eq!(reply["success"], true, "{reply}");
    reply
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[tokio::test]
async fn a_callout_carries_merge_fields_and_tracing_headers_and_is_retried() {
    // Refuse the first delivery, accept the retry.
    let rx = Receiver::start(Arc::new(|n, _| {
        if n == 1 {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        } else {
            StatusCode::OK.into_response()
        }
    }))
    .await;
    let cfg = fast(&rx.url);
    let r = zuora::router(Zuora::new(cfg.clone(), None).expect("mock"));
    let t = zuora_token(&r, &cfg).await;
    let acct = account(&r, &t).await;
    let order = subscribe(&r, &t, acct["accountNumber"].as_str().expect("n")).await;
    let seen = rx.wait_for(2).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0].body, seen[1].body,
        "a retry carries the same notification"
    );
    let sub = get(&r, "/v1/subscriptions/A-S00000003", &t).await.json();
    let body = &seen[0].body;
    assert_eq!(body["eventType"], "SubscriptionCreated");
    assert_eq!(
        body["eventCategory"],
        "user.notification:SubscriptionCreated"
    );
    assert_eq!(body["subscriptionNumber"], order["subscriptionNumbers"][0]);
    assert_eq!(body["subscriptionId"], sub["id"]);
    assert_eq!(body["subscriptionVersion"], 1);
    assert_eq!(body["accountNumber"], acct["accountNumber"]);
    assert_eq!(body["accountId"], acct["accountId"]);
    assert_eq!(body["orderNumber"], order["orderNumber"]);
    assert!(
        chrono::DateTime::parse_from_rfc3339(body["eventTime"].as_str().expect("time")).is_ok()
    );
    let (a, b) = (&seen[0], &seen[1]);
    assert_eq!(h(a, "content-type").as_deref(), Some("application/json"));
    let (ra, rb) = (
        h(a, "zuora-request-id").expect("rid"),
        h(b, "zuora-request-id").expect("rid"),
    );
    assert!(is_hex32(&ra) && is_hex32(&rb) && ra != rb, "{ra} {rb}");
    assert_eq!(
        h(a, "x-amzn-trace-id"),
        Some(format!("Root=1-{}-{}", &ra[..8], &ra[8..]))
    );
    let na = h(a, "zuora-notification-id").expect("nid");
    assert!(is_hex32(&na));
    assert_eq!(h(b, "zuora-notification-id"), Some(na));
    assert!(h(a, "authorization").is_none());
}

/// RFC 7235 as Zuora does it: no credentials first; after a 401 with `WWW-Authenticate`,
/// the same request again with `Authorization: Basic`:
/// https://knowledgecenter.zuora.com/Central_Platform/Notifications/E_Configure_Callout_Notifications/Message_sequence_for_Zuora_callout_basic_authentication
#[tokio::test]
async fn basic_auth_follows_a_401_challenge() {
    let expected = "Basic aHViOnNlY3JldA=="; // hub:secret
    let rx = Receiver::start(Arc::new(move |_, headers: &HeaderMap| {
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some(a) if a == expected => StatusCode::OK.into_response(),
            _ => (
                StatusCode::UNAUTHORIZED,
                [("www-authenticate", "Basic realm=\"l2f\"")],
            )
                .into_response(),
        }
    }))
    .await;
    let cfg = Config {
        callout_username: Some("hub".into()),
        callout_password: Some("secret".into()),
        ..fast(&rx.url)
    };
    let r = zuora::router(Zuora::new(cfg.clone(), None).expect("mock"));
    let t = zuora_token(&r, &cfg).await;
    let acct = account(&r, &t).await;
    subscribe(&r, &t, acct["accountNumber"].as_str().expect("n")).await;
    let seen = rx.wait_for(2).await;
    assert_eq!(seen.len(), 2);
    assert!(h(&seen[0], "authorization").is_none());
    assert_eq!(h(&seen[1], "authorization").as_deref(), Some(expected));
    assert_eq!(
        h(&seen[0], "zuora-notification-id"),
        h(&seen[1], "zuora-notification-id")
    );
    // Delivered: no retry follows, and the history has no failure.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.seen().len(), 2);
    let failed = get(&r, "/v1/notification-history/callout", &t).await.json();
    assert_eq!(failed["calloutHistories"], json!([]));
}

#[tokio::test]
async fn preemptive_auth_sends_the_credentials_first() {
    let rx = Receiver::start(accept_all()).await;
    let cfg = Config {
        callout_username: Some("hub".into()),
        callout_password: Some("secret".into()),
        callout_preemptive_auth: true,
        ..fast(&rx.url)
    };
    let r = zuora::router(Zuora::new(cfg.clone(), None).expect("mock"));
    let t = zuora_token(&r, &cfg).await;
    let acct = account(&r, &t).await;
    subscribe(&r, &t, acct["accountNumber"].as_str().expect("n")).await;
    let seen = rx.wait_for(1).await;
    assert_eq!(
        h(&seen[0], "authorization").as_deref(),
        Some("Basic aHViOnNlY3JldA==")
    );
}

/// Every change the hub must see raises a callout, in order.
#[tokio::test]
async fn every_subscription_change_raises_its_callout_in_order() {
    let rx = Receiver::start(accept_all()).await;
    // One lane: every callout in the order it was raised (with more lanes only one object's
    // callouts keep their order, and the account's update could come anywhere among them).
    let mut cfg = fast(&rx.url);
    cfg.callout_concurrency = 1;
    let r = zuora::router(Zuora::new(cfg.clone(), None).expect("mock"));
    let t = zuora_token(&r, &cfg).await;
    let acct = account(&r, &t).await;
    let an = acct["accountNumber"].as_str().expect("n").to_string();
    let order = subscribe(&r, &t, &an).await;
    let sn = order["subscriptionNumbers"][0]
        .as_str()
        .expect("s")
        .to_string();
    let amend = |actions: Value| json!({ "orderDate": "2026-02-01", "existingAccountNumber": an, "subscriptions": [{ "subscriptionNumber": sn, "orderActions": actions }] });
    for actions in [
        json!([{ "type": "AddProduct", "addProduct": { "productRatePlanId": "prp-ci-minutes" } }]),
        json!([{ "type": "TermsAndConditions", "termsAndConditions": { "autoRenew": false } }]),
        json!([{ "type": "RenewSubscription" }]),
    ] {
        assert_eq!(
            json(&r, Method::POST, "/v1/orders", &t, &amend(actions))
                .await
                .json()["success"],
            true
        );
    }
    json(
        &r,
        Method::PUT,
        &format!("/v1/subscriptions/{sn}"),
        &t,
        &json!({ "autoRenew": true }),
    )
    .await;
    json(
        &r,
        Method::POST,
        "/__admin/payments/decline",
        &t,
        &json!({ "subscriptionNumber": sn }),
    )
    .await;
    json(
        &r,
        Method::PUT,
        &format!("/v1/accounts/{an}"),
        &t,
        &json!({ "communicationProfileId": "Silent" }),
    )
    .await;
    let cancel = amend(
        json!([{ "type": "CancelSubscription", "cancelSubscription": { "cancellationPolicy": "EndOfCurrentTerm" } }]),
    );
    json(&r, Method::POST, "/v1/orders", &t, &cancel).await;
    let seen = rx.wait_for(8).await;
    let types: Vec<&str> = seen
        .iter()
        .map(|s| s.body["eventType"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "SubscriptionCreated",
            "SubscriptionAmended",
            "AutoRenewChanged",
            "SubscriptionRenewed",
            "AutoRenewChanged",
            "PaymentDeclined",
            "AccountUpdated",
            "SubscriptionCancelled"
        ]
    );
    let versions: Vec<u64> = seen[..5]
        .iter()
        .map(|s| s.body["subscriptionVersion"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    let declined = &seen[5].body;
    assert!(declined["invoiceNumber"]
        .as_str()
        .expect("inv")
        .starts_with("INV"));
    assert_eq!(
        declined["amount"], 300.0,
        "10 seats at 29.00 plus one pack at 10.00"
    );
    assert_eq!(declined["gatewayResponseCode"], "05");
    assert_eq!(seen[6].body["accountId"], acct["accountId"]);
    assert_eq!(seen[6].body["communicationProfileId"], "Silent");
    let ids: Vec<String> = seen
        .iter()
        .filter_map(|s| h(s, "zuora-notification-id"))
        .collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 8, "one notification id per notification");
}

/// List callout notification histories: every notification is recorded, one whose every
/// attempt failed too; `failedOnly` defaults to true; pageSize ≤ 40:
/// https://developer.zuora.com/v1-api-reference/api/operation/GET_CalloutHistory/
#[tokio::test]
async fn the_callout_history_records_every_notification_and_pages() {
    // Every callout of this mock fails.
    let refusing = Receiver::start(Arc::new(|_, _| {
        (StatusCode::INTERNAL_SERVER_ERROR, "receiver is down").into_response()
    }))
    .await;
    let cfg = Config {
        callout_attempts: 2,
        ..fast(&refusing.url)
    };
    let r = zuora::router(Zuora::new(cfg.clone(), None).expect("mock"));
    let t = zuora_token(&r, &cfg).await;
    let acct = account(&r, &t).await;
    subscribe(&r, &t, acct["accountNumber"].as_str().expect("n")).await;
    assert_eq!(refusing.wait_for(2).await.len(), 2);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let failed = get(
        &r,
        "/v1/notification-history/callout?includeResponseContent=true",
        &t,
    )
    .await;
    assert_eq!(failed.status, StatusCode::OK, "{}", failed.text);
    let failed = failed.json();
    let rows = failed["calloutHistories"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{failed}");
    let row = &rows[0];
    assert_eq!(row["attemptedNum"], 2);
    assert_eq!(row["responseCode"], 500);
    assert_eq!(row["responseContent"], "receiver is down");
    assert_eq!(
        row["eventCategory"],
        "user.notification:SubscriptionCreated"
    );
    assert_eq!(row["requestMethod"], "POST");
    assert_eq!(row["requestUrl"], refusing.url.as_str());
    assert_eq!(row["eventContext"]["eventType"], "SubscriptionCreated");
    assert!(is_hex32(row["notificationId"].as_str().expect("id")));
    assert!(chrono::NaiveDateTime::parse_from_str(
        row["createTime"].as_str().expect("t"),
        "%Y-%m-%dT%H:%M:%S"
    )
    .is_ok());
    let sub_id = row["eventContext"]["subscriptionId"]
        .as_str()
        .expect("sid")
        .to_string();
    let by_object = get(
        &r,
        &format!("/v1/notification-history/callout?objectId={sub_id}"),
        &t,
    )
    .await
    .json();
    assert_eq!(
        by_object["calloutHistories"].as_array().map(Vec::len),
        Some(1)
    );
    let other = get(&r, "/v1/notification-history/callout?objectId=nope", &t)
        .await
        .json();
    assert_eq!(other["calloutHistories"], json!([]));
    assert!(
        get(&r, "/v1/notification-history/callout", &t).await.json()["calloutHistories"][0]
            .get("responseContent")
            .is_none()
    );

    for _ in 0..4 {
        json(
            &r,
            Method::PUT,
            "/v1/subscriptions/A-S00000003",
            &t,
            &json!({ "autoRenew": false }),
        )
        .await;
        json(
            &r,
            Method::PUT,
            "/v1/subscriptions/A-S00000003",
            &t,
            &json!({ "autoRenew": true }),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(refusing.wait_for(18).await.len(), 18);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let page1 = get(
        &r,
        "/v1/notification-history/callout?failedOnly=false&pageSize=5",
        &t,
    )
    .await
    .json();
    assert_eq!(page1["calloutHistories"].as_array().map(Vec::len), Some(5));
    let next = page1["nextPage"].as_str().expect("nextPage");
    assert!(
        next.contains("page=2") && next.contains("pageSize=5"),
        "{next}"
    );
    let path = &next[next.find("/v1/").expect("path")..];
    let page2 = get(&r, path, &t).await.json();
    assert_eq!(page2["calloutHistories"].as_array().map(Vec::len), Some(4));
    assert!(page2.get("nextPage").is_none());
    let categories = get(&r, "/v1/notification-history/callout?failedOnly=false&eventCategory=user.notification:AutoRenewChanged&pageSize=40", &t).await.json();
    assert_eq!(
        categories["calloutHistories"].as_array().map(Vec::len),
        Some(8)
    );
    let too_big = get(&r, "/v1/notification-history/callout?pageSize=41", &t)
        .await
        .json();
    assert_eq!(too_big["success"], false);
    let future = get(&r, "/v1/notification-history/callout?failedOnly=false&startTime=2099-01-01T00:00:00&endTime=2099-01-02T00:00:00", &t).await.json();
    assert_eq!(future["calloutHistories"], json!([]));
}

/// Without a callout URL nothing is sent and nothing is recorded; the event feed the
/// tests read stays as it was.
#[tokio::test]
async fn without_a_callout_url_only_the_feed_records_events() {
    let cfg = Config::default();
    let r = zuora::router(Zuora::new(cfg.clone(), None).expect("mock"));
    let t = zuora_token(&r, &cfg).await;
    let acct = account(&r, &t).await;
    subscribe(&r, &t, acct["accountNumber"].as_str().expect("n")).await;
    let feed = get(&r, "/__admin/events", &t).await.json();
    assert_eq!(feed["events"][0]["type"], "SubscriptionCreated");
    assert_eq!(
        feed["events"][0]["data"]["subscription"]["subscriptionNumber"],
        "A-S00000003"
    );
    let hist = get(&r, "/v1/notification-history/callout?failedOnly=false", &t)
        .await
        .json();
    assert_eq!(hist["calloutHistories"], json!([]));
}
