//! Zuora mock: OAuth, REST v1 accounts, Orders (create, amend, renew, cancel),
//! subscriptions with custom fields, the product catalog and callout notifications, with
//! the documented cross-cutting behaviour:
//! - failures as HTTP 200 `{"success":false,"reasons":[{"code":<8 digits>,"message"}]}`,
//!   the code being a 6-digit resource and a 2-digit category (11 authentication,
//!   20 invalid value, 22 missing required field, 40 not found, 70 limit, 90 malformed);
//! - `Idempotency-Key` on POST/PATCH: the first answer is kept 24 h and replayed for the
//!   same key and body, 422 for the same key with another body, 409 while the first
//!   request is still running;
//! - `Zuora-Track-Id` echoed; `RateLimit-Limit/Remaining/Reset` on every response and
//!   429 past the configured requests per minute;
//! - `GET /v1/catalog/products` lists the configured products by SKU ([`catalog`]);
//!   orders may subscribe only to their product rate plans;
//! - `customFields` of an order's `subscriptions[]` entry (or of `createSubscription`)
//!   and top-level `Name__c` keys of `PUT /v1/subscriptions/{key}` are kept on the
//!   subscription and shown as top-level keys;
//! - subscription, payment and account changes go to an event feed
//!   (`GET /__admin/events?after=N`) and, when `callout_url` is set, are POSTed there as
//!   callout notifications in Zuora's shape, with its headers, basic auth and retries,
//!   each recorded in `GET /v1/notification-history/callout` ([`callouts`]);
//! - on the process's clock, terms end: auto-renewals with their Batch3 invoice and payment
//!   (processed or declined), `GET /v1/invoices`, `/v1/payments`, `/v1/bill-runs`,
//!   `/object-query/*` ([`billing`]), and Zuora's renewal notices in
//!   `GET /v1/notification-history/email` ([`notices`]).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::kit::{self, FaultRule, Feed, MockApp, Shared, Tokens};
use crate::store::Store;
use crate::Listen;

pub mod billing;
pub mod callouts;
pub mod catalog;
pub mod notices;

/// Zuora mock configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where to listen.
    pub listen: Listen,
    /// OAuth client id (Zuora client ids are 36-character UUIDs; its SDK checks).
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Token lifetime in seconds (Zuora's is one hour).
    pub token_ttl_secs: i64,
    /// Requests per minute before 429; none for no limit.
    pub requests_per_minute: Option<u32>,
    /// The product catalog (`GET /v1/catalog/products`); orders may subscribe only to its
    /// product rate plans; empty allows any id.
    pub products: Vec<catalog::Product>,
    /// URL to POST callout notifications to.
    pub callout_url: Option<String>,
    /// Attempts per callout notification before it is given up.
    pub callout_attempts: u32,
    /// Delay before the second attempt, in ms; it doubles for each further one.
    pub callout_retry_base_ms: u64,
    /// How long one attempt waits for an answer, in ms.
    pub callout_timeout_ms: u64,
    /// Basic-auth user name of the callout receiver (with `callout_password`).
    pub callout_username: Option<String>,
    /// Basic-auth password of the callout receiver.
    pub callout_password: Option<String>,
    /// Send the credentials on the first request instead of after a 401 challenge.
    pub callout_preemptive_auth: bool,
    /// Callout notifications in flight at once: that many lanes (default 8), the
    /// notifications of one object (subscription, account) on one lane, in order; 1 sends
    /// each after the last was answered. Zuora itself delivers several at once ("the timing and delivery
    /// of notifications can vary based on retries, concurrency and network latency"), which a
    /// load test needs: a receiver that answers only once the event is durable would
    /// otherwise be held to one notification per commit.
    pub callout_concurrency: usize,
    /// Misbehaviour rules active from the start.
    pub faults: Vec<FaultRule>,
    /// The renewal notices Zuora sends, in days before term end ([`notices`]).
    pub notices: Vec<notices::NoticeRule>,
    /// The notices' sender.
    pub notice_from: String,
    /// Communication profiles whose notifications are inactive (nothing is sent).
    pub silent_profiles: Vec<String>,
    /// The batch of the auto-renewal bill runs (handbook rule 4: `Batch3`).
    pub renewal_batch: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: Listen::default(),
            client_id: "6f1c2e1a-0d9b-4b7e-9a57-3c0e2f1d9a01".into(),
            client_secret: "l2f-zuora-secret".into(),
            token_ttl_secs: 3599,
            requests_per_minute: Some(60_000),
            products: catalog::default_products(),
            callout_url: None,
            callout_attempts: 3,
            callout_retry_base_ms: 500,
            callout_timeout_ms: 10_000,
            callout_username: None,
            callout_password: None,
            callout_preemptive_auth: false,
            callout_concurrency: 8,
            faults: Vec::new(),
            notices: notices::default_notices(),
            notice_from: "billing@l2f.example".into(),
            silent_profiles: vec!["Silent".into()],
            renewal_batch: "Batch3".into(),
        }
    }
}

/// A customer account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// 32-hex id.
    pub id: String,
    /// `A00000001`.
    pub account_number: String,
    /// Account name.
    pub name: String,
    /// ISO currency.
    pub currency: String,
    /// Day of month the account is billed.
    pub bill_cycle_day: u32,
    /// e.g. `Net 30`.
    pub payment_term: String,
    /// Charge the default payment method automatically.
    pub auto_pay: bool,
    /// Billing batch (`Batch1`..`Batch50`).
    pub batch: String,
    /// Communication profile id (`Default`, `Silent`, ...).
    pub communication_profile_id: String,
    /// Billing entity (from `Zuora-Entity-Ids` or `Entity__c`).
    pub entity: Option<String>,
    /// CRM (Salesforce) account id.
    pub crm_id: Option<String>,
    /// `Active`.
    pub status: String,
    /// Bill-to contact, country normalised to ISO alpha-2.
    pub bill_to_contact: Value,
    /// Sold-to contact.
    pub sold_to_contact: Value,
    /// Custom fields (`*__c`).
    pub custom_fields: BTreeMap<String, Value>,
}

/// A rate plan on a subscription.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RatePlan {
    /// Id of this rate plan on the subscription.
    pub id: String,
    /// The catalog's product rate plan id.
    pub product_rate_plan_id: String,
    /// Its name.
    pub rate_plan_name: String,
    /// Seats or units, if given.
    pub quantity: Option<f64>,
}

