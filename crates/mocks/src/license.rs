//! The license service: issues a license for a subscription once its terms are
//! accepted, and holds it while the account's communication profile is `Silent`
//! (handbook rules 6 and 8). Our own API, plain JSON, bearer token from
//! configuration; errors are `{"error":{"code","message","field","value"}}`.
//!
//! | method and path | what |
//! |---|---|
//! | `PUT /api/v1/subscriptions/{id}` `{account_id,plan,seats,terms_accepted,communication_profile,starts_on?,expires_on?,licensee_email?,reseller?,order_id?}` | register or update a subscription; answers its license |
//! | `POST /api/v1/subscriptions/{id}/terms-accepted` | terms accepted; the license is issued unless held |
//! | `PUT /api/v1/subscriptions/{id}/communication-profile` `{communication_profile}` | `Silent` holds, anything else lifts the hold |
//! | `GET /api/v1/licenses/{id}` | `{subscription_id,account_id,status,key,plan,seats,...}`; `key` only once issued |
//! | `GET /api/v1/licenses?account_id=` | `{"licenses":[...]}`: every license of an account |
//! | `GET /api/v1/events?after=&limit=` | `{"epoch","events","next_after","latest"}`: `LicenseIssued` / `LicenseHeld` events |
//!
//! A license is issued once: its key never changes after it was first issued. The feed's
//! `epoch` is made with the data and is new after `POST /__admin/reset`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::kit::{self, FaultRule, Feed};
use crate::own::{self, ApiError, FeedParams, OwnApp};
use crate::store::Store;
use crate::Listen;

/// License service configuration.
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
            api_token: "l2f-license-token".into(),
            faults: Vec::new(),
        }
    }
}

/// A subscription's license record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LicenseRecord {
    /// The subscription it licenses.
    pub subscription_id: String,
    /// The owning account.
    pub account_id: String,
    /// Plan.
    pub plan: String,
    /// Seats licensed.
    pub seats: u32,
    /// Terms accepted.
    pub terms_accepted: bool,
    /// `Default`, `Silent`, ...
    pub communication_profile: String,
    /// `pending_terms`, `held` or `issued`.
    pub status: String,
    /// The key, generated at first issue and kept.
    pub key: Option<String>,
    /// When first issued.
    pub issued_at: Option<String>,
    /// First valid day (`YYYY-MM-DD`), as registered.
    #[serde(default)]
    pub starts_on: Option<String>,
    /// Last valid day (`YYYY-MM-DD`), as registered.
    #[serde(default)]
    pub expires_on: Option<String>,
    /// Who receives the license email.
    #[serde(default)]
    pub licensee_email: Option<String>,
    /// A reseller deal (the reseller is notified too, rule 8).
    #[serde(default)]
    pub reseller: bool,
    /// The order it came from (the customers app's own id of a web-store purchase).
    #[serde(default)]
    pub order_id: Option<String>,
}

impl LicenseRecord {
    fn view(&self) -> Value {
        json!({
            "subscription_id": self.subscription_id,
            "account_id": self.account_id,
            "status": self.status,
            "key": if self.status == "issued" { json!(self.key) } else { Value::Null },
            "issued_at": self.issued_at,
            "plan": self.plan,
            "seats": self.seats,
            "communication_profile": self.communication_profile,
            "starts_on": self.starts_on,
            "expires_on": self.expires_on,
            "licensee_email": self.licensee_email,
            "reseller": self.reseller,
            "order_id": self.order_id,
        })
    }

    /// Recomputes the status at `t` (ms, business time); emits an event on a change.
    fn evaluate(&mut self, feed: &mut Feed, t: i64) {
        let status = if !self.terms_accepted {
            "pending_terms"
        } else if self.communication_profile.eq_ignore_ascii_case("Silent") {
            "held"
        } else {
            "issued"
        };
        if status == self.status {
            return;
        }
        self.status = status.to_string();
        match status {
            "issued" => {
                if self.key.is_none() {
                    self.key = Some(new_key());
                    self.issued_at = Some(kit::rfc3339(t));
                }
                feed.push(t, "LicenseIssued", self.view());
            }
            "held" => {
                feed.push(
                    t,
                    "LicenseHeld",
                    json!({ "subscription_id": self.subscription_id, "account_id": self.account_id, "communication_profile": self.communication_profile, "reason": "communication profile is Silent" }),
                );
            }
            _ => {}
        }
    }
}

fn new_key() -> String {
    let hex = kit::random_hex(12).to_uppercase();
    let groups: Vec<&str> = (0..6).map(|i| &hex[i * 4..i * 4 + 4]).collect();
    format!("L2F-{}", groups.join("-"))
}

fn new_epoch() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Everything the license service keeps.
#[derive(Debug, Serialize, Deserialize)]
pub struct Data {
    /// The feed's epoch: made with the data, new after a reset, so a reader can tell a
    /// feed that started again from one that went on.
    #[serde(default = "new_epoch")]
    pub epoch: String,
    /// Licenses by subscription id.
    pub licenses: BTreeMap<String, LicenseRecord>,
    /// Issued / held events.
    pub feed: Feed,
}

impl Default for Data {
    fn default() -> Self {
        Self {
            epoch: new_epoch(),
            licenses: BTreeMap::new(),
            feed: Feed::default(),
        }
    }
}

/// The running license service.
pub type License = OwnApp<Data>;

