//! The customers app (the portal where customers buy and manage subscriptions).
//! Our own API, plain JSON, bearer token from configuration; errors are
//! `{"error":{"code","message","field","value"}}`, shared with the license service.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /api/v1/accounts` `{email,name,company,country}` | create a customer account (country free text, normalised to ISO alpha-2) |
//! | `GET /api/v1/accounts?page=&per_page=` | every account, paged (`Link: <…>; rel="next"`) |
//! | `GET /api/v1/accounts/{id}` | the account and its subscriptions |
//! | `PATCH /api/v1/accounts/{id}` `{name?,company?,country?}` | change an account (emits `AccountUpdated`) |
//! | `POST /api/v1/signups`, `/trials`, `/contact-requests`, `/carts/abandoned`, `/web-forms` `{email,first_name,last_name,company,country,marketing_opt_in,utm_campaign,...}` | a lead from a form, country kept as typed (emits `LeadCaptured`) |
//! | `POST /api/v1/purchases` `{account_id,deployment,plan,seats,term_months,add_ons,channel,reseller}` | a purchase with catalog SKUs and prices (emits `OrderPlaced`) |
//! | `GET /api/v1/subscriptions?account_id=&page=&per_page=` | subscriptions, paged |
//! | `GET /api/v1/subscriptions/{id}` | the subscription with its license as displayed |
//! | `POST /api/v1/subscriptions/{id}/eula` `{accepted_by}` | terms accepted (emits `EulaAccepted`) |
//! | `PUT /api/v1/subscriptions/{id}/auto-renew` `{auto_renew}` | the auto-renew toggle (emits `AutoRenewChanged`) |
//! | `POST /api/v1/subscriptions/{id}/cancel` `{reason}` | cancellation; turns auto-renew off (emits `SubscriptionCancelled`) |
//! | `PUT /api/v1/subscriptions/{id}/license` `{status,key}` | the license to display (pushed by the hub) |
//! | `POST /api/v1/subscriptions/{id}/usage` `{active_users, billable_users?, service_bots?, guests?}` | a self-managed usage report: the instance's own billable count, or the breakdown the hub counts by rule 9 (emits `UsageReported`) |
//! | `PUT /api/v1/hub/accounts/{id}` | the hub upserts an account under its own id (no event) |
//! | `PUT /api/v1/hub/subscriptions/{zuora_subscription_number}` | the hub mirrors a Zuora subscription (events with origin `hub`) |
//! | `POST /api/v1/hub/notices` `{subscription_id,days_before,term_end,sent_at?,channel?,message_id?,recipient?}` | the hub records a renewal notice it sent for the customers app (emits `RenewalNoticeSent`, origin `hub`) |
//! | `GET /api/v1/events?after=&limit=` | the outbox feed: `{"epoch","events","next_after","latest"}` |
//!
//! `{id}` of a subscription is the customers app's id or its Zuora subscription number.
//! Every outbox event says who caused it: `origin` is `customer` for the customer-facing
//! endpoints and `hub` for the hub's writes, so the hub can drop its own echoes. The feed's
//! `epoch` is made with the data and is new after `POST /__admin/reset`.
//!
//! Auto-renew (handbook rule 5): web-store purchases start with it on; reseller and
//! marketplace deals start with it off; a cancellation turns it off. Self-managed
//! purchases require the terms to be accepted before a license is issued (rule 8).
//! Lead forms keep the country as typed: the hub's edge normalises it (rule 1).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::kit::{rfc3339, Clock, FaultRule, Feed};
use crate::own::{self, ApiError, FeedParams, OwnApp};
use crate::store::Store;
use crate::Listen;

/// `origin` of an event caused through a customer-facing endpoint.
pub const ORIGIN_CUSTOMER: &str = "customer";
/// `origin` of an event caused by the hub's own writes.
pub const ORIGIN_HUB: &str = "hub";

/// A plan the customers app sells: its SKU per deployment and its price per seat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// SKU of the SaaS edition, e.g. `premium-saas-1y`.
    pub saas_sku: String,
    /// SKU of the self-managed edition, e.g. `premium-self-managed-1y`.
    pub self_managed_sku: String,
    /// Price per seat for the term, as a decimal string (`"29.00"`).
    pub unit_price: String,
}

/// An add-on the customers app sells (e.g. packs of CI minutes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddOnPrice {
    /// Its SKU, e.g. `ci-minutes-1000`.
    pub sku: String,
    /// Price per unit, as a decimal string.
    pub unit_price: String,
}

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
    /// The plans sold, by name (`premium`, `ultimate`, ...).
    pub plans: BTreeMap<String, Plan>,
    /// The add-ons sold, by name (`ci_minutes`, ...).
    pub add_ons: BTreeMap<String, AddOnPrice>,
    /// ISO 4217 currency of every price.
    pub currency: String,
}