/// A subscription.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// 32-hex id.
    pub id: String,
    /// `A-S00000001`.
    pub subscription_number: String,
    /// The owning account.
    pub account_number: String,
    /// `Active` or `Cancelled`.
    pub status: String,
    /// Renews automatically at term end.
    pub auto_renew: bool,
    /// `TERMED` or `EVERGREEN`.
    pub term_type: String,
    /// Start of the current term (YYYY-MM-DD).
    pub term_start_date: String,
    /// End of the current term (YYYY-MM-DD).
    pub term_end_date: String,
    /// Current term length in months.
    pub current_term: u32,
    /// Renewal term length in months.
    pub renewal_term: u32,
    /// Version, incremented by each amendment.
    pub version: u32,
    /// Effective cancellation date.
    pub cancelled_date: Option<String>,
    /// Rate plans.
    pub rate_plans: Vec<RatePlan>,
    /// Custom fields (`Name__c`), shown as top-level keys as Zuora does.
    #[serde(flatten)]
    pub custom_fields: BTreeMap<String, Value>,
}

/// A kept answer for an idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Idem {
    hash: u64,
    done: bool,
    status: u16,
    body: String,
    at: i64,
}

/// Everything the Zuora mock keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Data {
    /// Accounts by number.
    pub accounts: BTreeMap<String, Account>,
    /// Subscriptions by number.
    pub subscriptions: BTreeMap<String, Subscription>,
    /// Orders by number.
    pub orders: BTreeMap<String, Value>,
    /// Subscription and payment events.
    pub feed: Feed,
    /// Every callout notification sent, with its last attempt.
    #[serde(default)]
    pub callout_history: Vec<callouts::CalloutRecord>,
    /// Issued tokens.
    pub tokens: Tokens,
    /// Idempotency keys and their answers.
    pub idempotency: HashMap<String, Idem>,
    /// Number sequence.
    pub seq: u64,
    /// Invoices by number.
    #[serde(default)]
    pub invoices: BTreeMap<String, billing::Invoice>,
    /// Payments by number.
    #[serde(default)]
    pub payments: BTreeMap<String, billing::Payment>,
    /// Auto-renewal bill runs by number.
    #[serde(default)]
    pub bill_runs: BTreeMap<String, billing::BillRun>,
    /// How each account's card answers (by account number).
    #[serde(default)]
    pub cards: BTreeMap<String, billing::Card>,
    /// What was done for each subscription's current term (by number).
    #[serde(default)]
    pub terms: BTreeMap<String, billing::TermLedger>,
    /// The email notification history (renewal notices).
    #[serde(default)]
    pub email_history: Vec<notices::EmailRecord>,
}

/// The running Zuora mock.
pub struct Zuora {
    cfg: Config,
    shared: Shared<Data>,
    /// (minute window start in ms, requests in it)
    window: Mutex<(i64, u32)>,
    http: reqwest::Client,
    queue: callouts::Queue,
    /// This mock itself, for the callout delivery task it starts.
    me: std::sync::Weak<Zuora>,
}

impl Zuora {
    /// Builds the mock, loading saved state from `store` if given (wall clock).
    pub fn new(cfg: Config, store: Option<Arc<Store>>) -> crate::Result<Arc<Self>> {
        Self::with_clock(cfg, store, kit::Clock::wall())
    }

    /// As [`Zuora::new`], reading business time from `clock` (and registering with it, so
    /// that terms end, renew, bill and notify as it moves).
    pub fn with_clock(
        cfg: Config,
        store: Option<Arc<Store>>,
        clock: Arc<kit::Clock>,
    ) -> crate::Result<Arc<Self>> {
        let shared = Shared::with_clock("zuora", store, cfg.faults.clone(), clock.clone())?;
        let app = Arc::new_cyclic(|me| Self {
            cfg,
            shared,
            window: Mutex::new((0, 0)),
            http: reqwest::Client::new(),
            queue: callouts::Queue::default(),
            me: me.clone(),
        });
        let weak: std::sync::Weak<Zuora> = Arc::downgrade(&app);
        let due: std::sync::Weak<dyn kit::DueWork> = weak;
        clock.register(due);
        Ok(app)
    }

    /// Records a subscription event in the feed and sends its callout; `extra` (an object)
    /// is added to both.
    fn emit_subscription(
        &self,
        d: &mut Data,
        at_ms: i64,
        kind: &str,
        number: &str,
        order: Option<&str>,
        extra: Value,
    ) {
        let Some(sub) = d.subscriptions.get(number).cloned() else {
            return;
        };
        let account_id = d
            .accounts
            .get(&sub.account_number)
            .map(|a| a.id.clone())
            .unwrap_or_default();
        let snapshot = serde_json::to_value(&sub).unwrap_or(Value::Null);
        let mut feed = json!({ "subscription": snapshot });
        if let Some(o) = order {
            feed["orderNumber"] = json!(o);
        }
        let mut body = json!({
            "subscriptionNumber": sub.subscription_number,
            "subscriptionId": sub.id,
            "subscriptionVersion": sub.version,
            "accountNumber": sub.account_number,
            "accountId": account_id,
            "orderNumber": order,
        });
        if let Some(e) = extra.as_object() {
            for (k, v) in e {
                feed[k.as_str()] = v.clone();
                body[k.as_str()] = v.clone();
            }
        }
        d.feed.push(at_ms, kind, feed);
        self.callout(at_ms, kind, &sub.id, body);
    }
}

impl kit::DueWork for Zuora {
    /// Renewals, bill runs, payments and notices that fell due up to `now_ms`, in order,
    /// in one change of the state (persisted once).
    fn run_due(&self, now_ms: i64) {
        let any = self.shared.read(|d| {
            d.subscriptions
                .values()
                .any(|s| !self.due_for(d, s, now_ms).is_empty())
        });
        if any {
            let n = self.shared.write(|d| self.apply_due(d, now_ms));
            tracing::debug!(applied = n, "zuora due work applied");
        }
    }
}

impl MockApp for Zuora {
    type Data = Data;
    fn shared(&self) -> &Shared<Data> {
        &self.shared
    }
    fn render(&self, status: StatusCode) -> Response {
        ZError::Status(status).into_response()
    }
    fn tokens(data: &mut Data) -> Option<&mut Tokens> {
        Some(&mut data.tokens)
    }
}

/// Resource part of Zuora's 8-digit codes.
const RES_ACCOUNT: u32 = 500_000;
const RES_ORDER: u32 = 531_000;
const RES_SUBSCRIPTION: u32 = 532_000;
const RES_AUTH: u32 = 900_000;
const RES_REQUEST: u32 = 590_000;
const RES_CATALOG: u32 = 510_000;
const RES_NOTIFICATION: u32 = 580_000;
const RES_INVOICE: u32 = 520_000;
const RES_PAYMENT: u32 = 540_000;

/// Category part of Zuora's codes.
const CAT_AUTH: u32 = 11;
const CAT_INVALID: u32 = 20;
const CAT_MISSING: u32 = 22;
const CAT_NOT_FOUND: u32 = 40;
const CAT_LIMIT: u32 = 70;
const CAT_MALFORMED: u32 = 90;

