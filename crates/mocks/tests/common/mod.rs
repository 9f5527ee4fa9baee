//! Helpers for driving a mock's router without sockets.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// What a test sees of a response.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// Sends one request to a router.
pub async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = router
        .clone()
        .oneshot(req.body(body.into()).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Sends JSON with a bearer token.
pub async fn json(router: &Router, method: Method, uri: &str, token: &str, body: &Value) -> Reply {
    let auth = format!("Bearer {token}");
    send(
        router,
        method,
        uri,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
    .await
}

/// GET with a bearer token.
pub async fn get(router: &Router, uri: &str, token: &str) -> Reply {
    let auth = format!("Bearer {token}");
    send(
        router,
        Method::GET,
        uri,
        &[("authorization", &auth)],
        Body::empty(),
    )
    .await
}

/// A form-encoded POST without auth (token endpoints).
pub async fn form(router: &Router, uri: &str, pairs: &[(&str, &str)]) -> Reply {
    let body = serde_urlencoded::to_string(pairs).expect("form");
    send(
        router,
        Method::POST,
        uri,
        &[("content-type", "application/x-www-form-urlencoded")],
        body,
    )
    .await
}

/// Sends a body as it is (no content type) with a bearer token: for bodies that are
/// not what the route expects.
pub async fn raw(
    router: &Router,
    method: Method,
    uri: &str,
    token: &str,
    body: impl Into<Body>,
) -> Reply {
    let auth = format!("Bearer {token}");
    send(router, method, uri, &[("authorization", &auth)], body).await
}

/// The `access_token` a form-encoded token endpoint grants; the grant must succeed.
pub async fn form_token(router: &Router, uri: &str, pairs: &[(&str, &str)]) -> String {
    let reply = form(router, uri, pairs).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// A Zuora OAuth token for `cfg`'s client credentials.
pub async fn zuora_token(router: &Router, cfg: &l2f_mocks::zuora::Config) -> String {
    form_token(
        router,
        "/oauth/token",
        &[
            ("client_id", &cfg.client_id),
            ("client_secret", &cfg.client_secret),
            ("grant_type", "client_credentials"),
        ],
    )
    .await
}

/// The event types of a feed page (`{"events":[{"type":...},...]}`), in order.
pub fn kinds(feed: &Value) -> Vec<String> {
    feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A Salesforce access token by the password grant with the default credentials.
pub async fn salesforce_token(router: &Router) -> String {
    let c = l2f_mocks::salesforce::Config::default();
    form_token(
        router,
        "/services/oauth2/token",
        &[
            ("grant_type", "password"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("username", &c.username),
            ("password", &c.password),
        ],
    )
    .await
}
