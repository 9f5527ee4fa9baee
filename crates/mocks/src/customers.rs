//! The customers app (the portal where customers buy and manage subscriptions).
//! Our own API, plain JSON, bearer token from configuration; errors are
//! `{"error":{"code","message","field","value"}}`, shared with the license service.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /api/v1/accounts` `{email,name,company,country}` | create a customer account (country free text, normalised to ISO alpha-2) |
//! | `GET /api/v1/accounts/{id}` | the account and its subscriptions |
//! | `POST /api/v1/signups`, `/api/v1/trials`, `/api/v1/contact-requests`, `/api/v1/carts/abandoned` `{email,first_name,last_name,company,country,...}` | a lead from a form (emits `LeadCaptured`) |
//! | `POST /api/v1/purchases` `{account_id,deployment,plan,seats,term_months,add_ons,channel}` | a web-store (or sales-assisted) purchase (emits `OrderPlaced`) |
//! | `GET /api/v1/subscriptions/{id}` | the subscription with its license as displayed |
//! | `POST /api/v1/subscriptions/{id}/eula` `{accepted_by}` | terms accepted (emits `EulaAccepted`) |
//! | `PUT /api/v1/subscriptions/{id}/auto-renew` `{auto_renew}` | the auto-renew toggle (emits `AutoRenewChanged`) |
//! | `POST /api/v1/subscriptions/{id}/cancel` `{reason}` | cancellation; turns auto-renew off (emits `SubscriptionCancelled`) |
//! | `PUT /api/v1/subscriptions/{id}/license` `{status,key}` | the license to display (pushed by the hub) |
//! | `POST /api/v1/subscriptions/{id}/usage` `{active_users,billable_users}` | a self-managed usage report (emits `UsageReported`) |
//! | `GET /api/v1/events?after=&limit=` | the outbox feed of the events above |
//!
//! Auto-renew (handbook rule 5): web-store purchases start with it on; sales-assisted
//! and reseller deals start with it off; a cancellation turns it off. Self-managed
//! purchases require the terms to be accepted before a license is issued (rule 8).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::kit::{FaultRule, Feed};
use crate::own::{self, ApiError, FeedParams, OwnApp};
use crate::store::Store;
use crate::Listen;

/// Customers app configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where to listen.
    pub listen: Listen,
    /// The bearer token clients must send.
    pub api_token: String,
    /// Misbehaviour rules active from the start.
    pub faults: Vec<FaultRule>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: Listen::default(),
            api_token: "l2f-customers-token".into(),
            faults: Vec::new(),
        }
    }
}

/// A customer account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Account {
    /// `cust_000001`.
    pub id: String,
    /// Contact email.
    pub email: String,
    /// Person's name.
    pub name: String,
    /// Company.
    pub company: Option<String>,
    /// ISO alpha-2.
    pub country: String,
    /// RFC 3339.
    pub created_at: String,
}

/// An add-on bought with a plan (e.g. CI minutes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddOn {
    /// `ci_minutes`.
    pub sku: String,
    /// Units (packs of minutes).
    pub quantity: u32,
}

/// The license as displayed to the customer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LicenseView {
    /// `issued`, `held` or `pending_terms`.
    pub status: String,
    /// The key, once issued.
    #[serde(default)]
    pub key: Option<String>,
}

/// A usage report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Usage {
    /// Active users (not blocked, not deactivated).
    pub active_users: u32,
    /// Billable users.
    pub billable_users: u32,
    /// RFC 3339.
    pub reported_at: String,
}

/// A subscription as the customers app knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subscription {
    /// `sub_000001`.
    pub id: String,
    /// Owner.
    pub account_id: String,
    /// `saas` or `self_managed`.
    pub deployment: String,
    /// `premium` or `ultimate`.
    pub plan: String,
    /// Seats bought.
    pub seats: u32,
    /// Term in months.
    pub term_months: u32,
    /// Add-ons.
    pub add_ons: Vec<AddOn>,
    /// `web_store`, `sales_assisted` or `reseller`.
    pub channel: String,
    /// The customers app's auto-renew flag.
    pub auto_renew: bool,
    /// `active` or `cancelled`.
    pub status: String,
    /// Why it was cancelled.
    pub cancellation_reason: Option<String>,
    /// Terms must be accepted before a license is issued.
    pub terms_required: bool,
    /// When the terms were accepted.
    pub eula_accepted_at: Option<String>,
    /// The license shown to the customer.
    pub license: Option<LicenseView>,
    /// Usage reports.
    pub usage: Vec<Usage>,
}