/// The Zuora error: every variant renders `{"success":false,"reasons":[...]}`.
#[derive(Debug, thiserror::Error)]
pub enum ZError {
    /// A business failure, answered with HTTP 200 as Zuora does.
    #[error("{message}")]
    Reason {
        /// 8-digit code: resource × 100 + category.
        code: u32,
        /// Human text.
        message: String,
    },
    /// 401: no valid token.
    #[error("Authentication error")]
    Unauthorized,
    /// 429: past the rate limit.
    #[error("Too many requests")]
    RateLimited,
    /// 409: the same idempotency key is still being processed.
    #[error("A request with the same idempotency key is being processed")]
    IdempotencyInFlight,
    /// 422: the idempotency key was used with another request.
    #[error("The idempotency key was already used with a different request")]
    IdempotencyMismatch,
    /// 404: no such path.
    #[error("Not found")]
    NoRoute,
    /// A status imposed by a fault rule.
    #[error("fault")]
    Status(StatusCode),
    /// 400: a malformed query to an API that answers errors with HTTP statuses (Object
    /// Query).
    #[error("{0}")]
    BadRequest(String),
}

impl ZError {
    fn invalid(res: u32, message: impl Into<String>) -> Self {
        ZError::Reason {
            code: res * 100 + CAT_INVALID,
            message: message.into(),
        }
    }
    fn missing(res: u32, field: &str) -> Self {
        ZError::Reason {
            code: res * 100 + CAT_MISSING,
            message: format!("{field} is required"),
        }
    }
    fn not_found(res: u32, message: impl Into<String>) -> Self {
        ZError::Reason {
            code: res * 100 + CAT_NOT_FOUND,
            message: message.into(),
        }
    }
}

impl IntoResponse for ZError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code) = match &self {
            ZError::Reason { code, .. } => (StatusCode::OK, *code),
            ZError::Unauthorized => (StatusCode::UNAUTHORIZED, RES_AUTH * 100 + CAT_AUTH),
            ZError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, RES_REQUEST * 100 + CAT_LIMIT),
            ZError::IdempotencyInFlight => (StatusCode::CONFLICT, RES_REQUEST * 100 + 50),
            ZError::IdempotencyMismatch => (
                StatusCode::UNPROCESSABLE_ENTITY,
                RES_REQUEST * 100 + CAT_INVALID,
            ),
            ZError::NoRoute => (StatusCode::NOT_FOUND, RES_REQUEST * 100 + 45),
            ZError::Status(s) => (*s, RES_REQUEST * 100 + 60),
            ZError::BadRequest(_) => (StatusCode::BAD_REQUEST, RES_REQUEST * 100 + CAT_INVALID),
        };
        let body = json!({
            "success": false,
            "processId": kit::random_hex(8).to_uppercase(),
            "reasons": [{ "code": code, "message": message }]
        });
        (status, Json(body)).into_response()
    }
}

/// The router: OAuth, v1 accounts/orders/subscriptions and `/__admin`.
pub fn router(app: Arc<Zuora>) -> Router<()> {
    let api = Router::new()
        .route("/v1/accounts", post(create_account))
        .route("/v1/accounts/{key}", get(get_account).put(update_account))
        .route("/v1/orders", post(create_order))
        .route("/v1/orders/{number}", get(get_order))
        .route(
            "/v1/subscriptions/{key}",
            get(get_subscription).put(update_subscription),
        )
        .route(
            "/v1/subscriptions/accounts/{key}",
            get(account_subscriptions),
        )
        .route("/v1/catalog/products", get(catalog::list))
        .route("/v1/catalog/products/{key}", get(catalog::one))
        .route("/v1/notification-history/callout", get(callouts::history))
        .route("/v1/notification-history/email", get(notices::history))
        .route("/v1/invoices/{key}", get(billing::get_invoice))
        .route("/v1/invoices/{key}/items", get(billing::invoice_items))
        .route("/v1/payments", get(billing::list_payments))
        .route("/v1/payments/{key}", get(billing::get_payment))
        .route("/v1/payments/{key}/parts", get(billing::payment_parts))
        .route("/v1/bill-runs/{key}", get(billing::get_bill_run))
        .route("/object-query/invoices", get(billing::query_invoices))
        .route("/object-query/payments", get(billing::query_payments))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), auth));
    let routes = Router::new()
        .route("/oauth/token", post(token))
        .merge(api)
        .route("/__admin/events", get(events))
        .route("/__admin/payments/decline", post(decline_payment))
        .route(
            "/__admin/accounts/{key}/card",
            get(billing::get_card).post(billing::set_card),
        )
        .fallback(|| async { ZError::NoRoute });
    kit::finish(routes, app.clone())
        // Outside the fault layer, so a request slowed by a fault still holds its key.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            idempotency,
        ))
        .layer(axum::middleware::from_fn_with_state(app, envelope))
}

/// `Zuora-Track-Id` echo and the `RateLimit-*` headers / 429.
async fn envelope(State(app): State<Arc<Zuora>>, req: Request, next: Next) -> Response {
    let track = req.headers().get("Zuora-Track-Id").cloned();
    let admin = req.uri().path().starts_with("/__admin");
    let mut limit_headers = None;
    let mut resp = match app.cfg.requests_per_minute.filter(|_| !admin) {
        Some(limit) => {
            let now = kit::now_ms();
            let (allowed, remaining, reset) = {
                let mut w = app.window.lock().unwrap_or_else(|p| p.into_inner());
                if now - w.0 >= 60_000 {
                    *w = (now, 0);
                }
                let reset = ((w.0 + 60_000 - now) / 1000).max(1);
                if w.1 >= limit {
                    (false, 0, reset)
                } else {
                    w.1 += 1;
                    (true, limit - w.1, reset)
                }
            };
            limit_headers = Some((limit, remaining, reset));
            if allowed {
                next.run(req).await
            } else {
                let mut r = ZError::RateLimited.into_response();
                r.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(reset));
                r
            }
        }
        None => next.run(req).await,
    };
    let h = resp.headers_mut();
    if let Some(t) = track {
        h.insert("Zuora-Track-Id", t);
    }
    if let Some((limit, remaining, reset)) = limit_headers {
        h.insert("RateLimit-Limit", HeaderValue::from(limit));
        h.insert("RateLimit-Remaining", HeaderValue::from(remaining));
        h.insert("RateLimit-Reset", HeaderValue::from(reset));
    }
    h.insert(
        "Zuora-Request-Id",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
            .unwrap_or(HeaderValue::from_static("0")),
    );
    resp
}

async fn auth(State(app): State<Arc<Zuora>>, req: Request, next: Next) -> Response {
    let token = kit::bearer(req.headers());
    if app
        .shared
        .read(|d| d.tokens.check(token.as_deref()))
        .is_err()
    {
        return ZError::Unauthorized.into_response();
    }
    next.run(req).await
}

const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