impl Default for Config {
    fn default() -> Self {
        let plan = |name: &str, price: &str| Plan {
            saas_sku: format!("{name}-saas-1y"),
            self_managed_sku: format!("{name}-self-managed-1y"),
            unit_price: price.into(),
        };
        Self {
            listen: Listen::default(),
            api_token: "l2f-customers-token".into(),
            faults: Vec::new(),
            plans: [
                ("premium".to_string(), plan("premium", "29.00")),
                ("ultimate".to_string(), plan("ultimate", "99.00")),
            ]
            .into_iter()
            .collect(),
            add_ons: [(
                "ci_minutes".to_string(),
                AddOnPrice {
                    sku: "ci-minutes-1000".into(),
                    unit_price: "10.00".into(),
                },
            )]
            .into_iter()
            .collect(),
            currency: "USD".into(),
        }
    }
}

/// A customer account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Account {
    /// `cust_000001`, or the id the hub gave it (a Salesforce Account Id).
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
    /// The add-on's name in the catalog (`ci_minutes`) or its SKU (`ci-minutes-1000`).
    pub sku: String,
    /// Units (packs of minutes).
    pub quantity: u32,
}

/// The reseller of a reseller deal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reseller {
    /// The reseller's name.
    pub name: String,
    /// Whether it is an authorized reseller (handbook rule 3).
    pub authorized: bool,
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
    /// Billable users, as the instance counted them (absent when it sent the breakdown only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billable_users: Option<u32>,
    /// Active users that are service bots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_bots: Option<u32>,
    /// Active users (not bots) with only the Guest role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guests: Option<u32>,
    /// RFC 3339.
    pub reported_at: String,
}

/// A subscription as the customers app knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subscription {
    /// `sub_000001`.
    pub id: String,
    /// The order it came from: its own id for a web-store purchase, the hub's order id
    /// for a mirrored one.
    #[serde(default)]
    pub order_id: Option<String>,
    /// Zuora's subscription number, once the hub mirrored it.
    #[serde(default)]
    pub zuora_subscription_number: Option<String>,
    /// Owner.
    pub account_id: String,
    /// `saas` or `self_managed`.
    pub deployment: String,
    /// The plan's name in the catalog (or its SKU when the catalog does not know it).
    pub plan: String,
    /// The plan's SKU.
    #[serde(default)]
    pub plan_sku: String,
    /// Seats bought.
    pub seats: u32,
    /// Term in months.
    pub term_months: u32,
    /// First day of the term (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    pub term_start: String,
    /// Day the term ends (`YYYY-MM-DD`).
    #[serde(default)]
    pub term_end: String,
    /// Add-ons.
    pub add_ons: Vec<AddOn>,
    /// `web_store`, `sales_assisted`, `reseller`, `aws_marketplace` or
    /// `govuk_digital_marketplace`.
    pub channel: String,
    /// The reseller of a reseller deal.
    #[serde(default)]
    pub reseller: Option<Reseller>,
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
    /// Renewal notices the customers app sent (recorded by the hub, which sends them).
    #[serde(default)]
    pub notices: Vec<Notice>,
}

/// A renewal notice the customers app sent (handbook rule 7: the 14-day one).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notice {
    /// Days before the term end.
    pub days_before: u32,
    /// The term end it announced (`YYYY-MM-DD`).
    pub term_end: String,
    /// When it was sent (RFC 3339).
    pub sent_at: String,
    /// How it went out (`email`).
    pub channel: String,
    /// The mail provider's message id, if known.
    pub message_id: Option<String>,
    /// Whom it went to, if known.
    pub recipient: Option<String>,
}

/// A lead from a form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lead {
    /// `lead_000001`.
    pub id: String,
    /// `signup`, `trial`, `contact_sales`, `abandoned_cart`, `web_form`.
    pub source: String,
    /// The form fields, country as typed (trimmed).
    pub fields: BTreeMap<String, Value>,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: String,
}

fn new_epoch() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Everything the customers app keeps.
#[derive(Debug, Serialize, Deserialize)]
pub struct Data {
    /// The outbox's epoch: made with the data, new after a reset, so a reader can tell a
    /// feed that started again from one that went on.
    #[serde(default = "new_epoch")]
    pub epoch: String,
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

impl Default for Data {
    fn default() -> Self {
        Self {
            epoch: new_epoch(),
            accounts: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            leads: BTreeMap::new(),
            outbox: Feed::default(),
            seq: 0,
        }
    }
}

/// The catalog in cents, checked at start.
pub struct Catalog {
    plans: BTreeMap<String, (Plan, i64)>,
    add_ons: BTreeMap<String, (AddOnPrice, i64)>,
    currency: String,
}

/// The running customers app.
pub type Customers = OwnApp<Data, Catalog>;

impl Customers {
    /// Builds the app, loading saved state from `store` if given; refuses a catalog whose
    /// prices or currency do not parse. Business time is the wall clock.
    pub fn new(cfg: Config, store: Option<Arc<Store>>) -> crate::Result<Arc<Self>> {
        Self::with_clock(cfg, store, Clock::wall())
    }

