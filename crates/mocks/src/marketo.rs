//! Marketo mock: `GET /identity/oauth/token`, `POST /rest/v1/leads.json` (sync leads)
//! and `GET /rest/v1/leads.json` (get leads by filter), as in Adobe's Marketo REST docs:
//! - errors come back as HTTP 200 `{"requestId","success":false,"errors":[{"code","message"}]}`
//!   — 600/601/602 token missing/invalid/expired, 606 past the rate (100 calls per
//!   20 s by default), 607 past the daily quota, 615 past 10 concurrent calls, 609
//!   invalid JSON, 1003 invalid data (e.g. more than 300 records, bad action or lookup
//!   field), 1006 unknown field; only 413/414 are HTTP errors;
//! - `GET /rest/v1/leads.json?filterType=&filterValues=&fields=&batchSize=&nextPageToken=`
//!   and the same query as `POST /rest/v1/leads.json?_method=GET` with a form body (for
//!   queries too long for a URL; a GET URL past 8 KB answers 414), pages of at most
//!   `batchSize` (300) with `nextPageToken` while more follow;
//! - sync answers per record `{"id","status":"created"|"updated"}` or
//!   `{"status":"skipped","reasons":[{"code","message"}]}` (1003 required field
//!   missing, 1004 not found, 1005 already exists, 1007 several matches).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::kit::{self, FaultRule, MockApp, Shared, TokenError, Tokens};
use crate::store::Store;
use crate::Listen;

/// Marketo mock configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where to listen.
    pub listen: Listen,
    /// LaunchPoint client id.
    pub client_id: String,
    /// LaunchPoint client secret.
    pub client_secret: String,
    /// Token lifetime in seconds (Marketo's is 3600).
    pub token_ttl_secs: i64,
    /// Calls allowed per rate window before 606.
    pub rate_limit_calls: usize,
    /// The rate window in seconds.
    pub rate_window_secs: u64,
    /// Concurrent calls allowed before 615.
    pub max_concurrent: usize,
    /// Calls per day before 607.
    pub daily_quota: u64,
    /// Lead fields that must be present (and non-empty) for a record to be accepted.
    pub required_fields: Vec<String>,
    /// Lead fields that exist in the instance (besides id, createdAt, updatedAt).
    pub fields: Vec<String>,
    /// Misbehaviour rules active from the start.
    pub faults: Vec<FaultRule>,
}

impl Default for Config {
    fn default() -> Self {
        let fields = [
            "email",
            "firstName",
            "lastName",
            "company",
            "country",
            "leadSource",
            "title",
            "phone",
            "city",
            "state",
            "postalCode",
            "address",
            "website",
            "industry",
            "numberOfEmployees",
            "leadStatus",
            "sfdcLeadId",
            "externalLeadId",
            "unsubscribed",
            "leadSourceDetail",
            "originalSourceType",
        ];
        let required = [
            "email",
            "firstName",
            "lastName",
            "company",
            "country",
            "leadSource",
        ];
        Self {
            listen: Listen::default(),
            client_id: "l2f-marketo-client".into(),
            client_secret: "l2f-marketo-secret".into(),
            token_ttl_secs: 3599,
            rate_limit_calls: 100,
            rate_window_secs: 20,
            max_concurrent: 10,
            daily_quota: 50_000,
            required_fields: required.iter().map(|s| s.to_string()).collect(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
            faults: Vec::new(),
        }
    }
}

/// Everything the Marketo mock keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Data {
    /// Leads by id.
    pub leads: BTreeMap<u64, Map<String, Value>>,
    /// Issued tokens.
    pub tokens: Tokens,
    /// Last lead id.
    pub seq: u64,
}

/// The running Marketo mock.
pub struct Marketo {
    cfg: Config,
    shared: Shared<Data>,
    calls: Mutex<VecDeque<Instant>>,
    daily: Mutex<(chrono::NaiveDate, u64)>,
    in_flight: AtomicUsize,
}

impl Marketo {
    /// Builds the mock, loading saved state from `store` if given (wall clock).
    pub fn new(cfg: Config, store: Option<Arc<Store>>) -> crate::Result<Arc<Self>> {
        Self::with_clock(cfg, store, kit::Clock::wall())
    }

