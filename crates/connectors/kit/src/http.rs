//! The HTTP plumbing every connector's client shares: a token slot that refreshes itself,
//! the OAuth client-credentials grant, Retry-After, error bodies kept verbatim, and the one
//! rule for failures that are not the app's answer about a record: those mean the app is
//! unavailable ([`ClientError::outage`]), so the record waits and is never dead-lettered.
//!
//! Retries belong to the consumer loop, which knows the record's budget; a client makes a
//! call at most twice — the second time only with a fresh token after the API said the old
//! one was no longer valid.

use std::future::Future;
use std::time::{Duration, Instant};

use l2f_bus::HandlerError;
use l2f_secrets::Secret;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not complete (connection, TLS, timeout, body).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The app refused the connector's credentials, even with a fresh token.
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

impl ClientError {
    /// The verdict shared by every connector for a failure that says nothing about the
    /// record — no answer, 429, 5xx, credentials refused: the app is unavailable, the record
    /// waits (`None` for an API refusal, which the connector's own verdict decides).
    pub fn outage(&self) -> Option<HandlerError> {
        match self {
            ClientError::Transport(e) if e.is_timeout() => Some(HandlerError::unavailable(
                format!("call timed out: {e}"),
                None,
            )),
            ClientError::Transport(e) => Some(HandlerError::unavailable(
                format!("call did not complete: {e}"),
                None,
            )),
            ClientError::Auth(m) => Some(HandlerError::unavailable(
                format!("the app refuses the connector's credentials ({m}); records wait until they are fixed"),
                None,
            )),
            ClientError::Status {
                api,
                status,
                retry_after,
            } => Some(HandlerError::unavailable(
                format!("{api} answered HTTP {status}"),
                retry_after.map(Duration::from_secs),
            )),
            ClientError::Api { .. } => None,
        }
    }
}

/// A cached token with its expiry, refreshed by whoever finds it missing or stale.
pub struct TokenSlot<T>(Mutex<Option<(T, Option<Instant>)>>);

impl<T: Clone> Default for TokenSlot<T> {
    fn default() -> Self {
        Self(Mutex::new(None))
    }
}

impl<T: Clone> TokenSlot<T> {
    /// An empty slot: the first call fetches.
    pub fn new() -> Self {
        Self::default()
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
    pub async fn with_token<R, F, C>(
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

/// The `Retry-After` seconds of a response, if it sent them.
pub fn retry_after(resp: &Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

/// The body as JSON; a non-JSON body becomes a JSON string, an empty one null.
pub async fn body_json(resp: Response) -> Result<Value> {
    let text = resp.text().await?;
    if text.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A 429 or 5xx as [`ClientError::Status`].
pub fn transient(api: &'static str, resp: &Response) -> Option<ClientError> {
    let s = resp.status();
    (s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()).then(|| ClientError::Status {
        api,
        status: s.as_u16(),
        retry_after: retry_after(resp),
    })
}

/// Sends `req` to `app`, with `body` as JSON if there is one (timed: [`crate::calls`]).
pub async fn send(
    app: &'static str,
    req: RequestBuilder,
    body: Option<&Value>,
) -> Result<Response> {
    let req = match body {
        Some(b) => req.json(b),
        None => req,
    };
    Ok(crate::calls::call(app, req).await?)
}

/// The status and JSON body of an answer; a transient status (429, 5xx) is an error.
pub async fn answer(api: &'static str, resp: Response) -> Result<(StatusCode, Value)> {
    if let Some(e) = transient(api, &resp) {
        return Err(e);
    }
    let status = resp.status();
    Ok((status, body_json(resp).await?))
}

/// The API's refusal, with its status and error body.
pub fn refused(api: &'static str, status: StatusCode, body: Value) -> ClientError {
    ClientError::Api {
        api,
        status: status.as_u16(),
        body,
    }
}

/// Percent-encodes a value for use as one URL path segment.
pub fn path_segment(s: &str) -> String {
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
pub struct ClientCredentials {
    /// The HTTP client (timeouts, TLS roots).
    pub http: reqwest::Client,
    /// The API's base URL, without a trailing slash.
    pub base: String,
    client_id: String,
    client_secret: Secret,
    /// The API's token call.
    token_request: fn(&ClientCredentials) -> RequestBuilder,
    token: TokenSlot<String>,
}

impl ClientCredentials {
    /// Credentials for the API at `base`; `token_request` builds its token call (see
    /// [`ClientCredentials::grant`]).
    pub fn new(
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
    pub fn grant(&self) -> [(&str, &str); 3] {
        [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ]
    }

    /// Sends the token call; its `access_token` is good for `expires_in` seconds. A 429 or
    /// 5xx of the identity service is a [`ClientError::Status`] (the app is busy), anything
    /// else without a token a refusal of the credentials.
    async fn fetch_token(&self, api: &'static str) -> Result<(String, Option<Duration>)> {
        let resp = crate::calls::call(api, (self.token_request)(self)).await?;
        if let Some(e) = transient(api, &resp) {
            return Err(e);
        }
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
    pub async fn with_token<R, C>(
        &self,
        api: &'static str,
        call: impl Fn(String, bool) -> C,
    ) -> Result<R>
    where
        C: Future<Output = Result<Option<R>>>,
    {
        self.token.with_token(|| self.fetch_token(api), call).await
    }
}

/// A reqwest client with the connector's timeouts (connect at most 10 s).
pub fn http_client(request_timeout: Duration) -> std::result::Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(request_timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_wait_and_api_refusals_are_left_to_the_connector() {
        let s = ClientError::Status {
            api: "zuora",
            status: 503,
            retry_after: Some(7),
        };
        let v = s.outage().unwrap();
        assert_eq!(v.class(), "unavailable");
        assert_eq!(v.hint(), Some(Duration::from_secs(7)));
        assert_eq!(
            ClientError::Auth("401".into()).outage().unwrap().class(),
            "unavailable"
        );
        let api = ClientError::Api {
            api: "zuora",
            status: 200,
            body: Value::Null,
        };
        assert!(api.outage().is_none());
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(path_segment("a b/c@d"), "a%20b%2Fc%40d");
        assert_eq!(path_segment("lead_0001-x.y~z"), "lead_0001-x.y~z");
    }
}