/// Honours `Idempotency-Key` on POST and PATCH.
async fn idempotency(State(app): State<Arc<Zuora>>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::POST | Method::PATCH)
        || !req.uri().path().starts_with("/v1/")
    {
        return next.run(req).await;
    }
    let Some(key) = req
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return next.run(req).await;
    };
    if key.is_empty() || key.len() >= 255 {
        return ZError::invalid(RES_REQUEST, "Idempotency-Key must be 1 to 254 characters")
            .into_response();
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 << 20).await else {
        return ZError::invalid(RES_REQUEST, "request body too large").into_response();
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    parts.method.as_str().hash(&mut hasher);
    parts.uri.path().hash(&mut hasher);
    bytes.hash(&mut hasher);
    let hash = hasher.finish();
    let now = kit::now_ms();
    // Decide under the lock: replay, refuse, or claim the key.
    let decision = app.shared.write(|d| {
        d.idempotency
            .retain(|_, e| now - e.at < IDEMPOTENCY_TTL_MS && (e.done || now - e.at < 60_000));
        match d.idempotency.get(&key) {
            Some(e) if e.hash != hash => Some(ZError::IdempotencyMismatch.into_response()),
            Some(e) if !e.done => Some(ZError::IdempotencyInFlight.into_response()),
            Some(e) => {
                let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::OK);
                let mut r = (status, e.body.clone()).into_response();
                r.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Some(r)
            }
            None => {
                d.idempotency.insert(
                    key.clone(),
                    Idem {
                        hash,
                        done: false,
                        status: 0,
                        body: String::new(),
                        at: now,
                    },
                );
                None
            }
        }
    });
    if let Some(replay) = decision {
        return replay;
    }
    // A request that never completes (its connection dropped before Zuora handled it) gives
    // its claim back, so the client's retry is processed rather than refused with 409 until
    // the claim expires.
    let mut claim = Claim {
        app: app.clone(),
        key: key.clone(),
        armed: true,
    };
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    claim.armed = false;
    let (rparts, rbody) = resp.into_parts();
    let rbytes = axum::body::to_bytes(rbody, 16 << 20)
        .await
        .unwrap_or_default();
    let status = rparts.status;
    // A server-side failure, a throttled or an unauthenticated request is not kept: the
    // client may retry it.
    app.shared.write(|d| {
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::UNAUTHORIZED
        {
            d.idempotency.remove(&key);
        } else if let Some(e) = d.idempotency.get_mut(&key) {
            e.done = true;
            e.status = status.as_u16();
            e.body = String::from_utf8_lossy(&rbytes).into_owned();
        }
    });
    Response::from_parts(rparts, Body::from(rbytes))
}

/// An idempotency key claimed by a request in progress; dropped unfinished, it frees the key.
struct Claim {
    app: Arc<Zuora>,
    key: String,
    armed: bool,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.armed {
            let key = std::mem::take(&mut self.key);
            self.app.shared.write(|d| {
                if d.idempotency.get(&key).is_some_and(|e| !e.done) {
                    d.idempotency.remove(&key);
                }
            });
        }
    }
}

#[derive(Deserialize)]
struct TokenForm {
    client_id: Option<String>,
    client_secret: Option<String>,
    grant_type: Option<String>,
}

async fn token(State(app): State<Arc<Zuora>>, body: Bytes) -> Result<Json<Value>, ZError> {
    let form: TokenForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ZError::invalid(RES_AUTH, "invalid token request"))?;
    if form.grant_type.as_deref() != Some("client_credentials") {
        return Err(ZError::invalid(RES_AUTH, "unsupported grant_type"));
    }
    if form.client_id.as_deref() != Some(app.cfg.client_id.as_str())
        || form.client_secret.as_deref() != Some(app.cfg.client_secret.as_str())
    {
        return Err(ZError::Unauthorized);
    }
    let ttl = app.cfg.token_ttl_secs;
    let token = app.shared.write(|d| d.tokens.issue("", ttl));
    Ok(Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": ttl,
        "scope": "entity.1a2b7a37-3e7d-4cb3-b0e2-883de9e766cc platform.write service.events.read service.events.write service.usage.delete service.usage.update service.usage.write tenant.12345 user.7de5d4d9-0b0e-4e9e-9b0e-53b3ba7d58c3",
        "jti": uuid::Uuid::new_v4().simple().to_string()
    })))
}

fn parse_json(body: &Bytes, res: u32) -> Result<Value, ZError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ZError::Reason {
            code: res * 100 + CAT_MALFORMED,
            message: "The request body must be a JSON object".into(),
        }),
        Err(e) => Err(ZError::Reason {
            code: res * 100 + CAT_MALFORMED,
            message: format!("Malformed JSON: {e}"),
        }),
    }
}

/// The custom fields (`Name__c`) of a `customFields` object; 20-category error for a key
/// that is not a custom field name or a value that is not a scalar.
fn custom_fields(v: Option<&Value>) -> Result<BTreeMap<String, Value>, ZError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let o = v
        .as_object()
        .ok_or_else(|| ZError::invalid(RES_SUBSCRIPTION, "customFields must be an object"))?;
    let mut out = BTreeMap::new();
    for (k, v) in o {
        if !k.ends_with("__c") || k.len() <= 3 {
            return Err(ZError::invalid(
                RES_SUBSCRIPTION,
                format!("Invalid custom field name: {k}"),
            ));
        }
        if v.is_object() || v.is_array() {
            return Err(ZError::invalid(
                RES_SUBSCRIPTION,
                format!("Invalid value for field {k}"),
            ));
        }
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}

pub(crate) use crate::kit::base_url;

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn next_id(d: &mut Data) -> (u64, String) {
    d.seq += 1;
    (d.seq, format!("8a8aa0{:026x}", d.seq))
}

fn check_contact(contact: &Value, what: &str) -> Result<Value, ZError> {
    let mut c = contact.clone();
    if !c.is_object() {
        return Err(ZError::invalid(
            RES_ACCOUNT,
            format!("{what} must be an object"),
        ));
    }
    for f in ["firstName", "lastName"] {
        if str_field(&c, f).is_none() {
            return Err(ZError::missing(RES_ACCOUNT, &format!("{what}.{f}")));
        }
    }
    if let Some(country) = c.get("country").and_then(Value::as_str) {
        let code = crate::country::normalise(country).ok_or_else(|| {
            ZError::invalid(
                RES_ACCOUNT,
                format!("Invalid value for field {what}.country: {country}"),
            )
        })?;
        c["country"] = json!(code);
    }
    Ok(c)
}

