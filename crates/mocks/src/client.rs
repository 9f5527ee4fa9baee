//! A reqwest client per app, for the connectors (and the tests) to reuse: each fetches its
//! token, reuses it until shortly before it expires, and on the API's "token invalid or
//! expired" answer (Salesforce 401, Zuora 401, Marketo 601/602) fetches a new one and
//! retries the call once. Secrets are kept in [`Secret`], which never prints.
//!
//! The clients speak the real APIs; pointed at production with real credentials they
//! behave the same. Retries for transient failures (429, 5xx) belong to the caller, which
//! knows its retry budget; these clients surface them as [`ClientError::Status`] with the
//! `Retry-After` they were given.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Mutex;

/// A credential that prints as `***` (shared with the rest of l2f).
pub use l2f_secrets::Secret;

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not complete (connection, TLS, timeout, body).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// Authentication failed even with a fresh token.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The API refused the request (its own error body, verbatim).
    #[error("{api} refused the request ({status}): {body}")]
    Api {
        /// Which API.
        api: &'static str,
        /// HTTP status (Zuora and Marketo refuse with 200).
        status: u16,
        /// The error body.
        body: Value,
    },
    /// A transient HTTP status (429, 5xx), with the Retry-After seconds if given.
    #[error("{api} answered {status}")]
    Status {
        /// Which API.
        api: &'static str,
        /// The status.
        status: u16,
        /// Seconds the server asked to wait.
        retry_after: Option<u64>,
    },
}

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A cached token with its expiry, refreshed by whoever finds it missing or stale.
struct TokenSlot<T>(Mutex<Option<(T, Option<Instant>)>>);

impl<T: Clone> TokenSlot<T> {
    fn new() -> Self {
        Self(Mutex::new(None))
    }

    async fn get<F, Fut>(&self, fetch: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, Option<Duration>)>>,
    {
        let mut slot = self.0.lock().await;
        if let Some((t, exp)) = slot.as_ref() {
            let fresh = exp.is_none_or(|e| Instant::now() + Duration::from_secs(30) < e);
            if fresh {
                return Ok(t.clone());
            }
        }
        let (t, ttl) = fetch().await?;
        *slot = Some((t.clone(), ttl.map(|d| Instant::now() + d)));
        Ok(t)
    }

    async fn invalidate(&self) {
        *self.0.lock().await = None;
    }

    /// Runs `call` with the token, fetched by `fetch` when missing or stale. When `call`
    /// finds the token refused (answers `None`), the token is dropped and `call` runs
    /// once more with a fresh one, told it is the last try (`true`) so that it answers a
    /// refusal itself.
    async fn with_token<R, F, C>(
        &self,
        fetch: impl Fn() -> F,
        call: impl Fn(T, bool) -> C,
    ) -> Result<R>
    where
        F: Future<Output = Result<(T, Option<Duration>)>>,
        C: Future<Output = Result<Option<R>>>,
    {
        for last in [false, true] {
            let token = self.get(&fetch).await?;
            if let Some(r) = call(token, last).await? {
                return Ok(r);
            }
            self.invalidate().await;
        }
        Err(ClientError::Auth("token refused after a fresh one".into()))
    }
}

