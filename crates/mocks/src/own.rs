//! What the project's own two APIs (customers app, license service) share: one JSON
//! error shape `{"error":{"code","message","field","value"}}`, bearer-token auth with a
//! configured token, JSON body parsing that answers 400 rather than failing, and the
//! outbox feed endpoint.

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use std::sync::Arc;

use axum::Router;
use serde::Serialize;

use crate::kit::{self, FaultRule, Feed, MockApp, Shared};
use crate::store::Store;

/// The error of the customers app and the license service.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `invalid_country`.
    pub code: &'static str,
    /// Human text.
    pub message: String,
    /// The offending field, if one.
    pub field: Option<String>,
    /// The offending value, if one.
    pub value: Option<Value>,
}

impl ApiError {
    /// A 4xx/5xx error without a field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            value: None,
        }
    }

    /// 422 naming the field and value at fault.
    pub fn invalid(field: &str, value: Value, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message: message.into(),
            field: Some(field.to_string()),
            value: Some(value),
        }
    }

    /// 404 for an unknown resource.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} {id} does not exist"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut e = json!({ "code": self.code, "message": self.message });
        if let Some(f) = self.field {
            e["field"] = json!(f);
        }
        if let Some(v) = self.value {
            e["value"] = v;
        }
        (self.status, Json(json!({ "error": e }))).into_response()
    }
}

/// Renders a fault status in the shared shape.
pub fn render_status(status: StatusCode) -> Response {
    ApiError::new(
        status,
        "injected_fault",
        status.canonical_reason().unwrap_or("error"),
    )
    .into_response()
}

/// Parses a JSON body into `T`, answering 400 `invalid_json` or 422 naming the field.
pub fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?;
    serde_json::from_value(v).map_err(|e| {
        let msg = e.to_string();
        let field = msg
            .split('`')
            .nth(1)
            .map(str::to_string)
            .unwrap_or_default();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message: msg,
            field: (!field.is_empty()).then_some(field),
            value: None,
        }
    })
}

/// Checks `Authorization: Bearer <token>` against the configured token.
async fn require_token(token: String, req: Request, next: Next) -> Response {
    if kit::bearer(req.headers()).as_deref() != Some(token.as_str()) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
        .into_response();
    }
    next.run(req).await
}

/// One of our own APIs running: the bearer token clients must send, the app's data and
/// its fixed settings `C` (the customers app's catalog; nothing for the license service).
pub struct OwnApp<D, C = ()> {
    token: String,
    /// The app's state.
    pub(crate) shared: Shared<D>,
    /// Settings read once at start.
    pub(crate) settings: C,
}

impl<D: Serialize + DeserializeOwned + Default + Send + 'static, C: Send + Sync + 'static>
    OwnApp<D, C>
{
    /// Builds the app `name` with its settings, loading saved state from `store` if given.
    pub(crate) fn build(
        name: &'static str,
        token: String,
        faults: Vec<FaultRule>,
        store: Option<Arc<Store>>,
        clock: Arc<kit::Clock>,
        settings: C,
    ) -> crate::Result<Arc<Self>> {
        let shared = Shared::with_clock(name, store, faults, clock)?;
        Ok(Arc::new(Self {
            token,
            shared,
            settings,
        }))
    }
}

impl<D: Serialize + DeserializeOwned + Default + Send + 'static, C: Send + Sync + 'static> MockApp
    for OwnApp<D, C>
{
    type Data = D;
    fn shared(&self) -> &Shared<D> {
        &self.shared
    }
    fn render(&self, status: StatusCode) -> Response {
        render_status(status)
    }
}

/// Completes one of our own APIs' router: not-found in the shared shape, the bearer
/// token check (not on `/__admin`), then [`kit::finish`].
pub fn finish<D, C>(routes: Router<Arc<OwnApp<D, C>>>, app: Arc<OwnApp<D, C>>) -> Router
where
    OwnApp<D, C>: MockApp,
{
    let token = app.token.clone();
    let routes = routes
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(axum::middleware::from_fn(move |req, next| {
            require_token(token.clone(), req, next)
        }));
    kit::finish(routes, app)
}

/// `?after=<seq>&limit=<n>` of a feed request.
#[derive(Debug, Deserialize)]
pub struct FeedParams {
    /// Resume after this sequence number.
    pub after: Option<u64>,
    /// At most this many events (default 100, max 1000).
    pub limit: Option<usize>,
}

/// The feed page: `{"events":[...],"next_after":<seq>,"latest":<seq>}` — `latest` is the
/// newest event's sequence number, so a reader can tell how far behind the feed it is.
pub fn feed_page(feed: &Feed, p: &FeedParams) -> Value {
    let after = p.after.unwrap_or(0);
    let events = feed.after(after, p.limit.unwrap_or(100).min(1000));
    let next = events.last().map_or(after, |e| e.seq);
    let latest = feed.events.last().map_or(0, |e| e.seq);
    json!({ "events": events, "next_after": next, "latest": latest })
}
