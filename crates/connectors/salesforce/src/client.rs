//! Salesforce's REST API, the connector's only I/O, on the kit's plumbing: the OAuth 2.0
//! username-password or client-credentials login (a session kept until Salesforce answers
//! 401, then one fresh login and one more try), SOQL queries paged through `nextRecordsUrl`,
//! sObject Collections upserts by external id (up to 200 records a call, `allOrNone: false`),
//! reads by id and by external id, and the `Sforce-Limit-Info` header of every answer.
//!
//! Shapes, from the REST API developer guide (developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/):
//! - login: `intro_oauth_and_connected_apps.htm`; the token answer's `id` is the identity URL
//!   `…/id/<org id>/<user id>`, whose org id is the feed epoch of the source;
//! - query: `resources_query.htm`, `resources_query_more_results.htm`, and
//!   `headers_queryoptions.htm` (`Sforce-Query-Options: batchSize=200`, 200 to 2,000);
//! - collections upsert: `resources_composite_sobjects_collections_upsert.htm` (API 46.0+);
//! - errors: `errorcodes.htm` (401 session, 403 `REQUEST_LIMIT_EXCEEDED`, errors as
//!   `[{"message","errorCode","fields"}]`); limits: `headers_api_usage.htm`
//!   (`Sforce-Limit-Info: api-usage=18/5000`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use l2f_connector_kit::calls::call;
use l2f_connector_kit::http::{answer, body_json, path_segment, refused, transient, TokenSlot};
use l2f_connector_kit::ClientError;
use l2f_secrets::Secret;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tracing::{debug, warn};

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Most records one sObject Collections create, update or upsert takes.
pub const MAX_RECORDS_PER_CALL: usize = 200;
/// The oldest API version with sObject Collections upsert.
pub const MIN_API_VERSION: u32 = 46;
/// Records a query page asks for (`Sforce-Query-Options: batchSize`; Salesforce's minimum).
pub const QUERY_BATCH_SIZE: usize = 200;

const API: &str = "salesforce";

/// The integration user of the username-password flow.
#[derive(Clone)]
pub struct User {
    /// Login name.
    pub username: String,
    /// Password (with the security token appended when the org asks for one).
    pub password: Secret,
}

/// A logged-in session: the bearer token, the org's instance and its id.
#[derive(Clone)]
struct Session {
    token: String,
    instance_url: String,
    org_id: Option<String>,
}

/// The org's API allocation as the last answer's `Sforce-Limit-Info` told it.
#[derive(Debug, Default)]
pub struct ApiUsage {
    used: AtomicU64,
    max: AtomicU64,
}

impl ApiUsage {
    /// `(used, max)` requests of the rolling 24 hours; `None` before the first answer.
    pub fn get(&self) -> Option<(u64, u64)> {
        let max = self.max.load(Ordering::Relaxed);
        (max > 0).then(|| (self.used.load(Ordering::Relaxed), max))
    }

    fn record(&self, resp: &Response) {
        let Some((used, max)) = resp
            .headers()
            .get("Sforce-Limit-Info")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit_info)
        else {
            return;
        };
        self.used.store(used, Ordering::Relaxed);
        self.max.store(max, Ordering::Relaxed);
        if nearly_spent(used, max) {
            warn!(used, max, "Salesforce API allocation 90% used");
        } else {
            debug!(used, max, "Salesforce API usage");
        }
    }
}

/// Whether `used` of `max` requests is 90 % or more of the allocation (any magnitudes).
fn nearly_spent(used: u64, max: u64) -> bool {
    max > 0 && u128::from(used) * 10 >= u128::from(max) * 9
}

/// `api-usage=N/M` of a `Sforce-Limit-Info` header (other entries, such as
/// `per-app-api-usage`, are skipped).
pub fn parse_limit_info(header: &str) -> Option<(u64, u64)> {
    header
        .split(',')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "api-usage")
        .and_then(|(_, v)| {
            let (n, m) = v.split_once('/')?;
            Some((n.trim().parse().ok()?, m.trim().parse().ok()?))
        })
}