fn retry_after(resp: &Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

async fn body_json(resp: Response) -> Result<Value> {
    let text = resp.text().await?;
    if text.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn transient(api: &'static str, resp: &Response) -> Option<ClientError> {
    let s = resp.status();
    (s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()).then(|| ClientError::Status {
        api,
        status: s.as_u16(),
        retry_after: retry_after(resp),
    })
}

/// Sends `req`, with `body` as JSON if there is one.
async fn send(req: RequestBuilder, body: Option<&Value>) -> Result<Response> {
    let req = match body {
        Some(b) => req.json(b),
        None => req,
    };
    Ok(req.send().await?)
}

/// The status and JSON body of an answer; a transient status (429, 5xx) is an error.
async fn answer(api: &'static str, resp: Response) -> Result<(StatusCode, Value)> {
    if let Some(e) = transient(api, &resp) {
        return Err(e);
    }
    let status = resp.status();
    Ok((status, body_json(resp).await?))
}

/// The API's refusal, with its status and error body.
fn refused(api: &'static str, status: StatusCode, body: Value) -> ClientError {
    ClientError::Api {
        api,
        status: status.as_u16(),
        body,
    }
}

/// Salesforce REST with the OAuth username-password (or client-credentials) flow.
pub struct SalesforceClient {
    http: reqwest::Client,
    login_url: String,
    client_id: String,
    client_secret: Secret,
    user: Option<(String, Secret)>,
    version: String,
    /// (access token, instance URL)
    session: TokenSlot<(String, String)>,
}

/// How an upsert ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    /// A new record with this id.
    Created(String),
    /// An existing record was updated.
    Updated,
}

impl SalesforceClient {
    /// A client logging in at `login_url` (e.g. `https://login.salesforce.com`); `user` is
    /// (username, password) for the password grant, none for client credentials.
    pub fn new(
        http: reqwest::Client,
        login_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
        user: Option<(String, Secret)>,
    ) -> Self {
        Self {
            http,
            login_url: login_url.into().trim_end_matches('/').to_string(),
            client_id: client_id.into(),
            client_secret,
            user,
            version: "v62.0".into(),
            session: TokenSlot::new(),
        }
    }

    async fn login(&self) -> Result<((String, String), Option<Duration>)> {
        let mut form = vec![
            ("client_id", self.client_id.clone()),
            ("client_secret", self.client_secret.expose().to_string()),
        ];
        match &self.user {
            Some((u, p)) => {
                form.push(("grant_type", "password".into()));
                form.push(("username", u.clone()));
                form.push(("password", p.expose().to_string()));
            }
            None => form.push(("grant_type", "client_credentials".into())),
        }
        let resp = self
            .http
            .post(format!("{}/services/oauth2/token", self.login_url))
            .form(&form)
            .send()
            .await?;
        let status = resp.status();
        let body = body_json(resp).await?;
        match (body["access_token"].as_str(), body["instance_url"].as_str()) {
            (Some(t), Some(u)) if status.is_success() => Ok(((t.to_string(), u.to_string()), None)),
            _ => Err(ClientError::Auth(format!("{status}: {}", body["error"]))),
        }
    }

    /// One call with the current session; a 401 refreshes the session and retries once.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let method = &method;
        self.session
            .with_token(
                || self.login(),
                |(token, instance), last| async move {
                    let url = format!("{instance}/services/data/{}{path}", self.version);
                    let req = self.http.request(method.clone(), url).bearer_auth(&token);
                    let resp = send(req, body).await?;
                    if resp.status() == StatusCode::UNAUTHORIZED && !last {
                        return Ok(None);
                    }
                    match answer("salesforce", resp).await? {
                        (status, json) if status.is_success() => Ok(Some((status, json))),
                        (status, json) => Err(refused("salesforce", status, json)),
                    }
                },
            )
            .await
    }

    /// Creates a record; returns its id.
    pub async fn create(&self, sobject: &str, fields: &Value) -> Result<String> {
        let (_, v) = self
            .call(Method::POST, &format!("/sobjects/{sobject}"), Some(fields))
            .await?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    /// Reads a record.
    pub async fn get(&self, sobject: &str, id: &str) -> Result<Value> {
        Ok(self
            .call(Method::GET, &format!("/sobjects/{sobject}/{id}"), None)
            .await?
            .1)
    }

    /// Updates fields of a record.
    pub async fn update(&self, sobject: &str, id: &str, fields: &Value) -> Result<()> {
        self.call(
            Method::PATCH,
            &format!("/sobjects/{sobject}/{id}"),
            Some(fields),
        )
        .await
        .map(|_| ())
    }

    /// Upserts by external id; several matches come back as [`ClientError::Api`] with 300.
    pub async fn upsert(
        &self,
        sobject: &str,
        field: &str,
        value: &str,
        fields: &Value,
    ) -> Result<Upserted> {
        let value = utf8_path_segment(value);
        let (status, v) = self
            .call(
                Method::PATCH,
                &format!("/sobjects/{sobject}/{field}/{value}"),
                Some(fields),
            )
            .await?;
        if status == StatusCode::MULTIPLE_CHOICES {
            return Err(refused("salesforce", status, v));
        }
        match (status, v["created"].as_bool()) {
            (StatusCode::CREATED, _) | (_, Some(true)) => Ok(Upserted::Created(
                v["id"].as_str().unwrap_or_default().to_string(),
            )),
            _ => Ok(Upserted::Updated),
        }
    }

    /// Runs a SOQL query; returns its records.
    pub async fn query(&self, soql: &str) -> Result<Vec<Value>> {
        let q = serde_urlencoded::to_string([("q", soql)]).unwrap_or_default();
        let (_, v) = self.call(Method::GET, &format!("/query?{q}"), None).await?;
        Ok(v["records"].as_array().cloned().unwrap_or_default())
    }
}

/// Percent-encodes a value for use as one path segment.
fn utf8_path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An API's OAuth client credentials and the token they earned, refreshed when stale.
struct ClientCredentials {
    http: reqwest::Client,
    base: String,
    client_id: String,
    client_secret: Secret,
    /// The API's token call.
    token_request: fn(&ClientCredentials) -> RequestBuilder,
    token: TokenSlot<String>,
}

impl ClientCredentials {
    fn new(
        http: reqwest::Client,
        base: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
        token_request: fn(&ClientCredentials) -> RequestBuilder,
    ) -> Self {
        Self {
            http,
            base: base.into().trim_end_matches('/').to_string(),
            client_id: client_id.into(),
            client_secret,
            token_request,
            token: TokenSlot::new(),
        }
    }

    /// The grant's form fields.
    fn grant(&self) -> [(&str, &str); 3] {
        [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ]
    }

    /// Sends the token call; its `access_token` is good for `expires_in` seconds.
    async fn fetch_token(&self) -> Result<(String, Option<Duration>)> {
        let resp = (self.token_request)(self).send().await?;
        let status = resp.status();
        let v = body_json(resp).await?;
        match v["access_token"].as_str() {
            Some(t) if status.is_success() => Ok((
                t.to_string(),
                v["expires_in"].as_u64().map(Duration::from_secs),
            )),
            _ => Err(ClientError::Auth(format!("{status}: {v}"))),
        }
    }

    /// Runs `call` with the current token; see [`TokenSlot::with_token`].
    async fn with_token<R, C>(&self, call: impl Fn(String, bool) -> C) -> Result<R>
    where
        C: Future<Output = Result<Option<R>>>,
    {
        self.token.with_token(|| self.fetch_token(), call).await
    }
}

/// Zuora REST v1 with OAuth client credentials.
pub struct ZuoraClient {
    cc: ClientCredentials,
}

impl ZuoraClient {
    /// A client for the tenant at `base` (e.g. `https://rest.zuora.com`).
    pub fn new(
        http: reqwest::Client,
        base: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Self {
        Self {
            cc: ClientCredentials::new(http, base, client_id, client_secret, |cc| {
                cc.http
                    .post(format!("{}/oauth/token", cc.base))
                    .form(&cc.grant())
            }),
        }
    }

    /// One call; `success:false` bodies become [`ClientError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value> {
        let method = &method;
        self.cc
            .with_token(|token, last| async move {
                let mut req: RequestBuilder = self
                    .cc
                    .http
                    .request(method.clone(), format!("{}{path}", self.cc.base))
                    .bearer_auth(&token);
                if let Some(k) = idempotency_key {
                    req = req.header("Idempotency-Key", k);
                }
                let resp = send(req, body).await?;
                if resp.status() == StatusCode::UNAUTHORIZED && !last {
                    return Ok(None);
                }
                match answer("zuora", resp).await? {
                    (status, v) if status.is_success() && v["success"] != json!(false) => {
                        Ok(Some(v))
                    }
                    (status, v) => Err(refused("zuora", status, v)),
                }
            })
            .await
    }

    /// `POST /v1/accounts`.
    pub async fn create_account(&self, account: &Value) -> Result<Value> {
        self.call(Method::POST, "/v1/accounts", Some(account), None)
            .await
    }

    /// `POST /v1/orders`, with an idempotency key (the event id) so a redelivery creates nothing.
    pub async fn create_order(&self, order: &Value, idempotency_key: &str) -> Result<Value> {
        self.call(
            Method::POST,
            "/v1/orders",
            Some(order),
            Some(idempotency_key),
        )
        .await
    }

    /// `GET /v1/subscriptions/{key}`.
    pub async fn subscription(&self, key: &str) -> Result<Value> {
        self.call(Method::GET, &format!("/v1/subscriptions/{key}"), None, None)
            .await
    }
}

/// Marketo REST with the identity service's client credentials.
pub struct MarketoClient {
    cc: ClientCredentials,
}

impl MarketoClient {
    /// A client for the instance at `base` (e.g. `https://123-ABC-456.mktorest.com`).
    pub fn new(
        http: reqwest::Client,
        base: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Self {
        Self {
            cc: ClientCredentials::new(http, base, client_id, client_secret, |cc| {
                cc.http
                    .get(format!("{}/identity/oauth/token", cc.base))
                    .query(&cc.grant())
            }),
        }
    }

    /// Pushes up to 300 leads (`createOrUpdate` by `lookup_field`); answers the per-record
    /// results. 601/602 refresh the token and retry once; other API errors come back as
    /// [`ClientError::Api`] (606/615 included, for the caller's backoff).
    pub async fn push_leads(&self, leads: &[Value], lookup_field: &str) -> Result<Vec<Value>> {
        let body =
            json!({ "action": "createOrUpdate", "lookupField": lookup_field, "input": leads });
        let body = &body;
        self.cc
            .with_token(|token, last| async move {
                let resp = self
                    .cc
                    .http
                    .post(format!("{}/rest/v1/leads.json", self.cc.base))
                    .bearer_auth(&token)
                    .json(body)
                    .send()
                    .await?;
                let (status, v) = answer("marketo", resp).await?;
                if v["success"] == json!(true) {
                    return Ok(Some(v["result"].as_array().cloned().unwrap_or_default()));
                }
                let code = v["errors"][0]["code"].as_str().unwrap_or("");
                if (code == "601" || code == "602") && !last {
                    return Ok(None);
                }
                Err(refused("marketo", status, v))
            })
            .await
    }
}

/// Mailgun's messages API (basic auth `api:<key>`).
pub struct MailClient {
    http: reqwest::Client,
    base: String,
    domain: String,
    key: Secret,
}

impl MailClient {
    /// A client sending from `domain` through `base` (e.g. `https://api.mailgun.net`).
    pub fn new(
        http: reqwest::Client,
        base: impl Into<String>,
        domain: impl Into<String>,
        key: Secret,
    ) -> Self {
        Self {
            http,
            base: base.into().trim_end_matches('/').to_string(),
            domain: domain.into(),
            key,
        }
    }

    /// Sends a text message; returns Mailgun's message id.
    pub async fn send(&self, from: &str, to: &[&str], subject: &str, text: &str) -> Result<String> {
        let mut form: Vec<(&str, &str)> =
            vec![("from", from), ("subject", subject), ("text", text)];
        form.extend(to.iter().map(|t| ("to", *t)));
        let resp = self
            .http
            .post(format!("{}/v3/{}/messages", self.base, self.domain))
            .basic_auth("api", Some(self.key.expose()))
            .form(&form)
            .send()
            .await?;
        let (status, v) = answer("mail", resp).await?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Auth("mail key refused".into()));
        }
        match v["id"].as_str() {
            Some(id) if status.is_success() => Ok(id.to_string()),
            _ => Err(refused("mail", status, v)),
        }
    }
}