    /// As [`Customers::new`], reading purchase, form and feed times from `clock`.
    pub fn with_clock(
        cfg: Config,
        store: Option<Arc<Store>>,
        clock: Arc<Clock>,
    ) -> crate::Result<Arc<Self>> {
        let price = |what: &str, p: &str| {
            cents(p).ok_or_else(|| {
                crate::Error::Config(format!(
                    "customers: unit_price {p:?} of {what} is not a decimal amount"
                ))
            })
        };
        let mut plans = BTreeMap::new();
        for (name, p) in &cfg.plans {
            plans.insert(name.clone(), (p.clone(), price(name, &p.unit_price)?));
        }
        let mut add_ons = BTreeMap::new();
        for (name, a) in &cfg.add_ons {
            add_ons.insert(name.clone(), (a.clone(), price(name, &a.unit_price)?));
        }
        if cfg.currency.len() != 3 || !cfg.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(crate::Error::Config(format!(
                "customers: currency {:?} is not an ISO 4217 code",
                cfg.currency
            )));
        }
        let catalog = Catalog {
            plans,
            add_ons,
            currency: cfg.currency,
        };
        let app = OwnApp::build(
            "customers",
            cfg.api_token,
            cfg.faults,
            store,
            clock,
            catalog,
        )?;
        // Persist the epoch now, so a restart before the first write keeps it.
        app.shared.write(|_| ());
        Ok(app)
    }
}

/// The router: the API above and `/__admin`.
pub fn router(app: Arc<Customers>) -> Router {
    let form =
        |source: &'static str| post(move |s: State<Arc<Customers>>, b: Bytes| lead(s, b, source));
    let routes = Router::new()
        .route("/api/v1/accounts", get(list_accounts).post(create_account))
        .route(
            "/api/v1/accounts/{id}",
            get(get_account).patch(update_account),
        )
        .route("/api/v1/signups", form("signup"))
        .route("/api/v1/trials", form("trial"))
        .route("/api/v1/contact-requests", form("contact_sales"))
        .route("/api/v1/carts/abandoned", form("abandoned_cart"))
        .route("/api/v1/web-forms", form("web_form"))
        .route("/api/v1/purchases", post(purchase))
        .route("/api/v1/subscriptions", get(list_subscriptions))
        .route("/api/v1/subscriptions/{id}", get(get_subscription))
        .route("/api/v1/subscriptions/{id}/eula", post(accept_eula))
        .route("/api/v1/subscriptions/{id}/auto-renew", put(set_auto_renew))
        .route("/api/v1/subscriptions/{id}/cancel", post(cancel))
        .route("/api/v1/subscriptions/{id}/license", put(set_license))
        .route("/api/v1/subscriptions/{id}/usage", post(report_usage))
        .route("/api/v1/hub/accounts/{id}", put(hub_account))
        .route("/api/v1/hub/subscriptions/{number}", put(hub_subscription))
        .route("/api/v1/hub/notices", post(hub_notice))
        .route("/api/v1/events", get(events));
    own::finish(routes, app)
}

fn next_id(d: &mut Data, prefix: &str) -> String {
    d.seq += 1;
    format!("{prefix}_{:06}", d.seq)
}

/// `"29.00"` → 2900; `None` for anything that is not a non-negative amount with at most
/// two decimals.
fn cents(s: &str) -> Option<i64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    if int.is_empty() || !digits(int) || frac.len() > 2 || !digits(frac) {
        return None;
    }
    let whole: i64 = int.parse().ok()?;
    let part: i64 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(part)
}

/// 2900 → `"29.00"`.
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
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

fn parse_date(field: &str, value: &str) -> Result<chrono::NaiveDate, ApiError> {
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid(field, json!(value), format!("{field} must be YYYY-MM-DD")))
}

/// The query string of a list or feed request, or 400 `invalid_query` naming the problem.
fn query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.to_string()))
}

#[derive(Deserialize)]
struct ListParams {
    page: Option<usize>,
    per_page: Option<usize>,
    account_id: Option<String>,
}