/// One page of a SOQL query.
#[derive(Debug, Clone, Default)]
pub struct QueryPage {
    /// The page's records, in the query's order.
    pub records: Vec<Value>,
    /// Whether this is the last page.
    pub done: bool,
    /// The next page's locator URL (`/services/data/vXX.X/query/01g…-200`) when not done.
    pub next_records_url: Option<String>,
    /// Records the whole query matched.
    pub total_size: u64,
}

impl QueryPage {
    fn of(v: Value) -> QueryPage {
        QueryPage {
            records: v["records"].as_array().cloned().unwrap_or_default(),
            done: v["done"].as_bool().unwrap_or(true),
            next_records_url: v["nextRecordsUrl"].as_str().map(str::to_string),
            total_size: v["totalSize"].as_u64().unwrap_or(0),
        }
    }
}

/// Salesforce REST with the OAuth username-password (or client-credentials) flow.
pub struct SalesforceClient {
    http: reqwest::Client,
    login_url: String,
    client_id: String,
    client_secret: Secret,
    user: Option<User>,
    version: String,
    session: TokenSlot<Session>,
    usage: Arc<ApiUsage>,
}

/// The org id of an identity URL (`https://login.salesforce.com/id/00D…/005…`).
fn org_of_identity(id: &str) -> Option<String> {
    let rest = id.split("/id/").nth(1)?;
    let org = rest.split('/').next()?;
    (!org.is_empty()).then(|| org.to_string())
}

impl SalesforceClient {
    /// A client logging in at `login_url` (e.g. `https://login.salesforce.com`); with a
    /// `user` the password grant, without one client credentials. API version v62.0.
    pub fn new(
        http: reqwest::Client,
        login_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
        user: Option<User>,
    ) -> Self {
        Self {
            http,
            login_url: login_url.into().trim_end_matches('/').to_string(),
            client_id: client_id.into(),
            client_secret,
            user,
            version: "v62.0".into(),
            session: TokenSlot::new(),
            usage: Arc::default(),
        }
    }

    /// The same client on another API version (`v62.0`).
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The API version it calls.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The org's API allocation as last reported.
    pub fn api_usage(&self) -> Option<(u64, u64)> {
        self.usage.get()
    }

    async fn login(&self) -> Result<(Session, Option<Duration>)> {
        let mut form = vec![
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        match &self.user {
            Some(u) => {
                form.push(("grant_type", "password"));
                form.push(("username", u.username.as_str()));
                form.push(("password", u.password.expose()));
            }
            None => form.push(("grant_type", "client_credentials")),
        }
        let resp = self
            .http
            .post(format!("{}/services/oauth2/token", self.login_url))
            .form(&form)
            .send()
            .await?;
        if let Some(e) = transient(API, &resp) {
            return Err(e);
        }
        let status = resp.status();
        let body = body_json(resp).await?;
        match (body["access_token"].as_str(), body["instance_url"].as_str()) {
            (Some(t), Some(u)) if status.is_success() => Ok((
                Session {
                    token: t.to_string(),
                    instance_url: u.trim_end_matches('/').to_string(),
                    org_id: body["id"].as_str().and_then(org_of_identity),
                },
                // Salesforce sessions end after inactivity, not at a stated time: the session
                // is kept until an answer says 401.
                None,
            )),
            // The OAuth error, never the form (which holds the secrets).
            _ => Err(ClientError::Auth(format!(
                "login refused ({status}): {} {}",
                body["error"].as_str().unwrap_or(""),
                body["error_description"].as_str().unwrap_or("")
            ))),
        }
    }

    /// The URL of `path`: a path under `/services/data/<version>`, or an absolute path the
    /// API handed out (a `nextRecordsUrl`).
    fn url(&self, instance: &str, path: &str) -> String {
        if path.starts_with("/services/") {
            format!("{instance}{path}")
        } else {
            format!("{instance}/services/data/{}{path}", self.version)
        }
    }

    /// One call with the current session; a 401 logs in again and retries once, a second
    /// 401 is [`ClientError::Auth`]. A 429/5xx is [`ClientError::Status`], another non-2xx
    /// answer [`ClientError::Api`] with Salesforce's error body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Value)> {
        let (method, path) = (&method, path);
        self.session
            .with_token(
                || self.login(),
                |s, last| async move {
                    let mut req = self
                        .http
                        .request(method.clone(), self.url(&s.instance_url, path))
                        .bearer_auth(&s.token);
                    for (k, v) in headers {
                        req = req.header(*k, *v);
                    }
                    if let Some(b) = body {
                        req = req.json(b);
                    }
                    let resp = call("salesforce", req).await?;
                    self.usage.record(&resp);
                    if resp.status() == StatusCode::UNAUTHORIZED {
                        if !last {
                            return Ok(None);
                        }
                        let v = body_json(resp).await.unwrap_or(Value::Null);
                        return Err(ClientError::Auth(format!(
                            "Salesforce refused a fresh session (401): {v}"
                        )));
                    }
                    match answer(API, resp).await? {
                        (status, json) if status.is_success() => Ok(Some((status, json))),
                        (status, json) => Err(refused(API, status, json)),
                    }
                },
            )
            .await
    }