    /// As [`Marketo::new`], stamping leads' `createdAt`/`updatedAt` from `clock`.
    pub fn with_clock(
        cfg: Config,
        store: Option<Arc<Store>>,
        clock: Arc<kit::Clock>,
    ) -> crate::Result<Arc<Self>> {
        let shared = Shared::with_clock("marketo", store, cfg.faults.clone(), clock)?;
        Ok(Arc::new(Self {
            cfg,
            shared,
            calls: Mutex::new(VecDeque::new()),
            daily: Mutex::new((chrono::Utc::now().date_naive(), 0)),
            in_flight: AtomicUsize::new(0),
        }))
    }
}

impl MockApp for Marketo {
    type Data = Data;
    fn shared(&self) -> &Shared<Data> {
        &self.shared
    }
    fn render(&self, status: StatusCode) -> Response {
        MktError::Status(status).into_response()
    }
    fn tokens(data: &mut Data) -> Option<&mut Tokens> {
        Some(&mut data.tokens)
    }
}

/// The Marketo error: API-level failures as HTTP 200 with `errors[]`.
#[derive(Debug, thiserror::Error)]
pub enum MktError {
    /// An error code and message, e.g. `("606", "Max rate limit ...")`.
    #[error("{1}")]
    Api(&'static str, String),
    /// 413: the body is too large.
    #[error("Request Entity Too Large")]
    TooLarge,
    /// 414: the URL is too long (Marketo's limit is 8 KB; POST with `_method=GET` instead).
    #[error("Request-URI Too Long")]
    UriTooLong,
    /// The identity endpoint's refusal (`{"error","error_description"}`, HTTP 401).
    #[error("Bad client credentials")]
    BadClient,
    /// A status imposed by a fault rule.
    #[error("fault")]
    Status(StatusCode),
}

/// A Marketo `requestId`, e.g. `e42b#14272d07d78`.
fn request_id() -> String {
    format!("{}#{:x}", &kit::random_hex(2), kit::now_ms())
}

/// Marketo's answer to a call that went through: its `result` records.
fn success(result: Vec<Value>) -> Json<Value> {
    Json(json!({
        "requestId": request_id(),
        "success": true,
        "result": result
    }))
}

/// Marketo's answer to a call that failed: one error code and message.
fn failure(code: &str, message: &str) -> Json<Value> {
    Json(json!({
        "requestId": request_id(),
        "success": false,
        "errors": [{ "code": code, "message": message }]
    }))
}

impl IntoResponse for MktError {
    fn into_response(self) -> Response {
        match self {
            MktError::Api(code, message) => failure(code, &message).into_response(),
            MktError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large").into_response(),
            MktError::UriTooLong => (StatusCode::URI_TOO_LONG, "Request-URI Too Long").into_response(),
            MktError::BadClient => (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "unauthorized", "error_description": "Bad client credentials" })),
            )
                .into_response(),
            MktError::Status(s) => (s, failure("604", "Request time-out")).into_response(),
        }
    }
}

/// The router: identity, leads and `/__admin`.
pub fn router(app: Arc<Marketo>) -> Router {
    let rest = Router::new()
        .route("/rest/v1/leads.json", get(get_leads).post(post_leads))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), auth))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            kit::fault_layer::<Marketo>,
        ))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), limits));
    Router::new()
        .route("/identity/oauth/token", get(token).post(token))
        .merge(rest)
        .merge(kit::admin_router::<Marketo>())
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found") })
        .with_state(app)
}

struct InFlight<'a>(&'a AtomicUsize);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// 615 past the concurrency limit, 606 past the rate, 607 past the daily quota.
async fn limits(State(app): State<Arc<Marketo>>, req: Request, next: Next) -> Response {
    let now_in = app.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(&app.in_flight);
    if now_in > app.cfg.max_concurrent {
        return MktError::Api("615", "Concurrent access limit reached".into()).into_response();
    }
    {
        let now = Instant::now();
        let window = Duration::from_secs(app.cfg.rate_window_secs);
        let mut calls = app.calls.lock().unwrap_or_else(|p| p.into_inner());
        while calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            calls.pop_front();
        }
        if calls.len() >= app.cfg.rate_limit_calls {
            return MktError::Api(
                "606",
                format!(
                    "Max rate limit '{}' exceeded with in '{}' secs",
                    app.cfg.rate_limit_calls, app.cfg.rate_window_secs
                ),
            )
            .into_response();
        }
        calls.push_back(now);
    }
    {
        let mut d = app.daily.lock().unwrap_or_else(|p| p.into_inner());
        let today = chrono::Utc::now().date_naive();
        if d.0 != today {
            *d = (today, 0);
        }
        if d.1 >= app.cfg.daily_quota {
            return MktError::Api("607", "Daily quota reached".into()).into_response();
        }
        d.1 += 1;
    }
    next.run(req).await
}