/// One page of `items` as `{"items","page","per_page","total"}`, with a `Link` header to
/// the next page when there is one (RFC 8288; the target is relative to the app's root).
fn page_of<T: Serialize>(path: &str, p: &ListParams, items: Vec<T>) -> Response {
    let per_page = p.per_page.unwrap_or(100).clamp(1, 1000);
    let page = p.page.unwrap_or(1).max(1);
    let total = items.len();
    let start = (page - 1).saturating_mul(per_page);
    let shown: Vec<T> = items.into_iter().skip(start).take(per_page).collect();
    let mut resp =
        Json(json!({ "items": shown, "page": page, "per_page": per_page, "total": total }))
            .into_response();
    if start.saturating_add(per_page) < total {
        let mut q = vec![
            ("page", (page + 1).to_string()),
            ("per_page", per_page.to_string()),
        ];
        if let Some(a) = &p.account_id {
            q.push(("account_id", a.clone()));
        }
        let qs = serde_urlencoded::to_string(&q).unwrap_or_default();
        if let Ok(v) = HeaderValue::from_str(&format!("<{path}?{qs}>; rel=\"next\"")) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
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
    let t = app.shared.clock().now_ms();
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
            created_at: rfc3339(t),
        };
        d.accounts.insert(a.id.clone(), a.clone());
        a
    });
    Ok((StatusCode::CREATED, Json(account)).into_response())
}

