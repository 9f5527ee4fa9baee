//! Salesforce mock: OAuth 2.0 token endpoint and the REST API's sObject resources.
//!
//! Speaks the shapes of the Salesforce REST API developer guide:
//! - `POST /services/oauth2/token` (grants `password` and `client_credentials`);
//! - `POST /services/data/vNN.0/sobjects/{type}` → 201 `{"id","errors":[],"success":true}`;
//!   `GET`/`PATCH` (204)/`DELETE` (204) by id, for Lead, Account, Contact, Opportunity and
//!   the custom objects of the configuration (`Zuora__Subscription__c`, ...); every type
//!   takes any `*__c` field, as if the org had defined it;
//! - `PATCH /sobjects/{type}/{field}/{value}` upsert, only by `Id` or a field declared
//!   External ID (400 `INVALID_FIELD` for another field, 404 for none) → 201 created,
//!   200 with `created:false` (API 46.0+, 204 before) updated, 300 with the matching URLs;
//! - `GET /query?q=` for the SOQL subset of [`crate::soql`], parent fields rendered nested,
//!   paged by `query_batch_size` or `Sforce-Query-Options: batchSize=N` with
//!   `nextRecordsUrl` and `GET /query/{locator}-{offset}` ([`query`]);
//! - sObject Collections `/composite/sobjects` create, update, upsert, retrieve, delete,
//!   ≤ 200 records, `allOrNone` ([`collections`]);
//! - `GET /sobjects/{type}/updated/?start=&end=` (ids changed in a window, by SystemModstamp);
//! - errors as `[{"message","errorCode","fields"}]`, 401 `INVALID_SESSION_ID`,
//!   `Sforce-Limit-Info: api-usage=N/M` on every data response, 403
//!   `REQUEST_LIMIT_EXCEEDED` once the daily cap is spent (a collections call counts once).
//!
//! Closed-won opportunities are found by polling: `SELECT Id, AccountId, Amount FROM
//! Opportunity WHERE IsWon = true AND SystemModstamp > <last seen>`; SystemModstamp
//! strictly increases from one write to the next, so `(SystemModstamp, Id)` is an exact
//! cursor.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::kit::{self, FaultRule, MockApp, Shared, Tokens};
use crate::store::Store;
use crate::Listen;

mod collections;
mod query;

/// Salesforce mock configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where to listen.
    pub listen: Listen,
    /// Connected app consumer key.
    pub client_id: String,
    /// Connected app consumer secret.
    pub client_secret: String,
    /// The integration user's login.
    pub username: String,
    /// The integration user's password (a security token may be appended to it).
    pub password: String,
    /// API requests allowed per day (UTC) before REQUEST_LIMIT_EXCEEDED.
    pub daily_api_cap: u64,
    /// Lifetime of an access token, in seconds.
    pub token_ttl_secs: i64,
    /// Custom objects the org defines (`Zuora__Subscription__c`), with their Id prefix.
    pub custom_objects: BTreeMap<String, CustomObject>,
    /// The fields declared External ID, per sObject type: the only fields (besides `Id`)
    /// that upserts may match on.
    pub external_ids: BTreeMap<String, Vec<String>>,
    /// Records per query batch before `done:false` and `nextRecordsUrl`.
    pub query_batch_size: usize,
    /// Seconds a query locator stays usable after its last use.
    pub query_locator_ttl_secs: u64,
    /// Misbehaviour rules active from the start.
    pub faults: Vec<FaultRule>,
}

/// A custom object of the org.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomObject {
    /// The 3-character key prefix of its record Ids (`a0A`).
    pub prefix: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: Listen::default(),
            client_id: "l2f-client-id".into(),
            client_secret: "l2f-client-secret".into(),
            username: "integration@l2f.example".into(),
            password: "l2f-password".into(),
            daily_api_cap: 100_000,
            token_ttl_secs: 7200,
            custom_objects: [
                ("Zuora__CustomerAccount__c", "a0A"),
                ("Zuora__Subscription__c", "a0B"),
                ("L2f_True_Up__c", "a0C"),
            ]
            .into_iter()
            .map(|(n, p)| {
                (
                    n.to_string(),
                    CustomObject {
                        prefix: p.to_string(),
                    },
                )
            })
            .collect(),
            external_ids: [
                ("Lead", "L2f_Lead_Id__c"),
                ("Account", "L2f_Account_Id__c"),
                ("Zuora__CustomerAccount__c", "Zuora__External_Id__c"),
                ("Zuora__Subscription__c", "Zuora__External_Id__c"),
                ("L2f_True_Up__c", "L2f_True_Up_Id__c"),
            ]
            .into_iter()
            .map(|(t, f)| (t.to_string(), vec![f.to_string()]))
            .collect(),
            query_batch_size: 2000,
            query_locator_ttl_secs: 900,
            faults: Vec::new(),
        }
    }
}

/// A stored sObject record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The sObject type, e.g. `Account`.
    pub sobject: String,
    /// All fields, including Id and the system dates.
    pub fields: Map<String, Value>,
}