/// A lead from a form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lead {
    /// `lead_000001`.
    pub id: String,
    /// `signup`, `trial`, `contact_sales`, `abandoned_cart`.
    pub source: String,
    /// The form fields (country normalised).
    pub fields: BTreeMap<String, Value>,
}

/// Everything the customers app keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Data {
    /// Accounts by id.
    pub accounts: BTreeMap<String, Account>,
    /// Subscriptions by id.
    pub subscriptions: BTreeMap<String, Subscription>,
    /// Leads by id.
    pub leads: BTreeMap<String, Lead>,
    /// The outbox.
    pub outbox: Feed,
    /// Id sequence.
    pub seq: u64,
}

/// The running customers app.
pub type Customers = OwnApp<Data>;

impl Customers {
    /// Builds the app, loading saved state from `store` if given.
    pub fn new(cfg: Config, store: Option<Arc<Store>>) -> crate::Result<Arc<Self>> {
        OwnApp::build("customers", cfg.api_token, cfg.faults, store)
    }
}

/// The router: the API above and `/__admin`.
pub fn router(app: Arc<Customers>) -> Router {
    let routes = Router::new()
        .route("/api/v1/accounts", post(create_account))
        .route("/api/v1/accounts/{id}", get(get_account))
        .route(
            "/api/v1/signups",
            post(|s: State<Arc<Customers>>, b: Bytes| lead(s, b, "signup")),
        )
        .route(
            "/api/v1/trials",
            post(|s: State<Arc<Customers>>, b: Bytes| lead(s, b, "trial")),
        )
        .route(
            "/api/v1/contact-requests",
            post(|s: State<Arc<Customers>>, b: Bytes| lead(s, b, "contact_sales")),
        )
        .route(
            "/api/v1/carts/abandoned",
            post(|s: State<Arc<Customers>>, b: Bytes| lead(s, b, "abandoned_cart")),
        )
        .route("/api/v1/purchases", post(purchase))
        .route("/api/v1/subscriptions/{id}", get(get_subscription))
        .route("/api/v1/subscriptions/{id}/eula", post(accept_eula))
        .route("/api/v1/subscriptions/{id}/auto-renew", put(set_auto_renew))
        .route("/api/v1/subscriptions/{id}/cancel", post(cancel))
        .route("/api/v1/subscriptions/{id}/license", put(set_license))
        .route("/api/v1/subscriptions/{id}/usage", post(report_usage))
        .route("/api/v1/events", get(events));
    own::finish(routes, app)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn next_id(d: &mut Data, prefix: &str) -> String {
    d.seq += 1;
    format!("{prefix}_{:06}", d.seq)
}

/// Normalises a free-text country or names the field and value at fault (rule 1).
fn country(input: &str) -> Result<&'static str, ApiError> {
    crate::country::normalise(input).ok_or_else(|| ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_country",
        message: format!("country {input:?} cannot be mapped to an ISO 3166-1 alpha-2 code"),
        field: Some("country".into()),
        value: Some(json!(input)),
    })
}

fn check_email(email: &str) -> Result<(), ApiError> {
    let ok = email
        .split_once('@')
        .is_some_and(|(u, d)| !u.is_empty() && d.contains('.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "email",
            json!(email),
            "email is not an address",
        ))
    }
}