fn build_account(d: &mut Data, body: &Value, headers: &HeaderMap) -> Result<Account, ZError> {
    let name = str_field(body, "name").ok_or_else(|| ZError::missing(RES_ACCOUNT, "name"))?;
    let currency = str_field(body, "currency").unwrap_or("USD");
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(ZError::invalid(
            RES_ACCOUNT,
            format!("Invalid value for field currency: {currency}"),
        ));
    }
    let bill_to = body
        .get("billToContact")
        .ok_or_else(|| ZError::missing(RES_ACCOUNT, "billToContact"))?;
    let bill_to = check_contact(bill_to, "billToContact")?;
    let sold_to = match body.get("soldToContact") {
        Some(c) => check_contact(c, "soldToContact")?,
        None => bill_to.clone(),
    };
    let bcd = body
        .get("billCycleDay")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    if !(0..=31).contains(&bcd) {
        return Err(ZError::invalid(
            RES_ACCOUNT,
            format!("Invalid value for field billCycleDay: {bcd}"),
        ));
    }
    let batch = str_field(body, "batch").unwrap_or("Batch1").to_string();
    check_batch(&batch)?;
    let mut custom_fields = BTreeMap::new();
    if let Some(o) = body.as_object() {
        for (k, v) in o {
            if k.ends_with("__c") {
                custom_fields.insert(k.clone(), v.clone());
            }
        }
    }
    let entity = headers
        .get("Zuora-Entity-Ids")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| str_field(body, "Entity__c").map(str::to_string));
    let (n, id) = next_id(d);
    let account_number = str_field(body, "accountNumber")
        .map(str::to_string)
        .unwrap_or_else(|| format!("A{n:08}"));
    if d.accounts.contains_key(&account_number) {
        return Err(ZError::invalid(
            RES_ACCOUNT,
            format!("The account number {account_number} is invalid or already in use."),
        ));
    }
    Ok(Account {
        id,
        account_number,
        name: name.to_string(),
        currency: currency.to_string(),
        bill_cycle_day: bcd as u32,
        payment_term: str_field(body, "paymentTerm")
            .unwrap_or("Net 30")
            .to_string(),
        auto_pay: body
            .get("autoPay")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        batch,
        communication_profile_id: str_field(body, "communicationProfileId")
            .unwrap_or("Default")
            .to_string(),
        entity,
        crm_id: str_field(body, "crmId").map(str::to_string),
        status: "Active".into(),
        bill_to_contact: bill_to,
        sold_to_contact: sold_to,
        custom_fields,
    })
}

fn check_batch(batch: &str) -> Result<(), ZError> {
    let ok = batch
        .strip_prefix("Batch")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (1..=50).contains(&n));
    if ok {
        Ok(())
    } else {
        Err(ZError::invalid(
            RES_ACCOUNT,
            format!("Invalid value for field batch: {batch}"),
        ))
    }
}

async fn create_account(
    State(app): State<Arc<Zuora>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ZError> {
    let body = parse_json(&body, RES_ACCOUNT)?;
    let account = app.shared.write(|d| {
        let a = build_account(d, &body, &headers)?;
        d.accounts.insert(a.account_number.clone(), a.clone());
        Ok::<_, ZError>(a)
    })?;
    tracing::debug!(account_number = %account.account_number, "account created");
    Ok(Json(json!({
        "success": true,
        "accountId": account.id,
        "accountNumber": account.account_number,
        "billToContactId": format!("{}b", &account.id[..31]),
        "soldToContactId": format!("{}s", &account.id[..31]),
    })))
}

fn find_account<'a>(d: &'a Data, key: &str) -> Option<&'a Account> {
    d.accounts
        .get(key)
        .or_else(|| d.accounts.values().find(|a| a.id == key))
}

fn render_account(a: &Account) -> Value {
    json!({
        "success": true,
        "basicInfo": {
            "id": a.id,
            "name": a.name,
            "accountNumber": a.account_number,
            "status": a.status,
            "batch": a.batch,
            "communicationProfileId": a.communication_profile_id,
            "crmId": a.crm_id,
            "Entity__c": a.entity,
        },
        "billingAndPayment": {
            "billCycleDay": a.bill_cycle_day,
            "currency": a.currency,
            "paymentTerm": a.payment_term,
            "autoPay": a.auto_pay,
        },
        "billToContact": a.bill_to_contact,
        "soldToContact": a.sold_to_contact,
        "customFields": a.custom_fields,
    })
}

async fn get_account(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ZError> {
    app.shared.read(|d| {
        find_account(d, &key)
            .map(|a| Json(render_account(a)))
            .ok_or_else(|| {
                ZError::not_found(RES_ACCOUNT, format!("Cannot find entity by key: '{key}'."))
            })
    })
}

async fn update_account(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ZError> {
    let t = app.shared.clock().now_ms();
    let body = parse_json(&body, RES_ACCOUNT)?;
    if let Some(b) = str_field(&body, "batch") {
        check_batch(b)?;
    }
    let bill_to = body
        .get("billToContact")
        .map(|c| check_contact(c, "billToContact"))
        .transpose()?;
    let app2 = app.clone();
    app.shared.write(|d| {
        let number = find_account(d, &key)
            .map(|a| a.account_number.clone())
            .ok_or_else(|| {
                ZError::not_found(RES_ACCOUNT, format!("Cannot find entity by key: '{key}'."))
            })?;
        let a = d.accounts.get_mut(&number).ok_or(ZError::NoRoute)?;
        let before = a.clone();
        if let Some(n) = str_field(&body, "name") {
            a.name = n.to_string();
        }
        if let Some(b) = body.get("autoPay").and_then(Value::as_bool) {
            a.auto_pay = b;
        }
        if let Some(b) = str_field(&body, "batch") {
            a.batch = b.to_string();
        }
        if let Some(p) = str_field(&body, "communicationProfileId") {
            a.communication_profile_id = p.to_string();
        }
        if let Some(c) = str_field(&body, "crmId") {
            a.crm_id = Some(c.to_string());
        }
        if let Some(c) = bill_to {
            a.bill_to_contact = c;
        }
        let a = a.clone();
        let changed = a.batch != before.batch
            || a.communication_profile_id != before.communication_profile_id;
        if changed {
            d.feed.push(
                t,
                "AccountUpdated",
                json!({ "accountNumber": a.account_number, "batch": a.batch, "communicationProfileId": a.communication_profile_id }),
            );
            app2.callout(
                t,
                "AccountUpdated",
                &a.id,
                json!({
                    "accountNumber": a.account_number,
                    "accountId": a.id,
                    "batch": a.batch,
                    "communicationProfileId": a.communication_profile_id,
                }),
            );
        }
        Ok(Json(json!({ "success": true })))
    })
}

fn add_months(date: chrono::NaiveDate, months: u32) -> chrono::NaiveDate {
    date.checked_add_months(chrono::Months::new(months))
        .unwrap_or(date)
}

fn parse_date(s: &str, field: &str) -> Result<chrono::NaiveDate, ZError> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        ZError::invalid(
            RES_ORDER,
            format!("Invalid value for field {field}: {s}; expected yyyy-MM-dd"),
        )
    })
}

