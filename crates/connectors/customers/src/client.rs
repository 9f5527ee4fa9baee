//! The customers app's API, the connector's only I/O: a static bearer token, JSON bodies, the
//! error shape `{"error":{"code","message","field","value"}}` kept verbatim.

use l2f_connector_kit::http::{answer, path_segment, refused, send, ClientError, Result};
use l2f_secrets::Secret;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

/// One event of the app's outbox feed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FeedEvent {
    /// Position in the feed, from 1.
    pub seq: u64,
    /// `LeadCaptured`, `OrderPlaced`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339.
    pub occurred_at: String,
    /// `customer` or `hub` (the hub's own writes).
    #[serde(default)]
    pub origin: Option<String>,
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

/// The customers app's API.
pub struct CustomersClient {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl CustomersClient {
    /// A client for the app at `base`.
    pub fn new(http: reqwest::Client, base: impl Into<String>, token: Secret) -> Self {
        CustomersClient {
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
        let (status, v) = answer("customers", send("customers", req, body).await?).await?;
        if status.is_success() {
            Ok(v)
        } else if status == StatusCode::UNAUTHORIZED {
            Err(ClientError::Auth(
                "the customers app refused the token".into(),
            ))
        } else {
            Err(refused("customers", status, v))
        }
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
            api: "customers",
            status: 200,
            body: serde_json::json!({"error": {"code": "unreadable_feed", "message": e.to_string()}, "page": v}),
        })
    }

    /// A subscription by its customers-app id or Zuora number; `None` when the app has none.
    pub async fn subscription(&self, id: &str) -> Result<Option<Value>> {
        match self
            .call(
                Method::GET,
                &format!("/api/v1/subscriptions/{}", path_segment(id)),
                None,
            )
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Mirrors a Zuora subscription into the app (the hub's write; idempotent).
    pub async fn mirror_subscription(&self, number: &str, body: &Value) -> Result<Value> {
        self.call(
            Method::PUT,
            &format!("/api/v1/hub/subscriptions/{}", path_segment(number)),
            Some(body),
        )
        .await
    }

    /// Shows a subscription's license to the customer (the hub's write; idempotent).
    pub async fn show_license(&self, subscription: &str, body: &Value) -> Result<Value> {
        self.call(
            Method::PUT,
            &format!(
                "/api/v1/subscriptions/{}/license",
                path_segment(subscription)
            ),
            Some(body),
        )
        .await
    }

    /// Creates or updates an account under the hub's id for it (the hub's write).
    pub async fn upsert_account(&self, id: &str, body: &Value) -> Result<Value> {
        self.call(
            Method::PUT,
            &format!("/api/v1/hub/accounts/{}", path_segment(id)),
            Some(body),
        )
        .await
    }

    /// Whether the app answers with this token (one cheap feed read).
    pub async fn healthcheck(&self) -> Result<()> {
        self.call(Method::GET, "/api/v1/events?after=0&limit=1", None)
            .await
            .map(|_| ())
    }
}