/// Everything the Salesforce mock keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Data {
    /// Records by Id.
    pub records: BTreeMap<String, Record>,
    /// Issued access tokens.
    pub tokens: Tokens,
    /// Last record number handed out.
    pub seq: u64,
    /// The last SystemModstamp given (ms since the epoch): each write gets a later one.
    #[serde(default)]
    pub last_modstamp_ms: i64,
    /// Business time of the write under way (set by [`Salesforce::write`]).
    #[serde(skip)]
    now_ms: i64,
    /// Ids by External ID value, per (sObject type, field): built on a collections upsert's
    /// first use of the pair and kept up by every insert and update, so an upsert finds its
    /// records without walking the type's. Entries are checked on use, so a record since
    /// changed or deleted is never matched by a stale one.
    #[serde(skip)]
    external_ids: HashMap<(String, String), HashMap<String, Vec<String>>>,
}

/// A field's value as an External ID matches it: text as is, a number in its JSON form.
fn external_text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether a field's value matches `value` as an External ID (see [`external_text`]).
fn holds(v: Option<&Value>, value: &str) -> bool {
    match v {
        Some(Value::String(s)) => s == value,
        Some(Value::Number(n)) => n.to_string() == value,
        _ => false,
    }
}

impl Data {
    /// The Ids of the records of type `t` whose `field` holds `value` (as `matching_ids`
    /// finds them), in Id order, from the kept index.
    pub(crate) fn external_ids(
        &mut self,
        t: &SObjectType,
        field: &str,
        value: &str,
    ) -> Vec<String> {
        let key = (t.name.to_string(), field.to_string());
        if !self.external_ids.contains_key(&key) {
            let mut index: HashMap<String, Vec<String>> = HashMap::new();
            for r in records_of(self, t) {
                let id = r.fields.get("Id").and_then(Value::as_str);
                if let (Some(v), Some(id)) = (external_text(r.fields.get(field)), id) {
                    index.entry(v).or_default().push(id.to_string());
                }
            }
            self.external_ids.insert(key.clone(), index);
        }
        let mut ids: Vec<String> = self.external_ids[&key]
            .get(value)
            .into_iter()
            .flatten()
            .filter(|id| {
                self.records
                    .get(id.as_str())
                    .is_some_and(|r| r.sobject == t.name && holds(r.fields.get(field), value))
            })
            .cloned()
            .collect();
        // Each Id is in a value's list once (`index_record`); an update can append an older one.
        ids.sort();
        ids
    }

    /// Adds record `id`'s current values to every kept index of its type.
    fn index_record(&mut self, t: &SObjectType, id: &str) {
        let Some(rec) = self.records.get(id) else {
            return;
        };
        for ((sobject, field), index) in self.external_ids.iter_mut() {
            if *sobject != t.name {
                continue;
            }
            if let Some(v) = external_text(rec.fields.get(field)) {
                let ids = index.entry(v).or_default();
                if !ids.iter().any(|i| i == id) {
                    ids.push(id.to_string());
                }
            }
        }
    }

    /// A SystemModstamp strictly later than the last one, so a poller's
    /// (SystemModstamp, Id) cursor never sees two writes at one instant out of order.
    fn stamp(&mut self) -> String {
        let now = self.now_ms.max(self.last_modstamp_ms + 1);
        self.last_modstamp_ms = now;
        sf_datetime(chrono::DateTime::from_timestamp_millis(now).unwrap_or_default())
    }
}

/// The running Salesforce mock.
pub struct Salesforce {
    cfg: Config,
    shared: Shared<Data>,
    /// (UTC day, requests counted that day)
    usage: Mutex<(chrono::NaiveDate, u64)>,
    /// The standard and custom sObject types of the org.
    types: Vec<SObjectType>,
    /// Open query cursors (snapshots of results being paged through).
    pub(crate) cursors: query::Cursors,
}

impl Salesforce {
    /// Builds the mock, loading saved state from `store` if given (wall clock).
    pub fn new(cfg: Config, store: Option<Arc<Store>>) -> crate::Result<Arc<Self>> {
        Self::with_clock(cfg, store, kit::Clock::wall())
    }