fn term_months(term: Option<&Value>) -> Result<u32, ZError> {
    let Some(t) = term else { return Ok(12) };
    let period = t.get("period").and_then(Value::as_u64).unwrap_or(12) as u32;
    match t
        .get("periodType")
        .and_then(Value::as_str)
        .unwrap_or("Month")
    {
        "Month" => Ok(period),
        "Year" => Ok(period * 12),
        "Week" | "Day" => Ok(period.div_ceil(4).max(1)),
        other => Err(ZError::invalid(
            RES_ORDER,
            format!("Invalid value for field periodType: {other}"),
        )),
    }
}

/// The first `quantity` found anywhere in a rate plan override (charge overrides nest it).
fn find_quantity(v: &Value) -> Option<f64> {
    match v {
        Value::Object(o) => o
            .get("quantity")
            .and_then(Value::as_f64)
            .or_else(|| o.values().find_map(find_quantity)),
        Value::Array(a) => a.iter().find_map(find_quantity),
        _ => None,
    }
}

impl Zuora {
    fn rate_plan(&self, d: &mut Data, v: &Value) -> Result<RatePlan, ZError> {
        let prp = str_field(v, "productRatePlanId")
            .ok_or_else(|| ZError::missing(RES_ORDER, "productRatePlanId"))?;
        let name = if self.cfg.products.is_empty() {
            prp.to_string()
        } else {
            catalog::rate_plan(&self.cfg.products, prp)
                .map(|rp| rp.name.clone())
                .ok_or_else(|| {
                    ZError::invalid(RES_ORDER, format!("Invalid productRatePlanId: {prp}"))
                })?
        };
        let (_, id) = next_id(d);
        Ok(RatePlan {
            id,
            product_rate_plan_id: prp.to_string(),
            rate_plan_name: name,
            quantity: find_quantity(v),
        })
    }

    /// Applies one order action; returns the event to emit.
    fn apply_action(
        &self,
        d: &mut Data,
        account_number: &str,
        sub_number: Option<&str>,
        action: &Value,
        order_date: chrono::NaiveDate,
    ) -> Result<(String, &'static str), ZError> {
        let kind = str_field(action, "type")
            .ok_or_else(|| ZError::missing(RES_ORDER, "orderActions.type"))?;
        if kind == "CreateSubscription" {
            let cs = action
                .get("createSubscription")
                .ok_or_else(|| ZError::missing(RES_ORDER, "createSubscription"))?;
            let terms = cs.get("terms");
            let initial = terms.and_then(|t| t.get("initialTerm"));
            let months = term_months(initial)?;
            let renewal = term_months(
                terms
                    .and_then(|t| t.get("renewalTerms"))
                    .and_then(|r| r.get(0)),
            )?;
            let start = match initial.and_then(|t| str_field(t, "startDate")) {
                Some(s) => parse_date(s, "initialTerm.startDate")?,
                None => order_date,
            };
            let auto_renew = terms
                .and_then(|t| t.get("autoRenew"))
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let term_type = initial
                .and_then(|t| str_field(t, "termType"))
                .unwrap_or("TERMED")
                .to_string();
            if term_type != "TERMED" && term_type != "EVERGREEN" {
                // The documented example: resource 531003 is subscription.termType.
                return Err(ZError::Reason {
                    code: 53100320,
                    message: "'termType' value should be one of: TERMED, EVERGREEN".into(),
                });
            }
            let plans = cs
                .get("subscribeToRatePlans")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if plans.is_empty() {
                return Err(ZError::missing(RES_ORDER, "subscribeToRatePlans"));
            }
            let rate_plans = plans
                .iter()
                .map(|p| self.rate_plan(d, p))
                .collect::<Result<Vec<_>, _>>()?;
            let (n, id) = next_id(d);
            let number = sub_number
                .map(str::to_string)
                .or_else(|| str_field(cs, "subscriptionNumber").map(str::to_string))
                .unwrap_or_else(|| format!("A-S{n:08}"));
            if d.subscriptions.contains_key(&number) {
                return Err(ZError::invalid(
                    RES_SUBSCRIPTION,
                    format!("The subscription number {number} is already in use."),
                ));
            }
            d.subscriptions.insert(
                number.clone(),
                Subscription {
                    id,
                    subscription_number: number.clone(),
                    account_number: account_number.to_string(),
                    status: "Active".into(),
                    auto_renew,
                    term_type,
                    term_start_date: start.to_string(),
                    term_end_date: add_months(start, months).to_string(),
                    current_term: months,
                    renewal_term: renewal,
                    version: 1,
                    cancelled_date: None,
                    rate_plans,
                    custom_fields: custom_fields(cs.get("customFields"))?,
                },
            );
            return Ok((number, "SubscriptionCreated"));
        }
        let number = sub_number
            .ok_or_else(|| ZError::missing(RES_ORDER, "subscriptions.subscriptionNumber"))?
            .to_string();
        let mut sub = d.subscriptions.get(&number).cloned().ok_or_else(|| {
            ZError::not_found(
                RES_SUBSCRIPTION,
                format!("Subscription {number} does not exist."),
            )
        })?;
        if sub.status == "Cancelled" {
            return Err(ZError::Reason {
                code: RES_SUBSCRIPTION * 100 + 30,
                message: format!("Subscription {number} is cancelled."),
            });
        }
        let event = match kind {
            "AddProduct" => {
                let p = action
                    .get("addProduct")
                    .ok_or_else(|| ZError::missing(RES_ORDER, "addProduct"))?;
                let rp = self.rate_plan(d, p)?;
                sub.rate_plans.push(rp);
                "SubscriptionAmended"
            }
            "UpdateProduct" => {
                let p = action
                    .get("updateProduct")
                    .ok_or_else(|| ZError::missing(RES_ORDER, "updateProduct"))?;
                let target =
                    str_field(p, "ratePlanId").or_else(|| str_field(p, "productRatePlanId"));
                let rp = sub
                    .rate_plans
                    .iter_mut()
                    .find(|r| Some(r.id.as_str()) == target || Some(r.product_rate_plan_id.as_str()) == target)
                    .ok_or_else(|| ZError::invalid(RES_ORDER, "updateProduct.ratePlanId does not match a rate plan of the subscription"))?;
                if let Some(q) = find_quantity(p) {
                    rp.quantity = Some(q);
                }
                "SubscriptionAmended"
            }
            "RemoveProduct" => {
                let p = action
                    .get("removeProduct")
                    .ok_or_else(|| ZError::missing(RES_ORDER, "removeProduct"))?;
                let target =
                    str_field(p, "ratePlanId").or_else(|| str_field(p, "productRatePlanId"));
                let before = sub.rate_plans.len();
                sub.rate_plans.retain(|r| {
                    Some(r.id.as_str()) != target && Some(r.product_rate_plan_id.as_str()) != target
                });
                if sub.rate_plans.len() == before {
                    return Err(ZError::invalid(
                        RES_ORDER,
                        "removeProduct.ratePlanId does not match a rate plan of the subscription",
                    ));
                }
                "SubscriptionAmended"
            }
            "TermsAndConditions" => {
                let t = action
                    .get("termsAndConditions")
                    .ok_or_else(|| ZError::missing(RES_ORDER, "termsAndConditions"))?;
                let auto = t
                    .get("autoRenew")
                    .or_else(|| t.get("lastTerm").and_then(|l| l.get("autoRenew")));
                match auto.and_then(Value::as_bool) {
                    Some(a) if a != sub.auto_renew => {
                        sub.auto_renew = a;
                        "AutoRenewChanged"
                    }
                    _ => "SubscriptionAmended",
                }
            }
            "RenewSubscription" => {
                let start = parse_date(&sub.term_end_date, "termEndDate")?;
                sub.term_start_date = start.to_string();
                sub.term_end_date = add_months(start, sub.renewal_term).to_string();
                sub.current_term = sub.renewal_term;
                "SubscriptionRenewed"
            }
            "CancelSubscription" => {
                let c = action
                    .get("cancelSubscription")
                    .ok_or_else(|| ZError::missing(RES_ORDER, "cancelSubscription"))?;
                let policy = str_field(c, "cancellationPolicy")
                    .ok_or_else(|| ZError::missing(RES_ORDER, "cancellationPolicy"))?;
                let date = match policy {
                    "EndOfCurrentTerm" => sub.term_end_date.clone(),
                    "SpecificDate" => {
                        let s = str_field(c, "cancellationEffectiveDate").ok_or_else(|| {
                            ZError::missing(RES_ORDER, "cancellationEffectiveDate")
                        })?;
                        parse_date(s, "cancellationEffectiveDate")?.to_string()
                    }
                    "EndOfLastInvoicePeriod" => order_date.to_string(),
                    other => {
                        return Err(ZError::invalid(
                            RES_ORDER,
                            format!("Invalid value for field cancellationPolicy: {other}"),
                        ))
                    }
                };
                sub.status = "Cancelled".into();
                sub.cancelled_date = Some(date);
                "SubscriptionCancelled"
            }
            other => {
                return Err(ZError::invalid(
                    RES_ORDER,
                    format!("Invalid value for field orderActions.type: {other}"),
                ))
            }
        };
        sub.version += 1;
        d.subscriptions.insert(number.clone(), sub);
        Ok((number, event))
    }
}