async fn auth(State(app): State<Arc<Marketo>>, req: Request, next: Next) -> Response {
    let mut token = kit::bearer(req.headers()).or_else(|| {
        req.uri().query().and_then(|q| {
            url_pairs(q)
                .into_iter()
                .find(|(k, _)| k == "access_token")
                .map(|(_, v)| v)
        })
    });
    // A `_method=GET` query may carry the token in its form body.
    let mut req = req;
    if token.is_none() && (is_method_get(req.uri().query()) || is_form(req.headers())) {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
            return MktError::TooLarge.into_response();
        };
        token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v);
        req = Request::from_parts(parts, axum::body::Body::from(bytes));
    }
    match app.shared.read(|d| d.tokens.check(token.as_deref())) {
        Ok(()) => next.run(req).await,
        Err(TokenError::Missing) => {
            MktError::Api("600", "Access token not specified".into()).into_response()
        }
        Err(TokenError::Invalid) => {
            MktError::Api("601", "Access token invalid".into()).into_response()
        }
        Err(TokenError::Expired) => {
            MktError::Api("602", "Access token expired".into()).into_response()
        }
    }
}

/// Whether the query string holds `_method=GET` (a query sent as a POST with a form body).
fn is_method_get(q: Option<&str>) -> bool {
    has_method_get(&url_pairs(q.unwrap_or("")))
}

fn has_method_get(pairs: &[(String, String)]) -> bool {
    pairs
        .iter()
        .any(|(k, v)| k == "_method" && v.eq_ignore_ascii_case("GET"))
}

/// Whether the body is `application/x-www-form-urlencoded`.
fn is_form(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default()
}

async fn token(State(app): State<Arc<Marketo>>, req: Request) -> Result<Json<Value>, MktError> {
    let mut pairs = url_pairs(req.uri().query().unwrap_or(""));
    let body = axum::body::to_bytes(req.into_body(), 1 << 16)
        .await
        .unwrap_or_default();
    pairs.extend(serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).unwrap_or_default());
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("grant_type") != Some("client_credentials")
        || get("client_id") != Some(app.cfg.client_id.as_str())
        || get("client_secret") != Some(app.cfg.client_secret.as_str())
    {
        return Err(MktError::BadClient);
    }
    let ttl = app.cfg.token_ttl_secs;
    let token = app.shared.write(|d| d.tokens.issue("", ttl));
    Ok(Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": ttl,
        "scope": "apis@l2f.example"
    })))
}

fn is_field(app: &Marketo, name: &str) -> bool {
    name == "id" || app.cfg.fields.iter().any(|f| f == name)
}

fn lead_matches(lead: &Map<String, Value>, field: &str, value: &Value) -> bool {
    match (lead.get(field), value) {
        (Some(Value::String(a)), Value::String(b)) => {
            if field == "email" {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        }
        (Some(a), b) => a == b,
        _ => false,
    }
}

async fn sync_leads(State(app): State<Arc<Marketo>>, body: Bytes) -> Result<Json<Value>, MktError> {
    if body.len() > 1 << 20 {
        return Err(MktError::TooLarge);
    }
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| MktError::Api("609", format!("Invalid JSON: {e}")))?;
    let action = body
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("createOrUpdate")
        .to_string();
    if ![
        "createOrUpdate",
        "createOnly",
        "updateOnly",
        "createDuplicate",
    ]
    .contains(&action.as_str())
    {
        return Err(MktError::Api("1003", format!("Invalid action '{action}'")));
    }
    let lookup = body
        .get("lookupField")
        .and_then(Value::as_str)
        .unwrap_or("email")
        .to_string();
    if !is_field(&app, &lookup) {
        return Err(MktError::Api(
            "1003",
            format!("Invalid lookup field '{lookup}'"),
        ));
    }
    let input = body
        .get("input")
        .and_then(Value::as_array)
        .ok_or_else(|| MktError::Api("1003", "input is required and must be an array".into()))?;
    if input.is_empty() {
        return Err(MktError::Api("1003", "input must not be empty".into()));
    }
    if input.len() > 300 {
        return Err(MktError::Api(
            "1003",
            format!("Batch size {} exceeds the limit of 300", input.len()),
        ));
    }
    // Unknown fields fail the whole call, as Marketo's 1006 does.
    for rec in input {
        let Some(o) = rec.as_object() else {
            return Err(MktError::Api(
                "1003",
                "each input record must be an object".into(),
            ));
        };
        if let Some(bad) = o.keys().find(|k| !is_field(&app, k)) {
            return Err(MktError::Api("1006", format!("Field '{bad}' not found")));
        }
    }
    let required = app.cfg.required_fields.clone();
    let now = app
        .shared
        .clock()
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let result = app.shared.write(|d| {
        // One pass over the leads per call, not one per record.
        let mut index = lookup_index(d, &lookup);
        input
            .iter()
            .filter_map(Value::as_object)
            .map(|rec| sync_one(d, &mut index, &action, &lookup, &required, rec, &now))
            .collect::<Vec<_>>()
    });
    Ok(success(result))
}