async fn list_accounts(
    State(app): State<Arc<Customers>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p: ListParams = query(raw.as_deref())?;
    let items: Vec<Account> = app.shared.read(|d| d.accounts.values().cloned().collect());
    Ok(page_of("/api/v1/accounts", &p, items))
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
struct AccountChange {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    company: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

/// A customer changes their account (e.g. the billing country before a renewal).
async fn update_account(
    State(app): State<Arc<Customers>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Account>, ApiError> {
    let t = app.shared.clock().now_ms();
    let c: AccountChange = own::parse(&body)?;
    let new_country = c.country.as_deref().map(country).transpose()?;
    app.shared.write(|d| {
        let a = d
            .accounts
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("account", &id))?;
        let before = a.clone();
        if let Some(n) = c.name {
            a.name = n;
        }
        if let Some(co) = c.company {
            a.company = Some(co);
        }
        if let Some(cc) = new_country {
            a.country = cc.to_string();
        }
        let after = a.clone();
        if after != before {
            d.outbox.push_from(
                t,
                "AccountUpdated",
                Some(ORIGIN_CUSTOMER),
                json!({ "account": after }),
            );
        }
        Ok(Json(after))
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
    #[serde(default)]
    marketing_opt_in: bool,
    #[serde(default)]
    utm_campaign: Option<String>,
}

async fn lead(
    State(app): State<Arc<Customers>>,
    body: Bytes,
    source: &'static str,
) -> Result<Response, ApiError> {
    let t = app.shared.clock().now_ms();
    let form: LeadForm = own::parse(&body)?;
    check_email(&form.email)?;
    let mut fields = BTreeMap::new();
    fields.insert("email".into(), json!(form.email));
    // The country as the visitor typed it, trimmed: the hub's edge maps it or
    // dead-letters the lead naming the value (DESIGN rule 1).
    let country = form
        .country
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    for (k, v) in [
        ("first_name", form.first_name),
        ("last_name", form.last_name),
        ("company", form.company),
        ("country", country),
        ("plan", form.plan),
        ("message", form.message),
        ("utm_campaign", form.utm_campaign),
    ] {
        if let Some(v) = v {
            fields.insert(k.to_string(), json!(v));
        }
    }
    if let Some(s) = form.seats {
        fields.insert("seats".into(), json!(s));
    }
    fields.insert("marketing_opt_in".into(), json!(form.marketing_opt_in));
    let lead = app.shared.write(|d| {
        let l = Lead {
            id: next_id(d, "lead"),
            source: source.to_string(),
            fields,
            created_at: rfc3339(t),
        };
        d.leads.insert(l.id.clone(), l.clone());
        d.outbox.push_from(
            t,
            "LeadCaptured",
            Some(ORIGIN_CUSTOMER),
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
    #[serde(default)]
    reseller: Option<Reseller>,
}

fn twelve() -> u32 {
    12
}
fn web_store() -> String {
    "web_store".into()
}

/// The channels a purchase through the customers app can come from; `sales_assisted`
/// deals come from Salesforce.
const PURCHASE_CHANNELS: &[&str] = &[
    "web_store",
    "reseller",
    "aws_marketplace",
    "govuk_digital_marketplace",
];

/// Every channel a subscription can have.
const CHANNELS: &[&str] = &[
    "web_store",
    "sales_assisted",
    "reseller",
    "aws_marketplace",
    "govuk_digital_marketplace",
];

fn term_end(start: chrono::NaiveDate, months: u32) -> chrono::NaiveDate {
    start
        .checked_add_months(chrono::Months::new(months))
        .unwrap_or(start)
}

async fn purchase(State(app): State<Arc<Customers>>, body: Bytes) -> Result<Response, ApiError> {
    let t = app.shared.clock().now_ms();
    let p: Purchase = own::parse(&body)?;
    let cat = &app.settings;
    one_of(
        "deployment",
        p.deployment.as_str(),
        &["saas", "self_managed"],
    )?;
    let plan_names: Vec<&str> = cat.plans.keys().map(String::as_str).collect();
    one_of("plan", p.plan.as_str(), &plan_names)?;
    let (plan, seat_price) = &cat.plans[&p.plan];
    if p.seats == 0 {
        return Err(ApiError::invalid(
            "seats",
            json!(p.seats),
            "seats must be at least 1",
        ));
    }
    one_of("term_months", p.term_months, &[12, 24, 36])?;
    if p.channel == "sales_assisted" {
        return Err(ApiError::invalid(
            "channel",
            json!(p.channel),
            "sales-assisted deals come from Salesforce, not from a purchase here",
        ));
    }
    one_of("channel", p.channel.as_str(), PURCHASE_CHANNELS)?;
    match (&p.reseller, p.channel == "reseller") {
        (None, true) => {
            return Err(ApiError::invalid(
                "reseller",
                Value::Null,
                "reseller {name, authorized} is required when channel is reseller",
            ))
        }
        (Some(r), false) => {
            return Err(ApiError::invalid(
                "reseller",
                json!(r),
                "reseller is given only when channel is reseller",
            ))
        }
        _ => {}
    }
    let plan_sku = if p.deployment == "saas" {
        plan.saas_sku.clone()
    } else {
        plan.self_managed_sku.clone()
    };
    let mut lines =
        vec![json!({ "sku": plan_sku, "quantity": p.seats, "unit_price": money(*seat_price) })];
    let mut total = i64::from(p.seats) * seat_price;
    for a in &p.add_ons {
        let found = cat
            .add_ons
            .iter()
            .find(|(name, (price, _))| **name == a.sku || price.sku == a.sku)
            .filter(|_| a.quantity > 0);
        let Some((_, (price, unit))) = found else {
            let names: Vec<&str> = cat.add_ons.keys().map(String::as_str).collect();
            return Err(ApiError::invalid(
                "add_ons",
                json!(a),
                format!(
                    "an add-on is one of {}, with a quantity of at least 1",
                    names.join(", ")
                ),
            ));
        };
        lines.push(json!({ "sku": price.sku, "quantity": a.quantity, "unit_price": money(*unit) }));
        total += i64::from(a.quantity) * unit;
    }
    let start = chrono::DateTime::from_timestamp_millis(t)
        .unwrap_or_default()
        .date_naive();
    let end = term_end(start, p.term_months);
    let sub = app.shared.write(|d| {
        let account = d.accounts.get(&p.account_id).cloned().ok_or_else(|| {
            ApiError::invalid("account_id", json!(p.account_id), "no such account")
        })?;
        let terms_required = p.deployment == "self_managed";
        let id = next_id(d, "sub");
        let s = Subscription {
            order_id: Some(id.clone()),
            id,
            zuora_subscription_number: None,
            account_id: p.account_id,
            auto_renew: p.channel == "web_store",
            terms_required,
            license: terms_required.then(|| LicenseView {
                status: "pending_terms".into(),
                key: None,
            }),
            deployment: p.deployment,
            plan: p.plan,
            plan_sku,
            seats: p.seats,
            term_months: p.term_months,
            term_start: start.to_string(),
            term_end: end.to_string(),
            add_ons: p.add_ons,
            channel: p.channel,
            reseller: p.reseller,
            status: "active".into(),
            cancellation_reason: None,
            eula_accepted_at: None,
            usage: Vec::new(),
            notices: Vec::new(),
        };
        d.subscriptions.insert(s.id.clone(), s.clone());
        d.outbox.push_from(
            t,
            "OrderPlaced",
            Some(ORIGIN_CUSTOMER),
            json!({
                "order_id": s.id,
                "subscription_id": s.id,
                "account": {
                    "id": account.id,
                    "email": account.email,
                    "name": account.name,
                    "company": account.company,
                    "country": account.country,
                },
                "deployment": s.deployment,
                "plan": s.plan,
                "channel": s.channel,
                "reseller": s.reseller,
                "lines": lines,
                "currency": cat.currency,
                "total": money(total),
                "term_start": s.term_start,
                "term_end": s.term_end,
                "auto_renew": s.auto_renew,
            }),
        );
        Ok(s)
    })?;
    Ok((StatusCode::CREATED, Json(sub)).into_response())
}

/// The customers-app id of a subscription known by that id or by its Zuora number.
fn subscription_id(d: &Data, key: &str) -> Option<String> {
    if d.subscriptions.contains_key(key) {
        return Some(key.to_string());
    }
    d.subscriptions
        .values()
        .find(|s| s.zuora_subscription_number.as_deref() == Some(key))
        .map(|s| s.id.clone())
}

async fn get_subscription(
    State(app): State<Arc<Customers>>,
    Path(id): Path<String>,
) -> Result<Json<Subscription>, ApiError> {
    app.shared.read(|d| {
        subscription_id(d, &id)
            .and_then(|k| d.subscriptions.get(&k).cloned())
            .map(Json)
            .ok_or_else(|| ApiError::not_found("subscription", &id))
    })
}

async fn list_subscriptions(
    State(app): State<Arc<Customers>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p: ListParams = query(raw.as_deref())?;
    let items: Vec<Subscription> = app.shared.read(|d| {
        d.subscriptions
            .values()
            .filter(|s| p.account_id.as_ref().is_none_or(|a| *a == s.account_id))
            .cloned()
            .collect()
    });
    Ok(page_of("/api/v1/subscriptions", &p, items))
}

/// The keys every subscription event carries, plus `extra`.
fn subscription_event(s: &Subscription, extra: Value) -> Value {
    let mut v = json!({
        "subscription_id": s.id,
        "zuora_subscription_number": s.zuora_subscription_number,
        "account_id": s.account_id,
    });
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

/// Applies a customer's change to a subscription (by id or Zuora number) and returns it.
fn change(
    app: &Customers,
    key: &str,
    f: impl FnOnce(&mut Subscription, &mut Feed) -> Result<(), ApiError>,
) -> Result<Json<Subscription>, ApiError> {
    app.shared.write(|d| {
        let id = subscription_id(d, key).ok_or_else(|| ApiError::not_found("subscription", key))?;
        let s = d
            .subscriptions
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("subscription", key))?;
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
    let t = app.shared.clock().now_ms();
    let e: Eula = own::parse(&body)?;
    check_email(&e.accepted_by)?;
    change(&app, &id, |s, feed| {
        if s.eula_accepted_at.is_none() {
            let at = rfc3339(t);
            s.eula_accepted_at = Some(at.clone());
            feed.push_from(
                t,
                "EulaAccepted",
                Some(ORIGIN_CUSTOMER),
                subscription_event(
                    s,
                    json!({ "accepted_by": e.accepted_by, "accepted_at": at }),
                ),
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
    let t = app.shared.clock().now_ms();
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
            feed.push_from(
                t,
                "AutoRenewChanged",
                Some(ORIGIN_CUSTOMER),
                subscription_event(s, json!({ "auto_renew": a.auto_renew })),
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
    let t = app.shared.clock().now_ms();
    let c: Cancel = own::parse(&body)?;
    one_of("reason", c.reason.as_str(), CANCEL_REASONS)?;
    change(&app, &id, |s, feed| {
        if s.status != "cancelled" {
            s.status = "cancelled".into();
            s.auto_renew = false;
            s.cancellation_reason = Some(c.reason.clone());
            feed.push_from(
                t,
                "SubscriptionCancelled",
                Some(ORIGIN_CUSTOMER),
                subscription_event(s, json!({ "reason": c.reason })),
            );
        }
        Ok(())
    })
}

/// The license to display, pushed by the hub (a hub write: no event).
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
    #[serde(default)]
    billable_users: Option<u32>,
    #[serde(default)]
    service_bots: Option<u32>,
    #[serde(default)]
    guests: Option<u32>,
}

async fn report_usage(
    State(app): State<Arc<Customers>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Subscription>, ApiError> {
    let t = app.shared.clock().now_ms();
    let u: UsageReport = own::parse(&body)?;
    if u.billable_users.is_some_and(|b| b > u.active_users) {
        return Err(ApiError::invalid(
            "billable_users",
            json!(u.billable_users),
            "billable users cannot exceed active users",
        ));
    }
    let breakdown = u.service_bots.unwrap_or(0) as u64 + u.guests.unwrap_or(0) as u64;
    if breakdown > u.active_users as u64 {
        return Err(ApiError::invalid(
            "service_bots",
            json!(u.service_bots),
            "service bots and guests cannot exceed active users",
        ));
    }
    if u.billable_users.is_none() && u.service_bots.is_none() && u.guests.is_none() {
        return Err(ApiError::invalid(
            "billable_users",
            Value::Null,
            "give billable_users, or the breakdown (service_bots, guests)",
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
            service_bots: u.service_bots,
            guests: u.guests,
            reported_at: rfc3339(t),
        };
        let mut data = json!({ "seats": s.seats, "plan_sku": s.plan_sku, "active_users": report.active_users, "reported_at": report.reported_at });
        for (k, v) in [
            ("billable_users", report.billable_users),
            ("service_bots", report.service_bots),
            ("guests", report.guests),
        ] {
            if let Some(v) = v {
                data[k] = json!(v);
            }
        }
        feed.push_from(
            t,
            "UsageReported",
            Some(ORIGIN_CUSTOMER),
            subscription_event(s, data),
        );
        s.usage.push(report);
        Ok(())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HubAccount {
    email: String,
    name: String,
    #[serde(default)]
    company: Option<String>,
    country: String,
}

/// The hub upserts an account under the id it chooses (a sales-assisted customer's is
/// its Salesforce Account Id). No event: the hub caused it.
async fn hub_account(
    State(app): State<Arc<Customers>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let t = app.shared.clock().now_ms();
    let req: HubAccount = own::parse(&body)?;
    check_email(&req.email)?;
    let country = country(&req.country)?;
    let (created, account) = app.shared.write(|d| {
        let created = !d.accounts.contains_key(&id);
        let a = d.accounts.entry(id.clone()).or_insert_with(|| Account {
            id: id.clone(),
            email: String::new(),
            name: String::new(),
            company: None,
            country: String::new(),
            created_at: rfc3339(t),
        });
        a.email = req.email;
        a.name = req.name;
        a.company = req.company;
        a.country = country.to_string();
        (created, a.clone())
    });
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(account)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mirror {
    account_id: String,
    #[serde(default)]
    order_id: Option<String>,
    deployment: String,
    plan_sku: String,
    seats: u32,
    term_start: String,
    term_end: String,
    auto_renew: bool,
    status: String,
    #[serde(default)]
    cancellation_reason: Option<String>,
    #[serde(default)]
    channel: Option<String>,
}

/// Whole months from `start` to `end` (at least 1).
fn months_between(start: chrono::NaiveDate, end: chrono::NaiveDate) -> u32 {
    use chrono::Datelike;
    let m = (end.year() - start.year()) * 12 + end.month() as i32 - start.month() as i32;
    u32::try_from(m).unwrap_or(0).max(1)
}

/// The hub mirrors a Zuora subscription: found by its number, else by the order it came
/// from, else created. Idempotent; events it causes carry origin `hub`.
async fn hub_subscription(
    State(app): State<Arc<Customers>>,
    Path(number): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let t = app.shared.clock().now_ms();
    let m: Mirror = own::parse(&body)?;
    one_of(
        "deployment",
        m.deployment.as_str(),
        &["saas", "self_managed"],
    )?;
    one_of("status", m.status.as_str(), &["active", "cancelled"])?;
    if let Some(c) = &m.channel {
        one_of("channel", c.as_str(), CHANNELS)?;
    }
    if let Some(r) = &m.cancellation_reason {
        one_of("cancellation_reason", r.as_str(), CANCEL_REASONS)?;
    }
    if m.plan_sku.trim().is_empty() {
        return Err(ApiError::invalid(
            "plan_sku",
            json!(m.plan_sku),
            "plan_sku is required",
        ));
    }
    let start = parse_date("term_start", &m.term_start)?;
    let end = parse_date("term_end", &m.term_end)?;
    if end <= start {
        return Err(ApiError::invalid(
            "term_end",
            json!(m.term_end),
            "term_end must be after term_start",
        ));
    }
    let plan_name = app
        .settings
        .plans
        .iter()
        .find(|(_, (p, _))| p.saas_sku == m.plan_sku || p.self_managed_sku == m.plan_sku)
        .map(|(name, _)| name.clone());
    let (created, sub) = app.shared.write(|d| {
        if !d.accounts.contains_key(&m.account_id) {
            return Err(ApiError::invalid(
                "account_id",
                json!(m.account_id),
                "no such account",
            ));
        }
        let existing = d
            .subscriptions
            .values()
            .find(|s| s.zuora_subscription_number.as_deref() == Some(number.as_str()))
            .or_else(|| {
                m.order_id
                    .as_ref()
                    .and_then(|o| d.subscriptions.get(o))
                    .filter(|s| s.zuora_subscription_number.is_none())
            })
            .map(|s| s.id.clone());
        let created = existing.is_none();
        let id = match existing {
            Some(id) => id,
            None => {
                let id = next_id(d, "sub");
                let terms_required = m.deployment == "self_managed";
                let s = Subscription {
                    id: id.clone(),
                    order_id: m.order_id.clone(),
                    zuora_subscription_number: None,
                    account_id: m.account_id.clone(),
                    deployment: m.deployment.clone(),
                    plan: String::new(),
                    plan_sku: String::new(),
                    seats: 0,
                    term_months: 0,
                    term_start: String::new(),
                    term_end: String::new(),
                    add_ons: Vec::new(),
                    channel: m.channel.clone().unwrap_or_else(|| "sales_assisted".into()),
                    reseller: None,
                    auto_renew: m.auto_renew,
                    status: m.status.clone(),
                    cancellation_reason: None,
                    terms_required,
                    eula_accepted_at: None,
                    license: terms_required.then(|| LicenseView {
                        status: "pending_terms".into(),
                        key: None,
                    }),
                    usage: Vec::new(),
                    notices: Vec::new(),
                };
                d.subscriptions.insert(id.clone(), s);
                id
            }
        };
        let Some(s) = d.subscriptions.get_mut(&id) else {
            return Err(ApiError::not_found("subscription", &id));
        };
        let before = s.clone();
        s.zuora_subscription_number = Some(number.clone());
        s.plan = plan_name.clone().unwrap_or_else(|| m.plan_sku.clone());
        s.plan_sku = m.plan_sku.clone();
        s.seats = m.seats;
        s.term_start = start.to_string();
        s.term_end = end.to_string();
        s.term_months = months_between(start, end);
        s.auto_renew = m.auto_renew;
        s.status = m.status.clone();
        s.cancellation_reason = m.cancellation_reason.clone();
        let after = s.clone();
        if !created {
            if after.auto_renew != before.auto_renew {
                d.outbox.push_from(
                    t,
                    "AutoRenewChanged",
                    Some(ORIGIN_HUB),
                    subscription_event(&after, json!({ "auto_renew": after.auto_renew })),
                );
            }
            if after.status == "cancelled" && before.status != "cancelled" {
                d.outbox.push_from(
                    t,
                    "SubscriptionCancelled",
                    Some(ORIGIN_HUB),
                    subscription_event(&after, json!({ "reason": after.cancellation_reason })),
                );
            }
        }
        Ok((created, after))
    })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(sub)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoticeSent {
    subscription_id: String,
    days_before: u32,
    term_end: String,
    #[serde(default)]
    sent_at: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    recipient: Option<String>,
}

/// The hub records a renewal notice it sent on the customers app's behalf (rule 7: the
/// 14-day notice of a SaaS subscription with auto-renew on and a seat increase), so an
/// audit finds it with the subscription. Idempotent by (subscription, `term_end`,
/// `days_before`): 201 the first time, 200 with the notice as first recorded after.
/// Emits `RenewalNoticeSent` with origin `hub` the first time.
async fn hub_notice(State(app): State<Arc<Customers>>, body: Bytes) -> Result<Response, ApiError> {
    let t = app.shared.clock().now_ms();
    let n: NoticeSent = own::parse(&body)?;
    if n.days_before > 366 {
        return Err(ApiError::invalid(
            "days_before",
            json!(n.days_before),
            "days_before is 0 to 366",
        ));
    }
    parse_date("term_end", &n.term_end)?;
    let sent_at = match &n.sent_at {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| rfc3339(d.timestamp_millis()))
            .map_err(|_| ApiError::invalid("sent_at", json!(s), "sent_at must be RFC 3339"))?,
        None => rfc3339(t),
    };
    let channel = n.channel.clone().unwrap_or_else(|| "email".into());
    one_of("channel", channel.as_str(), &["email"])?;
    if let Some(r) = &n.recipient {
        check_email(r)?;
    }
    let (created, notice) = app.shared.write(|d| {
        let id = subscription_id(d, &n.subscription_id)
            .ok_or_else(|| ApiError::not_found("subscription", &n.subscription_id))?;
        let s = d
            .subscriptions
            .get_mut(&id)
            .ok_or_else(|| ApiError::not_found("subscription", &id))?;
        if let Some(existing) = s
            .notices
            .iter()
            .find(|x| x.term_end == n.term_end && x.days_before == n.days_before)
        {
            return Ok((false, existing.clone()));
        }
        let notice = Notice {
            days_before: n.days_before,
            term_end: n.term_end.clone(),
            sent_at,
            channel,
            message_id: n.message_id.clone(),
            recipient: n.recipient.clone(),
        };
        s.notices.push(notice.clone());
        let data = subscription_event(
            s,
            json!({ "days_before": notice.days_before, "term_end": notice.term_end, "sent_at": notice.sent_at, "channel": notice.channel, "message_id": notice.message_id, "sent_by": "customers" }),
        );
        d.outbox
            .push_from(t, "RenewalNoticeSent", Some(ORIGIN_HUB), data);
        Ok((true, notice))
    })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(notice)).into_response())
}

async fn events(State(app): State<Arc<Customers>>, Query(p): Query<FeedParams>) -> Json<Value> {
    Json(app.shared.read(|d| {
        let mut page = own::feed_page(&d.outbox, &p);
        page["epoch"] = json!(d.epoch);
        page
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_through_cents() {
        assert_eq!(cents("29.00"), Some(2900));
        assert_eq!(cents("10"), Some(1000));
        assert_eq!(cents("0.5"), Some(50));
        assert_eq!(cents("1.234"), None);
        assert_eq!(cents("-1"), None);
        assert_eq!(cents("abc"), None);
        assert_eq!(money(31000), "310.00");
        assert_eq!(money(5), "0.05");
    }

    #[test]
    fn whole_months_between_term_dates() {
        let d = |s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        assert_eq!(months_between(d("2026-12-02"), d("2027-12-02")), 12);
        assert_eq!(months_between(d("2026-01-31"), d("2028-01-31")), 24);
    }
}