    /// Changes the data at the clock's now: records written get their CreatedDate,
    /// LastModifiedDate and SystemModstamp from it.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut Data) -> R) -> R {
        let now = self.shared.clock().now_ms();
        self.shared.write(|d| {
            d.now_ms = now;
            f(d)
        })
    }

    /// As [`Salesforce::new`], stamping records from `clock`.
    pub fn with_clock(
        cfg: Config,
        store: Option<Arc<Store>>,
        clock: Arc<kit::Clock>,
    ) -> crate::Result<Arc<Self>> {
        let shared = Shared::with_clock("salesforce", store, cfg.faults.clone(), clock)?;
        let mut types: Vec<SObjectType> = STANDARD
            .iter()
            .map(|(name, prefix, fields, required)| SObjectType {
                name: name.to_string(),
                prefix: prefix.to_string(),
                fields,
                required,
                external_ids: Vec::new(),
            })
            .collect();
        for (name, o) in &cfg.custom_objects {
            let ok = name.ends_with("__c")
                && name.len() > 3
                && o.prefix.len() == 3
                && o.prefix.chars().all(|c| c.is_ascii_alphanumeric());
            if !ok || types.iter().any(|t| t.name.eq_ignore_ascii_case(name)) {
                return Err(crate::Error::Config(format!(
                    "salesforce: custom object {name:?} needs a name ending in __c and a 3-character prefix"
                )));
            }
            types.push(SObjectType {
                name: name.clone(),
                prefix: o.prefix.clone(),
                fields: CUSTOM_OBJECT_FIELDS,
                required: &[],
                external_ids: Vec::new(),
            });
        }
        for (name, fields) in &cfg.external_ids {
            let t = types
                .iter_mut()
                .find(|t| t.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    crate::Error::Config(format!(
                        "salesforce: external_ids names an unknown sObject type {name:?}"
                    ))
                })?;
            t.external_ids = fields.clone();
        }
        Ok(Arc::new(Self {
            cfg,
            shared,
            usage: Mutex::new((chrono::Utc::now().date_naive(), 0)),
            types,
            cursors: query::Cursors::default(),
        }))
    }

    /// The sObject type of that name (any case), or 404 as Salesforce answers.
    fn sobject_type(&self, name: &str) -> Result<&SObjectType, SfError> {
        self.types
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| SfError::InvalidType(name.to_string()))
    }

    /// API requests counted today.
    pub fn api_usage(&self) -> u64 {
        self.usage.lock().unwrap_or_else(|p| p.into_inner()).1
    }

    /// Counts one API request; `None` once the cap is spent.
    fn count_request(&self) -> (bool, u64) {
        let mut u = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let today = chrono::Utc::now().date_naive();
        if u.0 != today {
            *u = (today, 0);
        }
        if u.1 >= self.cfg.daily_api_cap {
            return (false, u.1);
        }
        u.1 += 1;
        (true, u.1)
    }
}

impl MockApp for Salesforce {
    type Data = Data;
    fn shared(&self) -> &Shared<Data> {
        &self.shared
    }
    fn render(&self, status: StatusCode) -> Response {
        SfError::Status(status).into_response()
    }
    fn tokens(data: &mut Data) -> Option<&mut Tokens> {
        Some(&mut data.tokens)
    }
    fn state(&self) -> Value {
        let mut v = self.shared.snapshot();
        if let Some(o) = v.as_object_mut() {
            o.remove("tokens");
            o.insert("api_usage".into(), json!(self.api_usage()));
        }
        v
    }
}

/// The Salesforce REST error: one variant per error the mock can give, each rendered
/// as the documented `[{"message","errorCode","fields"}]` array.
#[derive(Debug, thiserror::Error)]
pub enum SfError {
    /// 401: missing, unknown or expired bearer token.
    #[error("Session expired or invalid")]
    InvalidSession,
    /// 403: the daily API allocation is spent.
    #[error("TotalRequests Limit exceeded.")]
    LimitExceeded,
    /// 404: no such record or resource.
    #[error("The requested resource does not exist")]
    NotFound,
    /// 404: unknown sObject type.
    #[error("The requested resource does not exist")]
    InvalidType(String),
    /// 400: a field that does not exist or may not be set.
    #[error("{message}")]
    InvalidField {
        /// Human text as Salesforce words it.
        message: String,
        /// The offending fields.
        fields: Vec<String>,
    },
    /// 400: required fields absent on create.
    #[error("Required fields are missing: [{}]", .0.join(", "))]
    RequiredMissing(Vec<String>),
    /// 400: the body is not JSON (or not an object).
    #[error("{0}")]
    JsonParser(String),
    /// 400: a SOQL statement the mock cannot read.
    #[error("{0}")]
    MalformedQuery(String),
    /// 300: an external id matched several records.
    #[error("multiple records match")]
    MultipleChoices(Vec<String>),
    /// 404: the field named in an upsert or external-id URL does not exist.
    #[error("Provided external ID field does not exist or is not accessible: {0}")]
    NoSuchExternalId(String),
    /// 400: a query locator that never existed or has expired.
    #[error("invalid query locator")]
    InvalidQueryLocator,
    /// 400: more records in one sObject Collections call than it takes.
    #[error("record limit reached. cannot submit more than {0} records into this call")]
    ExceededIdLimit(usize),
    /// A status imposed by a fault rule.
    #[error("fault")]
    Status(StatusCode),
}