    /// The org id of the session (logging in when there is none): the source's feed epoch.
    /// `None` when the identity service did not say.
    pub async fn org_id(&self) -> Result<Option<String>> {
        self.session
            .with_token(
                || self.login(),
                |s, _| async move { Ok(Some(s.org_id.clone())) },
            )
            .await
    }

    /// The first page of a SOQL query, asking for pages of [`QUERY_BATCH_SIZE`] records.
    pub async fn query(&self, soql: &str) -> Result<QueryPage> {
        let q = format!("/query?q={}", form_component(soql));
        let batch = format!("batchSize={QUERY_BATCH_SIZE}");
        let (_, v) = self
            .call(
                Method::GET,
                &q,
                None,
                &[("Sforce-Query-Options", batch.as_str())],
            )
            .await?;
        Ok(QueryPage::of(v))
    }

    /// The page at a `nextRecordsUrl`; an expired locator is [`ClientError::Api`] with
    /// `INVALID_QUERY_LOCATOR` (query again from a cursor).
    pub async fn query_more(&self, next_records_url: &str) -> Result<QueryPage> {
        if !next_records_url.starts_with("/services/data/") {
            return Err(ClientError::Api {
                api: API,
                status: 0,
                body: json!([{ "errorCode": "INVALID_QUERY_LOCATOR",
                               "message": format!("not a query locator URL: {next_records_url}") }]),
            });
        }
        let (_, v) = self.call(Method::GET, next_records_url, None, &[]).await?;
        Ok(QueryPage::of(v))
    }

    /// Every record of a query, following `nextRecordsUrl` to the last page.
    pub async fn query_all(&self, soql: &str) -> Result<Vec<Value>> {
        let mut page = self.query(soql).await?;
        let mut out = std::mem::take(&mut page.records);
        while let (false, Some(next)) = (page.done, page.next_records_url.take()) {
            page = self.query_more(&next).await?;
            out.append(&mut page.records);
        }
        Ok(out)
    }