/// 422 naming the field and value unless `value` is one of `allowed` ("plan must be
/// premium or ultimate").
fn one_of<T>(field: &str, value: T, allowed: &[T]) -> Result<(), ApiError>
where
    T: PartialEq + std::fmt::Display + Serialize,
{
    if allowed.contains(&value) {
        return Ok(());
    }
    let names: Vec<String> = allowed.iter().map(T::to_string).collect();
    let choices = match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(ApiError::invalid(
        field,
        json!(value),
        format!("{field} must be {choices}"),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    email: String,
    name: String,
    company: Option<String>,
    country: String,
}

async fn create_account(
    State(app): State<Arc<Customers>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: NewAccount = own::parse(&body)?;
    check_email(&req.email)?;
    let country = country(&req.country)?;
    let account = app.shared.write(|d| {
        let a = Account {
            id: next_id(d, "cust"),
            email: req.email,
            name: req.name,
            company: req.company,
            country: country.to_string(),
            created_at: now(),
        };
        d.accounts.insert(a.id.clone(), a.clone());
        a
    });
    Ok((StatusCode::CREATED, Json(account)).into_response())
}

async fn get_account(
    State(app): State<Arc<Customers>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app.shared.read(|d| {
        let a = d
            .accounts
            .get(&id)
            .ok_or_else(|| ApiError::not_found("account", &id))?;
        let subs: Vec<&Subscription> = d
            .subscriptions
            .values()
            .filter(|s| s.account_id == id)
            .collect();
        Ok(Json(json!({ "account": a, "subscriptions": subs })))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadForm {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    company: Option<String>,
    country: Option<String>,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    seats: Option<u32>,
    #[serde(default)]
    message: Option<String>,
}

async fn lead(
    State(app): State<Arc<Customers>>,
    body: Bytes,
    source: &'static str,
) -> Result<Response, ApiError> {
    let form: LeadForm = own::parse(&body)?;
    check_email(&form.email)?;
    let country = form.country.as_deref().map(country).transpose()?;
    let mut fields = BTreeMap::new();
    fields.insert("email".into(), json!(form.email));
    for (k, v) in [
        ("first_name", form.first_name),
        ("last_name", form.last_name),
        ("company", form.company),
        ("plan", form.plan),
        ("message", form.message),
    ] {
        if let Some(v) = v {
            fields.insert(k.to_string(), json!(v));
        }
    }
    if let Some(c) = country {
        fields.insert("country".into(), json!(c));
    }
    if let Some(s) = form.seats {
        fields.insert("seats".into(), json!(s));
    }
    let lead = app.shared.write(|d| {
        let l = Lead {
            id: next_id(d, "lead"),
            source: source.to_string(),
            fields,
        };
        d.leads.insert(l.id.clone(), l.clone());
        d.outbox.push(
            "LeadCaptured",
            serde_json::to_value(&l).unwrap_or(Value::Null),
        );
        l
    });
    Ok((StatusCode::CREATED, Json(lead)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Purchase {
    account_id: String,
    deployment: String,
    plan: String,
    seats: u32,
    #[serde(default = "twelve")]
    term_months: u32,
    #[serde(default)]
    add_ons: Vec<AddOn>,
    #[serde(default = "web_store")]
    channel: String,
}

fn twelve() -> u32 {
    12
}
fn web_store() -> String {
    "web_store".into()
}

async fn purchase(State(app): State<Arc<Customers>>, body: Bytes) -> Result<Response, ApiError> {
    let p: Purchase = own::parse(&body)?;
    one_of(
        "deployment",
        p.deployment.as_str(),
        &["saas", "self_managed"],
    )?;
    one_of("plan", p.plan.as_str(), &["premium", "ultimate"])?;
    if p.seats == 0 {
        return Err(ApiError::invalid(
            "seats",
            json!(p.seats),
            "seats must be at least 1",
        ));
    }
    one_of("term_months", p.term_months, &[12, 24, 36])?;
    if let Some(a) = p
        .add_ons
        .iter()
        .find(|a| a.sku != "ci_minutes" || a.quantity == 0)
    {
        return Err(ApiError::invalid(
            "add_ons",
            json!(a),
            "the only add-on is ci_minutes, with a quantity of at least 1",
        ));
    }
    one_of(
        "channel",
        p.channel.as_str(),
        &["web_store", "sales_assisted", "reseller"],
    )?;
    let sub = app.shared.write(|d| {
        if !d.accounts.contains_key(&p.account_id) {
            return Err(ApiError::invalid(
                "account_id",
                json!(p.account_id),
                "no such account",
            ));
        }
        let terms_required = p.deployment == "self_managed";
        let s = Subscription {
            id: next_id(d, "sub"),
            account_id: p.account_id,
            auto_renew: p.channel == "web_store",
            terms_required,
            license: terms_required.then(|| LicenseView {
                status: "pending_terms".into(),
                key: None,
            }),
            deployment: p.deployment,
            plan: p.plan,
            seats: p.seats,
            term_months: p.term_months,
            add_ons: p.add_ons,
            channel: p.channel,
            status: "active".into(),
            cancellation_reason: None,
            eula_accepted_at: None,
            usage: Vec::new(),
        };
        d.subscriptions.insert(s.id.clone(), s.clone());
        d.outbox.push(
            "OrderPlaced",
            serde_json::to_value(&s).unwrap_or(Value::Null),
        );
        Ok(s)
    })?;
    Ok((StatusCode::CREATED, Json(sub)).into_response())
}

async fn get_subscription(
    State(app): State<Arc<Customers>>,
    Path(id): Path<String>,
) -> Result<Json<Subscription>, ApiError> {
    app.shared.read(|d| {
        d.subscriptions
            .get(&id)
            .cloned()
            .map(Json)
            .ok_or_else(|| ApiError::not_found("subscription", &id))
    })
}

/// Applies a change to an active subscription and returns it.
fn change(
    app: &Customers,
    id: &str,
    f: impl FnOnce(&mut Subscription, &mut Feed) -> Result<(), ApiError>,
) -> Result<Json<Subscription>, ApiError> {
    app.shared.write(|d| {
        let s = d
            .subscriptions
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("subscription", id))?;
        f(s, &mut d.outbox)?;
        Ok(Json(s.clone()))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Eula {
    accepted_by: String,
}

async fn accept_eula(
    State(app): State<Arc<Customers>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Subscription>, ApiError> {
    let e: Eula = own::parse(&body)?;
    check_email(&e.accepted_by)?;
    change(&app, &id, |s, feed| {
        if s.eula_accepted_at.is_none() {
            let at = now();
            s.eula_accepted_at = Some(at.clone());
            feed.push(
                "EulaAccepted",
                json!({ "subscription_id": s.id, "account_id": s.account_id, "accepted_by": e.accepted_by, "accepted_at": at }),
            );
        }
        Ok(())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoRenew {
    auto_renew: bool,
}

async fn set_auto_renew(
    State(app): State<Arc<Customers>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Subscription>, ApiError> {
    let a: AutoRenew = own::parse(&body)?;
    change(&app, &id, |s, feed| {
        if s.status == "cancelled" && a.auto_renew {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "cancelled",
                "a cancelled subscription cannot renew",
            ));
        }
        if s.auto_renew != a.auto_renew {
            s.auto_renew = a.auto_renew;
            feed.push(
                "AutoRenewChanged",
                json!({ "subscription_id": s.id, "account_id": s.account_id, "auto_renew": a.auto_renew }),
            );
        }
        Ok(())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cancel {
    reason: String,
}

const CANCEL_REASONS: &[&str] = &[
    "customer_request",
    "wrong_seat_count",
    "entity_change",
    "card_declined",
];

async fn cancel(
    State(app): State<Arc<Customers>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Subscription>, ApiError> {
    let c: Cancel = own::parse(&body)?;
    if !CANCEL_REASONS.contains(&c.reason.as_str()) {
        return Err(ApiError::invalid(
            "reason",
            json!(c.reason),
            format!("reason must be one of {}", CANCEL_REASONS.join(", ")),
        ));
    }
    change(&app, &id, |s, feed| {
        if s.status != "cancelled" {
            s.status = "cancelled".into();
            s.auto_renew = false;
            s.cancellation_reason = Some(c.reason.clone());
            feed.push(
                "SubscriptionCancelled",
                json!({ "subscription_id": s.id, "account_id": s.account_id, "reason": c.reason }),
            );
        }
        Ok(())
    })
}

async fn set_license(
    State(app): State<Arc<Customers>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Subscription>, ApiError> {
    let l: LicenseView = own::parse(&body)?;
    one_of(
        "status",
        l.status.as_str(),
        &["issued", "held", "pending_terms"],
    )?;
    if (l.status == "issued") != l.key.is_some() {
        return Err(ApiError::invalid(
            "key",
            json!(l.key),
            "a key comes with, and only with, an issued license",
        ));
    }
    change(&app, &id, |s, _| {
        s.license = Some(l);
        Ok(())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageReport {
    active_users: u32,
    billable_users: u32,
}

async fn report_usage(
    State(app): State<Arc<Customers>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Subscription>, ApiError> {
    let u: UsageReport = own::parse(&body)?;
    if u.billable_users > u.active_users {
        return Err(ApiError::invalid(
            "billable_users",
            json!(u.billable_users),
            "billable users cannot exceed active users",
        ));
    }
    change(&app, &id, |s, feed| {
        if s.deployment != "self_managed" {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_self_managed",
                "usage is reported for self-managed subscriptions only",
            ));
        }
        let report = Usage {
            active_users: u.active_users,
            billable_users: u.billable_users,
            reported_at: now(),
        };
        feed.push(
            "UsageReported",
            json!({ "subscription_id": s.id, "account_id": s.account_id, "seats": s.seats, "active_users": report.active_users, "billable_users": report.billable_users, "reported_at": report.reported_at }),
        );
        s.usage.push(report);
        Ok(())
    })
}

async fn events(State(app): State<Arc<Customers>>, Query(p): Query<FeedParams>) -> Json<Value> {
    Json(app.shared.read(|d| own::feed_page(&d.outbox, &p)))
}