impl IntoResponse for SfError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code, fields): (StatusCode, &str, Vec<String>) = match self {
            SfError::InvalidSession => (StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID", vec![]),
            SfError::LimitExceeded => (StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", vec![]),
            SfError::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND", vec![]),
            SfError::InvalidType(t) => {
                let body = json!([{
                    "message": format!("sObject type '{t}' is not supported."),
                    "errorCode": "NOT_FOUND"
                }]);
                return (StatusCode::NOT_FOUND, Json(body)).into_response();
            }
            SfError::InvalidField { fields, .. } => {
                (StatusCode::BAD_REQUEST, "INVALID_FIELD", fields)
            }
            SfError::RequiredMissing(fields) => {
                (StatusCode::BAD_REQUEST, "REQUIRED_FIELD_MISSING", fields)
            }
            SfError::JsonParser(_) => (StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", vec![]),
            SfError::NoSuchExternalId(_) => (StatusCode::NOT_FOUND, "NOT_FOUND", vec![]),
            SfError::InvalidQueryLocator => {
                (StatusCode::BAD_REQUEST, "INVALID_QUERY_LOCATOR", vec![])
            }
            SfError::ExceededIdLimit(_) => (StatusCode::BAD_REQUEST, "EXCEEDED_ID_LIMIT", vec![]),
            SfError::MalformedQuery(_) => (StatusCode::BAD_REQUEST, "MALFORMED_QUERY", vec![]),
            SfError::MultipleChoices(urls) => {
                return (StatusCode::MULTIPLE_CHOICES, Json(json!(urls))).into_response();
            }
            SfError::Status(s) => {
                let (code, msg) = match s.as_u16() {
                    429 | 403 => (
                        "REQUEST_LIMIT_EXCEEDED",
                        "ConcurrentRequests Limit exceeded.",
                    ),
                    503 => ("SERVER_UNAVAILABLE", "Server is temporarily unavailable."),
                    _ => ("UNKNOWN_EXCEPTION", "An unexpected error occurred."),
                };
                let body = json!([{ "message": msg, "errorCode": code }]);
                return (s, Json(body)).into_response();
            }
        };
        let mut item = json!({ "message": message, "errorCode": code });
        if !fields.is_empty() {
            item["fields"] = json!(fields);
        }
        (status, Json(json!([item]))).into_response()
    }
}

/// The OAuth 2.0 token endpoint's error shape (`{"error","error_description"}`).
#[derive(Debug, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    error: &'static str,
    description: &'static str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response()
    }
}

/// sObject metadata: Id prefix, settable fields, required fields on create, the fields
/// declared External ID.
#[derive(Debug, Clone)]
pub(crate) struct SObjectType {
    pub(crate) name: String,
    prefix: String,
    fields: &'static [&'static str],
    required: &'static [&'static str],
    external_ids: Vec<String>,
}

const SYSTEM_FIELDS: &[&str] = &[
    "Id",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
];

/// The standard fields of every custom object (besides its `*__c` fields).
const CUSTOM_OBJECT_FIELDS: &[&str] = &["Name", "OwnerId"];

/// The standard objects the mock knows: name, Id prefix, settable fields, required fields.
#[allow(clippy::type_complexity)]
const STANDARD: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "Account",
        "001",
        &[
            "Name",
            "AccountNumber",
            "Type",
            "Industry",
            "Website",
            "Phone",
            "Description",
            "NumberOfEmployees",
            "AnnualRevenue",
            "BillingStreet",
            "BillingCity",
            "BillingState",
            "BillingPostalCode",
            "BillingCountry",
            "BillingCountryCode",
            "ShippingCountry",
            "ShippingCountryCode",
            "OwnerId",
            "ParentId",
        ],
        &["Name"],
    ),
    (
        "Contact",
        "003",
        &[
            "FirstName",
            "LastName",
            "Email",
            "Phone",
            "Title",
            "AccountId",
            "LeadSource",
            "MailingStreet",
            "MailingCity",
            "MailingState",
            "MailingPostalCode",
            "MailingCountry",
            "MailingCountryCode",
            "Description",
            "OwnerId",
        ],
        &["LastName"],
    ),
    (
        "Lead",
        "00Q",
        &[
            "FirstName",
            "LastName",
            "Company",
            "Email",
            "Phone",
            "Title",
            "LeadSource",
            "Status",
            "Industry",
            "Website",
            "Street",
            "City",
            "State",
            "PostalCode",
            "Country",
            "CountryCode",
            "Description",
            "OwnerId",
            "IsConverted",
        ],
        &["LastName", "Company"],
    ),
    (
        "Opportunity",
        "006",
        &[
            "Name",
            "AccountId",
            "StageName",
            "CloseDate",
            "Amount",
            "Type",
            "LeadSource",
            "Probability",
            "Description",
            "NextStep",
            "OwnerId",
            "CurrencyIsoCode",
        ],
        &["Name", "StageName", "CloseDate"],
    ),
];

/// Fields computed by the mock (read-only through the API).
const DERIVED_FIELDS: &[&str] = &["IsWon", "IsClosed"];

impl SObjectType {
    /// The canonical spelling of a field, if the type has it; custom fields (`__c`)
    /// always exist, as if the org had defined them.
    pub(crate) fn field(&self, name: &str) -> Option<String> {
        if name.ends_with("__c") && name.len() > 3 {
            return Some(name.to_string());
        }
        SYSTEM_FIELDS
            .iter()
            .chain(self.fields)
            .chain(DERIVED_FIELDS)
            .find(|f| f.eq_ignore_ascii_case(name))
            .map(|f| f.to_string())
    }