/// What an order changed, so that a failed part can put it back (all or nothing).
struct Undo {
    seq: u64,
    /// Accounts it created.
    accounts: Vec<String>,
    /// Subscriptions it touched, each as it was before (`None`: it did not exist).
    subscriptions: Vec<(String, Option<Subscription>)>,
}

impl Undo {
    fn new(d: &Data) -> Self {
        Undo {
            seq: d.seq,
            accounts: Vec::new(),
            subscriptions: Vec::new(),
        }
    }

    /// Remembers subscription `number` as it is now, once.
    fn keep(&mut self, d: &Data, number: &str) {
        if !self.subscriptions.iter().any(|(n, _)| n == number) {
            let before = d.subscriptions.get(number).cloned();
            self.subscriptions.push((number.to_string(), before));
        }
    }

    /// Notes subscription `number` as created by this order.
    fn created(&mut self, number: &str) {
        if !self.subscriptions.iter().any(|(n, _)| n == number) {
            self.subscriptions.push((number.to_string(), None));
        }
    }

    fn revert(self, d: &mut Data) {
        for (n, before) in self.subscriptions.into_iter().rev() {
            match before {
                Some(s) => d.subscriptions.insert(n, s),
                None => d.subscriptions.remove(&n),
            };
        }
        for n in self.accounts {
            d.accounts.remove(&n);
        }
        d.seq = self.seq;
    }
}