    /// Upserts up to 200 records of `sobject` by the External ID field `field` in one call
    /// (`allOrNone: false`): one result per record, in order — `{"id","success":true,
    /// "created"}` or `{"success":false,"errors":[{"statusCode","message","fields"}]}`. Each
    /// record carries `attributes.type` and its `field` value; values must be distinct within
    /// the call (Salesforce fails every record sharing one with `DUPLICATE_VALUE`).
    pub async fn upsert_collection(
        &self,
        sobject: &str,
        field: &str,
        records: &[Value],
    ) -> Result<Vec<Value>> {
        if records.len() > MAX_RECORDS_PER_CALL {
            return Err(ClientError::Api {
                api: API,
                status: 0,
                body: json!([{ "errorCode": "EXCEEDED_ID_LIMIT",
                               "message": format!("{} records in one call; Salesforce takes at most {MAX_RECORDS_PER_CALL}", records.len()) }]),
            });
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({ "allOrNone": false, "records": records });
        let path = format!(
            "/composite/sobjects/{}/{}",
            path_segment(sobject),
            path_segment(field)
        );
        let (_, v) = self.call(Method::PATCH, &path, Some(&body), &[]).await?;
        match v {
            Value::Array(results) => Ok(results),
            other => Err(ClientError::Api {
                api: API,
                status: 200,
                body: json!([{ "errorCode": "UNEXPECTED_ANSWER",
                               "message": format!("collections upsert answered no result list: {other}") }]),
            }),
        }
    }

    /// Creates a record; returns its id.
    pub async fn create(&self, sobject: &str, fields: &Value) -> Result<String> {
        let path = format!("/sobjects/{}", path_segment(sobject));
        let (_, v) = self.call(Method::POST, &path, Some(fields), &[]).await?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    /// Updates fields of a record.
    pub async fn update(&self, sobject: &str, id: &str, fields: &Value) -> Result<()> {
        let path = format!("/sobjects/{}/{}", path_segment(sobject), path_segment(id));
        self.call(Method::PATCH, &path, Some(fields), &[])
            .await
            .map(|_| ())
    }

    /// Reads a record by id (every field).
    pub async fn get(&self, sobject: &str, id: &str) -> Result<Value> {
        let path = format!("/sobjects/{}/{}", path_segment(sobject), path_segment(id));
        Ok(self.call(Method::GET, &path, None, &[]).await?.1)
    }

    /// Reads a record by an External ID field; several matches are [`ClientError::Api`] 300.
    pub async fn get_by_external_id(
        &self,
        sobject: &str,
        field: &str,
        value: &str,
    ) -> Result<Value> {
        let path = format!(
            "/sobjects/{}/{}/{}",
            path_segment(sobject),
            path_segment(field),
            path_segment(value)
        );
        let (status, v) = self.call(Method::GET, &path, None, &[]).await?;
        if status == StatusCode::MULTIPLE_CHOICES {
            return Err(refused(API, status, v));
        }
        Ok(v)
    }

    /// The org's limits (`GET /limits`): a cheap read that needs a valid session and API
    /// allocation left — the probe while records wait.
    pub async fn limits(&self) -> Result<Value> {
        Ok(self.call(Method::GET, "/limits", None, &[]).await?.1)
    }
}

/// `application/x-www-form-urlencoded` encoding of one query value.
fn form_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_info_is_read_from_its_api_usage_entry() {
        assert_eq!(parse_limit_info("api-usage=18/5000"), Some((18, 5000)));
        assert_eq!(
            parse_limit_info("per-app-api-usage=1/100(appName=x), api-usage=25/15000"),
            Some((25, 15000))
        );
        assert_eq!(parse_limit_info("garbage"), None);
    }

    #[test]
    fn a_nearly_spent_allocation_is_noticed_at_any_size() {
        assert!(nearly_spent(90, 100));
        assert!(!nearly_spent(89, 100));
        assert!(!nearly_spent(5, u64::MAX / 2));
        assert!(nearly_spent(u64::MAX, u64::MAX));
        assert!(!nearly_spent(0, 0));
    }

    #[test]
    fn the_org_id_is_the_identity_urls_first_segment() {
        assert_eq!(
            org_of_identity(
                "https://login.salesforce.com/id/00D5e000000XyZAEA0/0055e000001AbCdAAK"
            )
            .as_deref(),
            Some("00D5e000000XyZAEA0")
        );
        assert_eq!(org_of_identity("https://x/oops"), None);
    }

    #[test]
    fn soql_is_form_encoded_in_the_query_string() {
        assert_eq!(
            form_component("SELECT Id FROM Lead WHERE Id > 'a&b'"),
            "SELECT+Id+FROM+Lead+WHERE+Id+%3E+%27a%26b%27"
        );
    }
}