    /// The declared External ID field of that name (any case), canonically spelled.
    fn external_id(&self, name: &str) -> Option<String> {
        self.external_ids
            .iter()
            .find(|f| f.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// The field an upsert may match on: `Id` or a declared External ID field; 400
    /// `INVALID_FIELD` for another field of the type, 404 for no such field.
    fn upsert_key(&self, name: &str) -> Result<String, SfError> {
        if name.eq_ignore_ascii_case("Id") {
            return Ok("Id".into());
        }
        if let Some(f) = self.external_id(name) {
            return Ok(f);
        }
        match self.field(name) {
            Some(f) => Err(SfError::InvalidField {
                message: format!(
                    "Field {f} is not an External ID or indexed field for {}",
                    self.name
                ),
                fields: vec![f],
            }),
            None => Err(SfError::NoSuchExternalId(name.to_string())),
        }
    }

    fn writable(&self, name: &str) -> Option<String> {
        if name.ends_with("__c") && name.len() > 3 {
            return Some(name.to_string());
        }
        self.fields
            .iter()
            .find(|f| f.eq_ignore_ascii_case(name))
            .map(|f| f.to_string())
    }

    /// Checks a request body's fields, returning them under canonical names.
    fn check_body(&self, body: Map<String, Value>) -> Result<Map<String, Value>, SfError> {
        let mut out = Map::new();
        for (k, v) in body {
            if k == "attributes" {
                continue;
            }
            if k.eq_ignore_ascii_case("Id") {
                return Err(SfError::InvalidField {
                    message: "The Id field should not be specified in the sobject data.".into(),
                    fields: vec![],
                });
            }
            match self.writable(&k) {
                Some(name) => {
                    out.insert(name, v);
                }
                None => {
                    let message = if self.field(&k).is_some() {
                        format!("Unable to create/update fields: {k}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.")
                    } else {
                        format!("No such column '{k}' on sobject of type {}", self.name)
                    };
                    return Err(SfError::InvalidField {
                        message,
                        fields: vec![k],
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Salesforce's datetime format, e.g. `2024-05-01T12:34:56.000+0000`.
pub fn sf_datetime(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

fn parse_datetime(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// The router: OAuth, the data API and `/__admin`.
pub fn router(app: Arc<Salesforce>) -> Router {
    let data = Router::new()
        .route("/services/data/{version}/sobjects/{sobject}", post(create))
        .route("/services/data/{version}/sobjects/{sobject}/", post(create))
        .route(
            "/services/data/{version}/sobjects/{sobject}/updated",
            get(updated),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/updated/",
            get(updated),
        )
        .route("/services/data/{version}/sobjects", get(describe_global))
        .route("/services/data/{version}/sobjects/", get(describe_global))
        .route(
            "/services/data/{version}/sobjects/{sobject}/describe",
            get(describe),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/describe/",
            get(describe),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{id}",
            get(fetch).patch(update).delete(remove),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{field}/{value}",
            get(fetch_by_external).patch(upsert),
        )
        .route("/services/data/{version}/query", get(query::query))
        .route("/services/data/{version}/query/", get(query::query))
        .route("/services/data/{version}/query/{locator}", get(query::more))
        .route(
            "/services/data/{version}/composite/sobjects",
            post(collections::create)
                .patch(collections::update)
                .delete(collections::delete),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{sobject}",
            get(collections::retrieve).post(collections::retrieve_by_body),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{sobject}/{field}",
            axum::routing::patch(collections::upsert),
        )
        .route("/services/data/{version}/limits", get(limits))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), data_api));
    let routes = Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions))
        .merge(data)
        .fallback(|| async { SfError::NotFound });
    kit::finish(routes, app)
}

/// Authentication, API usage counting and the `Sforce-Limit-Info` header.
async fn data_api(State(app): State<Arc<Salesforce>>, req: Request, next: Next) -> Response {
    let token = kit::bearer(req.headers());
    let authorised = app
        .shared
        .read(|d| d.tokens.check(token.as_deref()).is_ok());
    let (mut resp, used) = if !authorised {
        (SfError::InvalidSession.into_response(), app.api_usage())
    } else {
        match app.count_request() {
            (false, used) => (SfError::LimitExceeded.into_response(), used),
            (true, used) => {
                let version_ok = version_number(req.uri().path()).is_some();
                if version_ok {
                    (next.run(req).await, used)
                } else {
                    (SfError::NotFound.into_response(), used)
                }
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={used}/{}", app.cfg.daily_api_cap)) {
        resp.headers_mut().insert("Sforce-Limit-Info", v);
    }
    resp
}

/// `vNN.0` in `/services/data/vNN.0/...` as a number.
fn version_number(path: &str) -> Option<u32> {
    let v = path.strip_prefix("/services/data/v")?;
    let v = v.split('/').next()?;
    let (major, minor) = v.split_once('.')?;
    (minor == "0").then_some(())?;
    major.parse().ok().filter(|m| (20..=99).contains(m))
}

async fn versions() -> Json<Value> {
    Json(json!([
        { "label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0" },
        { "label": "Summer '24", "url": "/services/data/v61.0", "version": "61.0" },
        { "label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0" }
    ]))
}

impl SObjectType {
    fn urls(&self, version: &str) -> Value {
        let base = format!("/services/data/{version}/sobjects/{}", self.name);
        json!({
            "sobject": base,
            "describe": format!("{base}/describe"),
            "rowTemplate": format!("{base}/{{ID}}"),
        })
    }

    fn is_custom(&self) -> bool {
        self.name.ends_with("__c")
    }
}

/// The type of a field as describe tells it, from its name.
fn field_type(name: &str) -> &'static str {
    match name {
        "Id" => "id",
        "CreatedDate" | "LastModifiedDate" | "SystemModstamp" => "datetime",
        "IsDeleted" | "IsWon" | "IsClosed" | "IsConverted" => "boolean",
        "CloseDate" => "date",
        "Amount" | "AnnualRevenue" => "currency",
        "Probability" => "percent",
        "NumberOfEmployees" => "int",
        "Email" => "email",
        "Phone" => "phone",
        "Website" => "url",
        n if n.ends_with("Id") => "reference",
        _ => "string",
    }
}

/// `GET /sobjects`: the org's objects (Describe Global):
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_describeGlobal.htm
async fn describe_global(
    State(app): State<Arc<Salesforce>>,
    Path(version): Path<String>,
) -> Json<Value> {
    let sobjects: Vec<Value> = app
        .types
        .iter()
        .map(|t| {
            json!({
                "name": t.name, "label": t.name, "keyPrefix": t.prefix, "custom": t.is_custom(),
                "createable": true, "updateable": true, "deletable": true, "queryable": true,
                "urls": t.urls(&version),
            })
        })
        .collect();
    Json(json!({ "encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects }))
}

/// `GET /sobjects/{type}/describe`: its fields, with `externalId` and `idLookup` for the
/// fields upserts may match on (sObject Describe):
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm
async fn describe(
    State(app): State<Arc<Salesforce>>,
    Path((version, sobject)): Path<(String, String)>,
) -> Result<Json<Value>, SfError> {
    let t = app.sobject_type(&sobject)?;
    let writable = |n: &str| t.fields.contains(&n);
    let mut names: Vec<String> = SYSTEM_FIELDS
        .iter()
        .chain(t.fields)
        .map(|s| s.to_string())
        .collect();
    if t.name == "Opportunity" {
        names.extend(DERIVED_FIELDS.iter().map(|s| s.to_string()));
    }
    names.extend(t.external_ids.iter().cloned());
    let fields: Vec<Value> = names
        .iter()
        .map(|n| {
            let ext = t.external_id(n).is_some();
            let custom = n.ends_with("__c");
            json!({
                "name": n, "label": n, "type": if custom { "string" } else { field_type(n) },
                "custom": custom, "externalId": ext, "idLookup": ext || n == "Id",
                "unique": ext, "nillable": !t.required.contains(&n.as_str()) && n != "Id",
                "createable": custom || writable(n), "updateable": custom || writable(n),
                "filterable": true, "sortable": true,
            })
        })
        .collect();
    Ok(Json(json!({
        "name": t.name, "label": t.name, "keyPrefix": t.prefix, "custom": t.is_custom(),
        "createable": true, "updateable": true, "deletable": true, "queryable": true,
        "fields": fields, "urls": t.urls(&version),
    })))
}

async fn limits(State(app): State<Arc<Salesforce>>) -> Json<Value> {
    let max = app.cfg.daily_api_cap;
    let used = app.api_usage();
    Json(json!({ "DailyApiRequests": { "Max": max, "Remaining": max.saturating_sub(used) } }))
}

fn base_url(req: &Request) -> String {
    let scheme = req
        .extensions()
        .get::<kit::Scheme>()
        .map_or("http", |s| s.0);
    // HTTP/2 carries the authority in the URI, HTTP/1.1 in the Host header.
    let host = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            req.headers()
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "127.0.0.1".into());
    format!("{scheme}://{host}")
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

async fn token(State(app): State<Arc<Salesforce>>, req: Request) -> Result<Response, OAuthError> {
    let base = base_url(&req);
    let query = req.uri().query().unwrap_or("").to_string();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    // The token endpoint takes form fields in the body (or, for old clients, the query).
    let raw = if body.is_empty() {
        query.into_bytes()
    } else {
        body.to_vec()
    };
    let form: TokenForm = serde_urlencoded::from_bytes(&raw).map_err(|_| OAuthError {
        error: "invalid_request",
        description: "invalid request body",
    })?;
    let cfg = &app.cfg;
    if form.client_id.as_deref() != Some(cfg.client_id.as_str()) {
        return Err(OAuthError {
            error: "invalid_client_id",
            description: "client identifier invalid",
        });
    }
    if form.client_secret.as_deref() != Some(cfg.client_secret.as_str()) {
        return Err(OAuthError {
            error: "invalid_client",
            description: "invalid client credentials",
        });
    }
    match form.grant_type.as_deref() {
        Some("password") => {
            let user_ok = form.username.as_deref() == Some(cfg.username.as_str());
            let pass_ok = form
                .password
                .as_deref()
                .is_some_and(|p| p.starts_with(cfg.password.as_str()));
            if !(user_ok && pass_ok) {
                return Err(OAuthError {
                    error: "invalid_grant",
                    description: "authentication failure",
                });
            }
        }
        Some("client_credentials") => {}
        _ => {
            return Err(OAuthError {
                error: "unsupported_grant_type",
                description: "grant type not supported",
            })
        }
    }
    let ttl = cfg.token_ttl_secs;
    let access_token = app
        .shared
        .write(|d| d.tokens.issue("00DL2F000000001!", ttl));
    let issued_at = kit::now_ms().to_string();
    Ok(Json(json!({
        "access_token": access_token,
        "instance_url": base,
        "id": format!("{base}/id/00DL2F000000001AAA/005L2F000000001AAA"),
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": "bDJmLW1vY2stc2lnbmF0dXJl"
    }))
    .into_response())
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, SfError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(SfError::JsonParser(
            "Cannot deserialize instance of SObject from non-object value".into(),
        )),
        Err(e) => Err(SfError::JsonParser(format!(
            "Unexpected character: {e} at [line:{}, column:{}]",
            e.line(),
            e.column()
        ))),
    }
}

fn record_url(version: &str, sobject: &str, id: &str) -> String {
    format!("/services/data/{version}/sobjects/{sobject}/{id}")
}

/// The URLs of several records, for a 300 Multiple Choices answer.
fn record_urls(version: &str, sobject: &str, ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| record_url(version, sobject, id))
        .collect()
}

fn derive_fields(t: &SObjectType, fields: &mut Map<String, Value>) {
    if t.name == "Opportunity" {
        let stage = fields
            .get("StageName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        fields.insert("IsWon".into(), json!(stage == "Closed Won"));
        fields.insert("IsClosed".into(), json!(stage.starts_with("Closed")));
    }
}

pub(crate) fn insert_record(
    d: &mut Data,
    t: &SObjectType,
    mut fields: Map<String, Value>,
) -> String {
    d.seq += 1;
    let id = format!("{}{:012}AAA", t.prefix, d.seq);
    let now = d.stamp();
    fields.insert("Id".into(), json!(id));
    fields.insert("IsDeleted".into(), json!(false));
    for f in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
        fields.insert(f.into(), json!(now));
    }
    derive_fields(t, &mut fields);
    d.records.insert(
        id.clone(),
        Record {
            sobject: t.name.to_string(),
            fields,
        },
    );
    d.index_record(t, &id);
    id
}

/// Applies changes to the record `id` (which must exist) and stamps it.
pub(crate) fn update_record(d: &mut Data, t: &SObjectType, id: &str, changes: Map<String, Value>) {
    let now = d.stamp();
    if let Some(rec) = d.records.get_mut(id) {
        for (k, v) in changes {
            rec.fields.insert(k, v);
        }
        rec.fields.insert("LastModifiedDate".into(), json!(now));
        rec.fields.insert("SystemModstamp".into(), json!(now));
        derive_fields(t, &mut rec.fields);
    }
    d.index_record(t, id);
}

pub(crate) fn missing_required(
    t: &SObjectType,
    fields: &Map<String, Value>,
) -> Result<(), SfError> {
    let missing: Vec<String> = t
        .required
        .iter()
        .filter(|f| fields.get(**f).is_none_or(|v| v.is_null() || v == ""))
        .map(|f| f.to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SfError::RequiredMissing(missing))
    }
}

async fn create(
    State(app): State<Arc<Salesforce>>,
    Path((_version, sobject)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, SfError> {
    let t = app.sobject_type(&sobject)?;
    let fields = t.check_body(parse_body(&body)?)?;
    missing_required(t, &fields)?;
    let id = app.write(|d| insert_record(d, t, fields));
    tracing::debug!(sobject = %t.name, record_id = %id, "created");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "errors": [], "success": true })),
    )
        .into_response())
}

/// A record as the API shows it: `attributes`, then the named fields (all of the
/// type's when none are named).
pub(crate) fn render_record(
    version: &str,
    t: Option<&SObjectType>,
    rec: &Record,
    only: Option<&[String]>,
) -> Value {
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({
            "type": rec.sobject,
            "url": record_url(version, &rec.sobject, rec.fields["Id"].as_str().unwrap_or(""))
        }),
    );
    match only {
        Some(names) => {
            for n in names {
                out.insert(n.clone(), rec.fields.get(n).cloned().unwrap_or(Value::Null));
            }
        }
        None => {
            let all = t.map(|t| {
                SYSTEM_FIELDS
                    .iter()
                    .chain(t.fields)
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
            });
            for n in all.unwrap_or_default() {
                out.insert(
                    n.clone(),
                    rec.fields.get(&n).cloned().unwrap_or(Value::Null),
                );
            }
            for (k, v) in &rec.fields {
                out.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    Value::Object(out)
}

#[derive(Deserialize)]
struct FieldsParam {
    fields: Option<String>,
}

pub(crate) fn field_list(
    t: &SObjectType,
    fields: Option<&str>,
) -> Result<Option<Vec<String>>, SfError> {
    let Some(fields) = fields else {
        return Ok(None);
    };
    fields
        .split(',')
        .map(|f| {
            let f = f.trim();
            t.field(f).ok_or_else(|| SfError::InvalidField {
                message: format!("No such column '{f}' on entity '{}'", t.name),
                fields: vec![f.to_string()],
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

async fn fetch(
    State(app): State<Arc<Salesforce>>,
    Path((version, sobject, id)): Path<(String, String, String)>,
    Query(q): Query<FieldsParam>,
) -> Result<Json<Value>, SfError> {
    let t = app.sobject_type(&sobject)?;
    let only = field_list(t, q.fields.as_deref())?;
    app.shared.read(|d| {
        d.records
            .get(&id)
            .filter(|r| r.sobject == t.name)
            .map(|r| Json(render_record(&version, Some(t), r, only.as_deref())))
            .ok_or(SfError::NotFound)
    })
}

async fn update(
    State(app): State<Arc<Salesforce>>,
    Path((_version, sobject, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, SfError> {
    let t = app.sobject_type(&sobject)?;
    let changes = t.check_body(parse_body(&body)?)?;
    app.write(|d| match d.records.get(&id) {
        Some(rec) if rec.sobject == t.name => {
            update_record(d, t, &id, changes);
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(SfError::NotFound),
    })
}

async fn remove(
    State(app): State<Arc<Salesforce>>,
    Path((_version, sobject, id)): Path<(String, String, String)>,
) -> Result<StatusCode, SfError> {
    let t = app.sobject_type(&sobject)?;
    app.write(|d| match d.records.get(&id) {
        Some(rec) if rec.sobject == t.name => {
            d.records.remove(&id);
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(SfError::NotFound),
    })
}

/// The Ids of the records of type `t` whose `field` holds `value`.
/// The records of type `t`. Every Id this mock hands out starts with its type's key prefix,
/// as Salesforce's do, so a type's records sit together in the Id-ordered store and a lookup
/// by field walks that type only, not the whole org.
pub(crate) fn records_of<'a>(d: &'a Data, t: &'a SObjectType) -> impl Iterator<Item = &'a Record> {
    d.records
        .range::<str, _>((
            std::ops::Bound::Included(t.prefix.as_str()),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|(id, _)| id.starts_with(t.prefix.as_str()))
        .map(|(_, r)| r)
        .filter(|r| r.sobject == t.name)
}

pub(crate) fn matching_ids(d: &Data, t: &SObjectType, field: &str, value: &str) -> Vec<String> {
    records_of(d, t)
        .filter(|r| holds(r.fields.get(field), value))
        .filter_map(|r| r.fields["Id"].as_str().map(str::to_string))
        .collect()
}

async fn fetch_by_external(
    State(app): State<Arc<Salesforce>>,
    Path((version, sobject, field, value)): Path<(String, String, String, String)>,
) -> Result<Response, SfError> {
    let t = app.sobject_type(&sobject)?;
    let field = t.upsert_key(&field)?;
    app.shared.read(|d| {
        let ids = matching_ids(d, t, &field, &value);
        match ids.as_slice() {
            [] => Err(SfError::NotFound),
            [id] => {
                Ok(Json(render_record(&version, Some(t), &d.records[id], None)).into_response())
            }
            many => Err(SfError::MultipleChoices(record_urls(
                &version, &t.name, many,
            ))),
        }
    })
}

/// Upsert by `Id` or a declared External ID field:
/// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm
async fn upsert(
    State(app): State<Arc<Salesforce>>,
    Path((version, sobject, field, value)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<Response, SfError> {
    let t = app.sobject_type(&sobject)?;
    let field = t.upsert_key(&field)?;
    let changes = t.check_body(parse_body(&body)?)?;
    // "Do not specify Id or an external ID field in the request body or an error is generated."
    if changes.contains_key(&field) {
        return Err(SfError::InvalidField {
            message: format!(
                "The external ID field {field} should not be specified in the sobject data."
            ),
            fields: vec![field],
        });
    }
    let new_style = version_number(&format!("/services/data/{version}/")).unwrap_or(0) >= 46;
    app.write(|d| {
        let ids = matching_ids(d, t, &field, &value);
        match ids.as_slice() {
            [] if field == "Id" => Err(SfError::NotFound),
            [] => {
                let mut fields = changes;
                fields.insert(field.clone(), json!(value));
                missing_required(t, &fields)?;
                let id = insert_record(d, t, fields);
                Ok((
                    StatusCode::CREATED,
                    Json(json!({ "id": id, "success": true, "errors": [], "created": true })),
                )
                    .into_response())
            }
            [id] => {
                let id = id.clone();
                update_record(d, t, &id, changes);
                if new_style {
                    Ok(
                        Json(json!({ "id": id, "success": true, "errors": [], "created": false }))
                            .into_response(),
                    )
                } else {
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
            }
            many => Err(SfError::MultipleChoices(record_urls(
                &version, &t.name, many,
            ))),
        }
    })
}

#[derive(Deserialize)]
struct UpdatedParams {
    start: Option<String>,
    end: Option<String>,
}

async fn updated(
    State(app): State<Arc<Salesforce>>,
    Path((_version, sobject)): Path<(String, String)>,
    Query(p): Query<UpdatedParams>,
) -> Result<Json<Value>, SfError> {
    let t = app.sobject_type(&sobject)?;
    let bad = |what: &str| SfError::InvalidField {
        message: format!("{what} is not a valid dateTime"),
        fields: vec![what.to_string()],
    };
    let start = p
        .start
        .as_deref()
        .and_then(parse_datetime)
        .ok_or_else(|| bad("start"))?;
    let end = p
        .end
        .as_deref()
        .and_then(parse_datetime)
        .ok_or_else(|| bad("end"))?;
    let ids: Vec<String> = app.shared.read(|d| {
        d.records
            .values()
            .filter(|r| r.sobject == t.name)
            .filter(|r| {
                r.fields
                    .get("SystemModstamp")
                    .and_then(Value::as_str)
                    .and_then(parse_datetime)
                    .is_some_and(|m| m >= start && m < end)
            })
            .filter_map(|r| r.fields["Id"].as_str().map(str::to_string))
            .collect()
    });
    Ok(Json(
        json!({ "ids": ids, "latestDateCovered": sf_datetime(end) }),
    ))
}