/// The customers app and the license service: JSON with a static bearer token.
pub struct OwnApiClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
    api: &'static str,
}

impl OwnApiClient {
    /// A client for one of our own APIs (`api` names it in errors).
    pub fn new(
        http: reqwest::Client,
        api: &'static str,
        base: impl Into<String>,
        token: Secret,
    ) -> Self {
        Self {
            http,
            base: base.into().trim_end_matches('/').to_string(),
            token,
            api,
        }
    }

    /// One JSON call; non-2xx answers become [`ClientError::Api`] with the error body.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose());
        let resp = send(req, body).await?;
        let (status, v) = answer(self.api, resp).await?;
        if status.is_success() {
            Ok(v)
        } else if status == StatusCode::UNAUTHORIZED {
            Err(ClientError::Auth(format!("{} token refused", self.api)))
        } else {
            Err(refused(self.api, status, v))
        }
    }

    /// The outbox feed after `after`: (events, the `after` to resume from).
    pub async fn events(&self, after: u64) -> Result<(Vec<Value>, u64)> {
        let v = self
            .call(Method::GET, &format!("/api/v1/events?after={after}"), None)
            .await?;
        Ok((
            v["events"].as_array().cloned().unwrap_or_default(),
            v["next_after"].as_u64().unwrap_or(after),
        ))
    }
}