impl License {
    /// Builds the service, loading saved state from `store` if given (wall clock).
    pub fn new(cfg: Config, store: Option<Arc<Store>>) -> crate::Result<Arc<Self>> {
        Self::with_clock(cfg, store, kit::Clock::wall())
    }

    /// As [`License::new`], reading issue and event times from `clock`.
    pub fn with_clock(
        cfg: Config,
        store: Option<Arc<Store>>,
        clock: Arc<kit::Clock>,
    ) -> crate::Result<Arc<Self>> {
        let app = OwnApp::build("license", cfg.api_token, cfg.faults, store, clock, ())?;
        // Persist the epoch now, so a restart before the first write keeps it.
        app.shared.write(|_| ());
        Ok(app)
    }
}

/// The router: the API above and `/__admin`.
pub fn router(app: Arc<License>) -> Router {
    let routes = Router::new()
        .route("/api/v1/subscriptions/{id}", put(register))
        .route(
            "/api/v1/subscriptions/{id}/terms-accepted",
            post(terms_accepted),
        )
        .route(
            "/api/v1/subscriptions/{id}/communication-profile",
            put(communication_profile),
        )
        .route("/api/v1/licenses", get(list_licenses))
        .route("/api/v1/licenses/{id}", get(get_license))
        .route("/api/v1/events", get(events));
    own::finish(routes, app)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    account_id: String,
    plan: String,
    seats: u32,
    #[serde(default)]
    terms_accepted: bool,
    #[serde(default = "default_profile")]
    communication_profile: String,
    #[serde(default)]
    starts_on: Option<String>,
    #[serde(default)]
    expires_on: Option<String>,
    #[serde(default)]
    licensee_email: Option<String>,
    #[serde(default)]
    reseller: bool,
    #[serde(default)]
    order_id: Option<String>,
}

fn default_profile() -> String {
    "Default".into()
}

async fn register(
    State(app): State<Arc<License>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let r: Register = own::parse(&body)?;
    let t = app.shared.clock().now_ms();
    if r.seats == 0 {
        return Err(ApiError::invalid(
            "seats",
            json!(r.seats),
            "seats must be at least 1",
        ));
    }
    Ok(Json(app.shared.write(|d| {
        let rec = d
            .licenses
            .entry(id.clone())
            .or_insert_with(|| LicenseRecord {
                subscription_id: id.clone(),
                account_id: r.account_id.clone(),
                plan: r.plan.clone(),
                seats: r.seats,
                terms_accepted: false,
                communication_profile: "Default".into(),
                status: String::new(),
                key: None,
                issued_at: None,
                starts_on: None,
                expires_on: None,
                licensee_email: None,
                reseller: false,
                order_id: None,
            });
        rec.account_id = r.account_id;
        rec.plan = r.plan;
        rec.seats = r.seats;
        // Acceptance is never withdrawn by a later update.
        rec.terms_accepted |= r.terms_accepted;
        rec.communication_profile = r.communication_profile;
        rec.starts_on = r.starts_on.or(rec.starts_on.take());
        rec.expires_on = r.expires_on.or(rec.expires_on.take());
        rec.licensee_email = r.licensee_email.or(rec.licensee_email.take());
        rec.reseller |= r.reseller;
        rec.order_id = r.order_id.or(rec.order_id.take());
        rec.evaluate(&mut d.feed, t);
        rec.view()
    })))
}

/// Applies a change to a known license and re-evaluates it.
fn change(
    app: &License,
    id: &str,
    f: impl FnOnce(&mut LicenseRecord),
) -> Result<Json<Value>, ApiError> {
    let t = app.shared.clock().now_ms();
    app.shared.write(|d| {
        let rec = d
            .licenses
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found("subscription", id))?;
        f(rec);
        rec.evaluate(&mut d.feed, t);
        Ok(Json(rec.view()))
    })
}

async fn terms_accepted(
    State(app): State<Arc<License>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    change(&app, &id, |r| r.terms_accepted = true)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    communication_profile: String,
}

async fn communication_profile(
    State(app): State<Arc<License>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let p: Profile = own::parse(&body)?;
    if p.communication_profile.trim().is_empty() {
        return Err(ApiError::invalid(
            "communication_profile",
            json!(p.communication_profile),
            "communication_profile must not be empty",
        ));
    }
    change(&app, &id, |r| {
        r.communication_profile = p.communication_profile
    })
}

async fn get_license(
    State(app): State<Arc<License>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app.shared.read(|d| {
        d.licenses
            .get(&id)
            .map(|r| Json(r.view()))
            .ok_or_else(|| ApiError::not_found("subscription", &id))
    })
}

#[derive(Deserialize)]
struct ByAccount {
    account_id: Option<String>,
}

async fn list_licenses(
    State(app): State<Arc<License>>,
    Query(q): Query<ByAccount>,
) -> Result<Json<Value>, ApiError> {
    let account = q
        .account_id
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("account_id", Value::Null, "account_id is required"))?;
    Ok(Json(app.shared.read(|d| {
        let licenses: Vec<Value> = d
            .licenses
            .values()
            .filter(|r| r.account_id == account)
            .map(LicenseRecord::view)
            .collect();
        json!({ "licenses": licenses })
    })))
}

async fn events(State(app): State<Arc<License>>, Query(p): Query<FeedParams>) -> Json<Value> {
    Json(app.shared.read(|d| {
        let mut page = own::feed_page(&d.feed, &p);
        page["epoch"] = json!(d.epoch);
        page
    }))
}