fn skipped(code: &str, message: String) -> Value {
    json!({ "status": "skipped", "reasons": [{ "code": code, "message": message }] })
}

/// How a lookup value is matched: emails without regard to case, other strings as they
/// are, other values by their JSON text.
fn lookup_key(field: &str, v: &Value) -> String {
    match v {
        Value::String(s) if field == "email" => s.to_lowercase(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Lead ids by their lookup field's value.
fn lookup_index(d: &Data, lookup: &str) -> HashMap<String, Vec<u64>> {
    let mut index: HashMap<String, Vec<u64>> = HashMap::new();
    for (id, l) in &d.leads {
        let key = if lookup == "id" {
            Some(id.to_string())
        } else {
            l.get(lookup)
                .filter(|v| !v.is_null())
                .map(|v| lookup_key(lookup, v))
        };
        if let Some(k) = key {
            index.entry(k).or_default().push(*id);
        }
    }
    index
}

fn sync_one(
    d: &mut Data,
    index: &mut HashMap<String, Vec<u64>>,
    action: &str,
    lookup: &str,
    required: &[String],
    rec: &Map<String, Value>,
    now: &str,
) -> Value {
    let matches: Vec<u64> = match rec.get(lookup) {
        Some(v) if !v.is_null() && action != "createDuplicate" => {
            let key = if lookup == "id" {
                v.as_u64().map(|n| n.to_string())
            } else {
                Some(lookup_key(lookup, v))
            };
            key.and_then(|k| index.get(&k).cloned()).unwrap_or_default()
        }
        Some(_) => Vec::new(),
        None if action == "createOnly" || action == "createDuplicate" => Vec::new(),
        None => {
            return skipped(
                "1003",
                format!("Value for lookup field '{lookup}' not specified"),
            )
        }
    };
    match (matches.as_slice(), action) {
        ([], "updateOnly") => skipped("1004", "Lead not found".into()),
        ([], _) => {
            if let Some(missing) = required
                .iter()
                .find(|f| rec.get(*f).is_none_or(|v| v.is_null() || v == ""))
            {
                return skipped(
                    "1003",
                    format!("Value for required field '{missing}' not specified"),
                );
            }
            d.seq += 1;
            let id = d.seq;
            let mut lead = rec.clone();
            lead.insert("id".into(), json!(id));
            lead.insert("createdAt".into(), json!(now));
            lead.insert("updatedAt".into(), json!(now));
            let key = if lookup == "id" {
                Some(id.to_string())
            } else {
                lead.get(lookup)
                    .filter(|v| !v.is_null())
                    .map(|v| lookup_key(lookup, v))
            };
            if let Some(k) = key {
                index.entry(k).or_default().push(id);
            }
            d.leads.insert(id, lead);
            json!({ "id": id, "status": "created" })
        }
        ([_], "createOnly") => skipped("1005", "Lead already exists".into()),
        ([id], _) => {
            let id = *id;
            if let Some(lead) = d.leads.get_mut(&id) {
                for (k, v) in rec {
                    if k != "id" {
                        lead.insert(k.clone(), v.clone());
                    }
                }
                lead.insert("updatedAt".into(), json!(now));
            }
            json!({ "id": id, "status": "updated" })
        }
        (_, _) => skipped("1007", "Multiple lead match lookup criteria".into()),
    }
}

/// The URL length past which Marketo answers 414.
const MAX_URL: usize = 8 * 1024;

/// `POST /rest/v1/leads.json`: a sync, or, with `_method=GET` in the query string or in
/// the form body (marketorestpython sends it in the body), a query whose parameters are
/// in the form body ("Leads" → Query:
/// https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/leads).
async fn post_leads(
    State(app): State<Arc<Marketo>>,
    RawQuery(raw): RawQuery,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, MktError> {
    if body.len() > 1 << 20 {
        return Err(MktError::TooLarge);
    }
    let form: Vec<(String, String)> = if is_form(&headers) || is_method_get(raw.as_deref()) {
        serde_urlencoded::from_bytes(&body).unwrap_or_default()
    } else {
        Vec::new()
    };
    if !is_method_get(raw.as_deref()) && !has_method_get(&form) {
        return sync_leads(State(app), body).await;
    }
    let mut pairs = url_pairs(raw.as_deref().unwrap_or(""));
    pairs.extend(form);
    query_leads(&app, &pairs)
}

async fn get_leads(
    State(app): State<Arc<Marketo>>,
    uri: axum::http::Uri,
) -> Result<Json<Value>, MktError> {
    if uri.to_string().len() > MAX_URL {
        return Err(MktError::UriTooLong);
    }
    query_leads(&app, &url_pairs(uri.query().unwrap_or("")))
}

/// An opaque page token for the offset `n`.
fn page_token(n: usize) -> String {
    format!("L2F{n:012X}")
}

fn page_offset(token: &str) -> Option<usize> {
    usize::from_str_radix(token.strip_prefix("L2F")?, 16).ok()
}

/// "Get Leads by Filter Type": `filterType`, `filterValues` (≤ 300), `fields`,
/// `batchSize` (≤ 300), `nextPageToken`.
fn query_leads(app: &Marketo, pairs: &[(String, String)]) -> Result<Json<Value>, MktError> {
    let param = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let ft = param("filterType")
        .ok_or_else(|| MktError::Api("1003", "filterType is required".into()))?;
    if !is_field(app, &ft) {
        return Err(MktError::Api("1003", format!("Invalid filterType '{ft}'")));
    }
    let values: Vec<String> = param("filterValues")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if values.is_empty() || values.len() > 300 {
        return Err(MktError::Api(
            "1003",
            "filterValues must hold 1 to 300 values".into(),
        ));
    }
    let batch = match param("batchSize") {
        None => 300,
        Some(b) => match b.parse::<usize>() {
            Ok(n) if (1..=300).contains(&n) => n,
            _ => {
                return Err(MktError::Api(
                    "1003",
                    format!("Invalid batchSize '{b}'; it must be 1 to 300"),
                ))
            }
        },
    };
    let offset = match param("nextPageToken") {
        None => 0,
        Some(t) => page_offset(&t)
            .ok_or_else(|| MktError::Api("1003", format!("Invalid nextPageToken '{t}'")))?,
    };
    let fields: Vec<String> = match param("fields") {
        Some(f) => f.split(',').map(|s| s.trim().to_string()).collect(),
        None => [
            "id",
            "firstName",
            "lastName",
            "email",
            "updatedAt",
            "createdAt",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    };
    let system = ["id", "createdAt", "updatedAt"];
    if let Some(bad) = fields
        .iter()
        .find(|f| !system.contains(&f.as_str()) && !is_field(app, f))
    {
        return Err(MktError::Api("1006", format!("Field '{bad}' not found")));
    }
    let matching: Vec<Value> = app.shared.read(|d| {
        d.leads
            .iter()
            .filter(|(id, l)| {
                values.iter().any(|v| {
                    if ft == "id" {
                        v.parse::<u64>().ok() == Some(**id)
                    } else {
                        lead_matches(l, &ft, &json!(v))
                    }
                })
            })
            .map(|(_, l)| {
                let mut o = Map::new();
                for f in &fields {
                    o.insert(f.clone(), l.get(f).cloned().unwrap_or(Value::Null));
                }
                Value::Object(o)
            })
            .collect()
    });
    let page: Vec<Value> = matching.iter().skip(offset).take(batch).cloned().collect();
    let mut out = success(page);
    if offset.saturating_add(batch) < matching.len() {
        out.0["nextPageToken"] = json!(page_token(offset + batch));
    }
    Ok(out)
}
