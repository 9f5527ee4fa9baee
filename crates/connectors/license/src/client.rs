//! The license service's API, the connector's only I/O: a static bearer token, JSON bodies,
//! the error shape `{"error":{"code","message","field","value"}}` kept verbatim.

use l2f_connector_kit::http::{answer, path_segment, refused, send, ClientError, Result};
use l2f_secrets::Secret;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

/// One event of the service's feed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FeedEvent {
    /// Position in the feed, from 1.
    pub seq: u64,
    /// `LicenseIssued` or `LicenseHeld`.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339.
    pub occurred_at: String,
    /// The event's body.
    pub data: Value,
}

/// One page of the feed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FeedPage {
    /// The feed's epoch: new when the feed was reset.
    pub epoch: String,
    /// The events after the requested position.
    pub events: Vec<FeedEvent>,
    /// The position to resume from.
    pub next_after: u64,
    /// The newest event's position (how far the feed goes), when the app says.
    #[serde(default)]
    pub latest: Option<u64>,
}

/// The license service's API.
pub struct LicenseClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl LicenseClient {
    /// A client for the service at `base`.
    pub fn new(http: reqwest::Client, base: impl Into<String>, token: Secret) -> Self {
        LicenseClient {
            http,
            base: base.into().trim_end_matches('/').to_string(),
            token,
        }
    }

    /// One JSON call; non-2xx answers become [`ClientError::Api`] with the error body (401
    /// becomes [`ClientError::Auth`]).
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose());
        let (status, v) = answer("license", send("license", req, body).await?).await?;
        if status.is_success() {
            Ok(v)
        } else if status == StatusCode::UNAUTHORIZED {
            Err(ClientError::Auth(
                "the license service refused the token".into(),
            ))
        } else {
            Err(refused("license", status, v))
        }
    }

    fn subscription_path(id: &str) -> String {
        format!("/api/v1/subscriptions/{}", path_segment(id))
    }

    /// Registers (or updates) a subscription; answers its license.
    pub async fn register(&self, subscription_id: &str, body: &Value) -> Result<Value> {
        self.call(
            Method::PUT,
            &Self::subscription_path(subscription_id),
            Some(body),
        )
        .await
    }

    /// The subscription's terms are accepted; answers its license.
    pub async fn terms_accepted(&self, subscription_id: &str) -> Result<Value> {
        self.call(
            Method::POST,
            &format!(
                "{}/terms-accepted",
                Self::subscription_path(subscription_id)
            ),
            Some(&json!({})),
        )
        .await
    }

    /// Sets the subscription's communication profile (`Silent` holds the license).
    pub async fn set_profile(&self, subscription_id: &str, profile: &str) -> Result<Value> {
        self.call(
            Method::PUT,
            &format!(
                "{}/communication-profile",
                Self::subscription_path(subscription_id)
            ),
            Some(&json!({ "communication_profile": profile })),
        )
        .await
    }

    /// The license of a subscription; `None` when the service has not registered it.
    pub async fn license(&self, subscription_id: &str) -> Result<Option<Value>> {
        match self
            .call(
                Method::GET,
                &format!("/api/v1/licenses/{}", path_segment(subscription_id)),
                None,
            )
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every license of an account.
    pub async fn licenses_of(&self, account_id: &str) -> Result<Vec<Value>> {
        let v = self
            .call(
                Method::GET,
                &format!("/api/v1/licenses?account_id={}", path_segment(account_id)),
                None,
            )
            .await?;
        Ok(v["licenses"].as_array().cloned().unwrap_or_default())
    }

    /// The feed after position `after`, at most `limit` events.
    pub async fn events(&self, after: u64, limit: usize) -> Result<FeedPage> {
        let v = self
            .call(
                Method::GET,
                &format!("/api/v1/events?after={after}&limit={limit}"),
                None,
            )
            .await?;
        serde_json::from_value(v.clone()).map_err(|e| ClientError::Api {
            api: "license",
            status: 200,
            body: json!({"error": {"code": "unreadable_feed", "message": e.to_string()}, "page": v}),
        })
    }

    /// Whether the service answers with this token (one cheap feed read).
    pub async fn healthcheck(&self) -> Result<()> {
        self.call(Method::GET, "/api/v1/events?after=0&limit=1", None)
            .await
            .map(|_| ())
    }
}