/// The account and subscription parts of `POST /v1/orders`, applied to `d` with what they
/// touch noted in `undo`; answers the account number, the events and the subscription numbers.
/// Each action is itself atomic (it checks before it writes), so `undo` needs only the state
/// before each one.
#[allow(clippy::type_complexity)]
fn apply_order(
    app: &Zuora,
    d: &mut Data,
    undo: &mut Undo,
    body: &Value,
    headers: &HeaderMap,
    subs: &[Value],
    order_date: chrono::NaiveDate,
) -> Result<(String, Vec<(String, &'static str)>, Vec<String>), ZError> {
    let account_number = match (
        str_field(body, "existingAccountNumber"),
        body.get("newAccount"),
    ) {
        (Some(n), _) => find_account(d, n)
            .map(|a| a.account_number.clone())
            .ok_or_else(|| {
                ZError::not_found(RES_ACCOUNT, format!("Account {n} does not exist."))
            })?,
        (None, Some(new)) => {
            let a = build_account(d, new, headers)?;
            let n = a.account_number.clone();
            d.accounts.insert(n.clone(), a);
            undo.accounts.push(n.clone());
            n
        }
        (None, None) => return Err(ZError::missing(RES_ORDER, "existingAccountNumber")),
    };
    let mut events = Vec::new();
    let mut numbers = Vec::new();
    for s in subs {
        let actions = s
            .get("orderActions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if actions.is_empty() {
            return Err(ZError::missing(RES_ORDER, "orderActions"));
        }
        let mut number = str_field(s, "subscriptionNumber").map(str::to_string);
        for a in &actions {
            if let Some(n) = &number {
                undo.keep(d, n);
            }
            let (n, ev) = app.apply_action(d, &account_number, number.as_deref(), a, order_date)?;
            if number.is_none() {
                undo.created(&n);
            }
            events.push((n.clone(), ev));
            number = Some(n);
        }
        if let Some(n) = number {
            let fields = custom_fields(s.get("customFields"))?;
            let clearing: Vec<String> = s
                .get("clearingCustomFields")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(sub) = d.subscriptions.get_mut(&n) {
                sub.custom_fields.extend(fields);
                for f in clearing {
                    sub.custom_fields.insert(f, Value::Null);
                }
            }
            numbers.push(n);
        }
    }
    Ok((account_number, events, numbers))
}

async fn create_order(
    State(app): State<Arc<Zuora>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ZError> {
    let t = app.shared.clock().now_ms();
    let body = parse_json(&body, RES_ORDER)?;
    let order_date =
        str_field(&body, "orderDate").ok_or_else(|| ZError::missing(RES_ORDER, "orderDate"))?;
    let order_date = parse_date(order_date, "orderDate")?;
    let subs = body
        .get("subscriptions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if subs.is_empty() {
        return Err(ZError::missing(RES_ORDER, "subscriptions"));
    }
    let app2 = app.clone();
    app.shared.write(move |d| {
        // All or nothing: applied in place, and what it touched is put back if a part fails.
        // (It used to work on a copy of the tenant's accounts and subscriptions: O(tenant) per
        // order, about 100 orders/s with 2,000 accounts.)
        let mut undo = Undo::new(d);
        let applied = apply_order(&app2, d, &mut undo, &body, &headers, &subs, order_date);
        let (account_number, events, numbers) = match applied {
            Ok(a) => a,
            Err(e) => {
                undo.revert(d);
                return Err(e);
            }
        };
        let (n, _) = next_id(d);
        let order_number = format!("O-{n:08}");
        let statuses: Vec<Value> = numbers
            .iter()
            .map(|n| json!({ "subscriptionNumber": n, "status": d.subscriptions[n].status }))
            .collect();
        d.orders.insert(
            order_number.clone(),
            json!({
                "orderNumber": order_number,
                "orderDate": order_date.to_string(),
                "existingAccountNumber": account_number,
                "status": "Completed",
                "subscriptions": statuses,
            }),
        );
        for (n, ev) in &events {
            if *ev == "SubscriptionCreated" {
                // Notices due before the mock learned of the term are not sent.
                if let Some(sub) = d.subscriptions.get(n).cloned() {
                    let start = chrono::NaiveDate::parse_from_str(&sub.term_start_date, "%Y-%m-%d")
                        .map(billing::midnight_ms)
                        .unwrap_or_default();
                    Zuora::ledger(d, &sub).known_ms = t.max(start);
                }
            }
        }
        for (n, ev) in events {
            app2.emit_subscription(d, t, ev, &n, Some(&order_number), json!({}));
        }
        Ok(Json(json!({
            "success": true,
            "orderNumber": order_number,
            "accountNumber": account_number,
            "status": "Completed",
            "subscriptionNumbers": numbers,
            "subscriptions": statuses,
        })))
    })
}

async fn get_order(
    State(app): State<Arc<Zuora>>,
    Path(number): Path<String>,
) -> Result<Json<Value>, ZError> {
    app.shared.read(|d| {
        d.orders
            .get(&number)
            .map(|o| Json(json!({ "success": true, "order": o })))
            .ok_or_else(|| ZError::not_found(RES_ORDER, format!("Order {number} does not exist.")))
    })
}

fn render_subscription(s: &Subscription) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    v["success"] = json!(true);
    v["currentTermPeriodType"] = json!("Month");
    v["renewalTermPeriodType"] = json!("Month");
    v
}

async fn get_subscription(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ZError> {
    app.shared.read(|d| {
        d.subscriptions
            .get(&key)
            .or_else(|| d.subscriptions.values().find(|s| s.id == key))
            .map(|s| Json(render_subscription(s)))
            .ok_or_else(|| {
                ZError::not_found(
                    RES_SUBSCRIPTION,
                    format!("Subscription {key} does not exist."),
                )
            })
    })
}

async fn account_subscriptions(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ZError> {
    app.shared.read(|d| {
        let a = find_account(d, &key).ok_or_else(|| {
            ZError::not_found(RES_ACCOUNT, format!("Cannot find entity by key: '{key}'."))
        })?;
        let subs: Vec<Value> = d
            .subscriptions
            .values()
            .filter(|s| s.account_number == a.account_number)
            .map(render_subscription)
            .collect();
        Ok(Json(json!({ "success": true, "subscriptions": subs })))
    })
}

/// The legacy "update a subscription" call, used to flip auto-renew.
async fn update_subscription(
    State(app): State<Arc<Zuora>>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ZError> {
    let t = app.shared.clock().now_ms();
    let body = parse_json(&body, RES_SUBSCRIPTION)?;
    // Custom fields come as top-level `Name__c` keys, as Zuora's update call takes them.
    let top: serde_json::Map<String, Value> = body
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.ends_with("__c"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut fields = custom_fields(Some(&Value::Object(top)))?;
    fields.extend(custom_fields(body.get("customFields"))?);
    let auto_renew = match body.get("autoRenew") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(ZError::invalid(
                RES_SUBSCRIPTION,
                format!("Invalid value for field autoRenew: {other}"),
            ))
        }
    };
    let app2 = app.clone();
    app.shared.write(|d| {
        let number = d
            .subscriptions
            .get(&key)
            .or_else(|| d.subscriptions.values().find(|s| s.id == key))
            .map(|s| s.subscription_number.clone())
            .ok_or_else(|| {
                ZError::not_found(
                    RES_SUBSCRIPTION,
                    format!("Subscription {key} does not exist."),
                )
            })?;
        let s = d.subscriptions.get_mut(&number).ok_or(ZError::NoRoute)?;
        let before = s.clone();
        if let Some(a) = auto_renew {
            s.auto_renew = a;
        }
        s.custom_fields.extend(fields);
        let auto_changed = s.auto_renew != before.auto_renew;
        if *s != before {
            s.version += 1;
        }
        let id = s.id.clone();
        if auto_changed {
            app2.emit_subscription(d, t, "AutoRenewChanged", &number, None, json!({}));
        }
        Ok(Json(json!({ "success": true, "subscriptionId": id })))
    })
}

#[derive(Deserialize)]
struct FeedParams {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn events(State(app): State<Arc<Zuora>>, Query(p): Query<FeedParams>) -> Json<Value> {
    let events = app
        .shared
        .read(|d| d.feed.after(p.after.unwrap_or(0), p.limit.unwrap_or(1000)));
    Json(json!({ "events": events }))
}

/// Simulates a declined card on a subscription's renewal payment, at once: an invoice of
/// the subscription's current term (or of `amount`) and a declined payment for it, with the
/// `PaymentDeclined` event and callout. Answers `{"success","invoiceNumber","paymentNumber"}`.
async fn decline_payment(
    State(app): State<Arc<Zuora>>,
    body: Bytes,
) -> Result<Json<Value>, ZError> {
    let t = app.shared.clock().now_ms();
    let body = parse_json(&body, RES_SUBSCRIPTION)?;
    let number = str_field(&body, "subscriptionNumber")
        .ok_or_else(|| ZError::missing(RES_SUBSCRIPTION, "subscriptionNumber"))?
        .to_string();
    app.shared.write(|d| {
        let s = d.subscriptions.get(&number).cloned().ok_or_else(|| {
            ZError::not_found(
                RES_SUBSCRIPTION,
                format!("Subscription {number} does not exist."),
            )
        })?;
        let mut invoice = app.make_invoice(d, &s, t, None);
        if let Some(amount) = body.get("amount").and_then(Value::as_f64) {
            invoice.amount = amount;
            invoice.balance = amount;
            d.invoices
                .insert(invoice.invoice_number.clone(), invoice.clone());
        }
        let card = billing::Card {
            declines: true,
            gateway_response_code: str_field(&body, "gatewayResponseCode").map(str::to_string),
            gateway_response: str_field(&body, "gatewayResponse").map(str::to_string),
            times: None,
        };
        let payment = app.pay(d, &s, &invoice, t, false, &card);
        if let Some(reason) = str_field(&body, "reason") {
            if let Some(e) = d.feed.events.last_mut() {
                e.data["reason"] = json!(reason);
            }
        }
        Ok(Json(json!({
            "success": true,
            "invoiceNumber": invoice.invoice_number,
            "paymentNumber": payment.number,
        })))
    })
}
