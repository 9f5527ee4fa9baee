//! Zuora's REST API v1, the connector's only I/O, on the kit's plumbing: the OAuth
//! client-credentials token (refreshed when stale, and once more when Zuora answers 401),
//! `Idempotency-Key` on every POST (the event id, or a `derived_id` per step — Zuora keeps the
//! first answer 24 h), `Zuora-Track-Id` (the event id, echoed back, so Zuora's logs find the
//! hub's event), accounts, orders, subscriptions, the product catalog (SKU → product rate
//! plan, cached) and the callout notification history.
//!
//! Zuora refuses most requests with HTTP 200 `{"success":false,"reasons":[{"code","message"}]}`;
//! those, and 409/422 (idempotency), 404, come back as [`ClientError::Api`] with the body
//! verbatim, for [`crate::verdict`] to sort. A 429 is [`ClientError::Status`] with the wait
//! from `Retry-After` or else `RateLimit-Reset`; 5xx and no answer are outages.
//!
//! - OAuth: <https://developer.zuora.com/v1-api-reference/api/operation/createToken/>
//! - Idempotent requests: <https://developer.zuora.com/docs/guides/idempotent-requests/>
//! - Rate limits (RateLimit-* headers, 429): <https://developer.zuora.com/docs/guides/rate-limits>
//! - Error codes (8 digits: resource + category): <https://developer.zuora.com/docs/guides/error-codes>

use std::collections::HashMap;
use std::time::{Duration, Instant};

use l2f_connector_kit::calls;
use l2f_connector_kit::http::{body_json, refused, ClientCredentials, Result};
use l2f_connector_kit::ClientError;
use l2f_secrets::Secret;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::verdict::is_not_found;

/// The API's name in errors and metrics.
pub const API: &str = "zuora";

/// The largest page the catalog and the callout history serve.
pub const MAX_PAGE_SIZE: usize = 40;

/// Pages read at most per listing, so a runaway `nextPage` chain cannot loop forever.
const MAX_PAGES: usize = 250;

/// How often a SKU missing from the cached catalog may trigger a fresh read of it.
const CATALOG_REFRESH: Duration = Duration::from_secs(60);

/// The headers of one call that tie it to a hub event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Call<'a> {
    /// `Idempotency-Key` (POST and PATCH only; Zuora ignores it elsewhere).
    pub idempotency_key: Option<&'a str>,
    /// `Zuora-Track-Id` (≤ 64 US-ASCII characters, no colon or semicolon): the event id.
    pub track_id: Option<&'a str>,
}

impl<'a> Call<'a> {
    /// A call traced by `event_id` (a read, or a PUT).
    pub fn traced(event_id: &'a str) -> Self {
        Call {
            idempotency_key: None,
            track_id: Some(event_id),
        }
    }

    /// A write made at most once per `key`, traced by `event_id`.
    pub fn once(key: &'a str, event_id: &'a str) -> Self {
        Call {
            idempotency_key: Some(key),
            track_id: Some(event_id),
        }
    }
}

/// One product rate plan of the catalog, as the connector needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogPlan {
    /// The product's SKU.
    pub sku: String,
    /// The product rate plan id orders subscribe to.
    pub product_rate_plan_id: String,
    /// Its (first) recurring per-unit charge, for the quantity override.
    pub charge_id: Option<String>,
    /// Price per unit for the billing period, in `currency`.
    pub unit_price: f64,
    /// The price's currency.
    pub currency: String,
}

#[derive(Default)]
struct CatalogCache {
    by_sku: HashMap<String, CatalogPlan>,
    by_rate_plan: HashMap<String, CatalogPlan>,
    loaded: Option<Instant>,
}

/// Zuora REST v1 with OAuth client credentials.
pub struct ZuoraClient {
    cc: ClientCredentials,
    catalog: Mutex<CatalogCache>,
}

/// The seconds a 429 or 5xx asks to wait: `Retry-After`; for a 429 without it,
/// `RateLimit-Reset` (Zuora's header: when the spent window resets). Zuora sends the
/// `RateLimit-*` headers on every answer, so on anything but a 429 the reset says nothing
/// about when the service is back.
pub fn rate_limit_wait(resp: &Response) -> Option<u64> {
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    header("Retry-After").or_else(|| {
        (resp.status() == StatusCode::TOO_MANY_REQUESTS)
            .then(|| header("RateLimit-Reset"))
            .flatten()
    })
}

impl ZuoraClient {
    /// A client for the tenant at `base` (e.g. `https://rest.apisandbox.zuora.com`).
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
            catalog: Mutex::new(CatalogCache::default()),
        }
    }

    /// The REST base, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.cc.base
    }

    /// One call to `target` (a path under the base, or an absolute URL on the base — a
    /// `nextPage` link); `success:false` bodies and 4xx answers become [`ClientError::Api`].
    pub async fn call(
        &self,
        method: Method,
        target: &str,
        body: Option<&Value>,
        call: Call<'_>,
    ) -> Result<Value> {
        let url = if target.starts_with('/') {
            format!("{}{target}", self.cc.base)
        } else if target.starts_with(&format!("{}/", self.cc.base)) {
            target.to_string()
        } else {
            // Never send the token to another host than the configured one.
            return Err(refused(
                API,
                StatusCode::OK,
                json!({"success": false, "reasons": [{"code": 0, "message": format!("link {target} is not on {}", self.cc.base)}]}),
            ));
        };
        let (method, url) = (&method, &url);
        self.cc
            .with_token(API, |token, _last| async move {
                let mut req = self
                    .cc
                    .http
                    .request(method.clone(), url)
                    .bearer_auth(&token)
                    .header(reqwest::header::ACCEPT, "application/json");
                if let Some(k) = call.idempotency_key {
                    if matches!(*method, Method::POST | Method::PATCH) {
                        req = req.header("Idempotency-Key", k);
                    }
                }
                if let Some(t) = call.track_id {
                    req = req.header("Zuora-Track-Id", t);
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                let resp = calls::call("zuora", req).await?;
                let status = resp.status();
                if status == StatusCode::UNAUTHORIZED {
                    // The token is refused: a fresh one, once (the kit decides).
                    return Ok(None);
                }
                if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                    return Err(ClientError::Status {
                        api: API,
                        status: status.as_u16(),
                        retry_after: rate_limit_wait(&resp),
                    });
                }
                let v = body_json(resp).await?;
                if status.is_success() && v.get("success") != Some(&json!(false)) {
                    Ok(Some(v))
                } else {
                    Err(refused(API, status, v))
                }
            })
            .await
    }

    /// A read that answers `None` for Zuora's "not found" (category 40).
    async fn find(&self, path: &str, call: Call<'_>) -> Result<Option<Value>> {
        match self.call(Method::GET, path, None, call).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether Zuora grants a token with these credentials (the probe, the healthcheck).
    pub async fn healthcheck(&self) -> Result<()> {
        self.cc.with_token(API, |_, _| async { Ok(Some(())) }).await
    }

    /// A cheap authenticated read (one catalog product): whether Zuora answers again, asked
    /// while records wait for it.
    pub async fn ping(&self) -> Result<()> {
        self.call(
            Method::GET,
            "/v1/catalog/products?pageSize=1",
            None,
            Call::default(),
        )
        .await
        .map(drop)
    }

    /// `GET /v1/accounts/{key}` (number or id); `None` when there is no such account.
    pub async fn account(&self, key: &str, call: Call<'_>) -> Result<Option<Value>> {
        self.find(&format!("/v1/accounts/{}", seg(key)), call).await
    }

    /// `POST /v1/accounts`.
    pub async fn create_account(&self, account: &Value, call: Call<'_>) -> Result<Value> {
        self.call(Method::POST, "/v1/accounts", Some(account), call)
            .await
    }

    /// `GET /v1/subscriptions/accounts/{key}`: the account's subscriptions; `None` when there
    /// is no such account.
    pub async fn account_subscriptions(
        &self,
        key: &str,
        call: Call<'_>,
    ) -> Result<Option<Vec<Value>>> {
        let v = self
            .find(&format!("/v1/subscriptions/accounts/{}", seg(key)), call)
            .await?;
        Ok(v.map(|v| v["subscriptions"].as_array().cloned().unwrap_or_default()))
    }

    /// `GET /v1/subscriptions/{key}` (number or id); `None` when there is none.
    pub async fn subscription(&self, key: &str, call: Call<'_>) -> Result<Option<Value>> {
        self.find(&format!("/v1/subscriptions/{}", seg(key)), call)
            .await
    }

    /// `GET /v1/subscriptions/{key}/versions/{version}`: an earlier version; `None` when
    /// Zuora has no such version (or does not serve the call).
    pub async fn subscription_version(
        &self,
        key: &str,
        version: u64,
        call: Call<'_>,
    ) -> Result<Option<Value>> {
        let path = format!("/v1/subscriptions/{}/versions/{version}", seg(key));
        match self.find(&path, call).await {
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            other => other,
        }
    }

    /// `POST /v1/orders`, made at most once per idempotency key.
    pub async fn create_order(&self, order: &Value, call: Call<'_>) -> Result<Value> {
        let order = stamped(order);
        self.call(Method::POST, "/v1/orders", Some(&order), call)
            .await
    }

    /// `PUT /v1/subscriptions/{key}` (auto-renew, custom fields as top-level `X__c` keys).
    pub async fn update_subscription(
        &self,
        key: &str,
        body: &Value,
        call: Call<'_>,
    ) -> Result<Value> {
        let body = stamped(body);
        self.call(
            Method::PUT,
            &format!("/v1/subscriptions/{}", seg(key)),
            Some(&body),
            call,
        )
        .await
    }

    /// Every page of a listing starting at `first`, the items under `field`.
    async fn pages(&self, first: String, field: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut next = Some(first);
        for _ in 0..MAX_PAGES {
            let Some(target) = next.take() else { break };
            let v = self
                .call(Method::GET, &target, None, Call::default())
                .await?;
            out.extend(v[field].as_array().cloned().unwrap_or_default());
            next = v["nextPage"].as_str().map(str::to_string);
        }
        Ok(out)
    }

    /// Reads the whole product catalog into the cache.
    async fn load_catalog(&self, cache: &mut CatalogCache) -> Result<()> {
        let products = self
            .pages(
                format!("/v1/catalog/products?pageSize={MAX_PAGE_SIZE}"),
                "products",
            )
            .await?;
        let mut by_sku = HashMap::new();
        let mut by_rate_plan = HashMap::new();
        for p in &products {
            let Some(sku) = p["sku"].as_str() else {
                continue;
            };
            for (i, rp) in p["productRatePlans"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let Some(id) = rp["id"].as_str() else {
                    continue;
                };
                let charge = &rp["productRatePlanCharges"][0];
                let pricing = &charge["pricing"][0];
                let plan = CatalogPlan {
                    sku: sku.to_string(),
                    product_rate_plan_id: id.to_string(),
                    charge_id: charge["id"].as_str().map(str::to_string),
                    unit_price: pricing["price"].as_f64().unwrap_or(0.0),
                    currency: pricing["currency"].as_str().unwrap_or("USD").to_string(),
                };
                if i == 0 {
                    by_sku.insert(sku.to_string(), plan.clone());
                }
                by_rate_plan.insert(id.to_string(), plan);
            }
        }
        *cache = CatalogCache {
            by_sku,
            by_rate_plan,
            loaded: Some(Instant::now()),
        };
        Ok(())
    }

    async fn catalog_lookup(
        &self,
        pick: impl Fn(&CatalogCache) -> Option<CatalogPlan>,
    ) -> Result<Option<CatalogPlan>> {
        let mut cache = self.catalog.lock().await;
        if let Some(p) = pick(&cache) {
            return Ok(Some(p));
        }
        let stale = cache.loaded.is_none_or(|t| t.elapsed() >= CATALOG_REFRESH);
        if stale {
            self.load_catalog(&mut cache).await?;
        }
        Ok(pick(&cache))
    }

    /// The product rate plan sold under `sku` (the catalog is read once, and again at most
    /// once a minute when a SKU is missing); `None` when Zuora's catalog has no such product.
    pub async fn catalog_plan(&self, sku: &str) -> Result<Option<CatalogPlan>> {
        self.catalog_lookup(|c| c.by_sku.get(sku).cloned()).await
    }

    /// The catalog entry of a product rate plan id (a subscription's rate plan → its SKU).
    pub async fn catalog_rate_plan(
        &self,
        product_rate_plan_id: &str,
    ) -> Result<Option<CatalogPlan>> {
        self.catalog_lookup(|c| c.by_rate_plan.get(product_rate_plan_id).cloned())
            .await
    }

    /// `GET /v1/notification-history/callout?failedOnly=false&startTime=…`, every page: every
    /// callout notification first attempted at or after `start` (`yyyy-MM-ddTHH:mm:ss`, UTC),
    /// delivered or not. (`failedOnly` defaults to true in Zuora; a reconciling read needs all.)
    /// <https://developer.zuora.com/v1-api-reference/api/operation/GET_CalloutHistory/>
    pub async fn callout_history(&self, start: &str) -> Result<Vec<Value>> {
        self.pages(
            format!(
                "/v1/notification-history/callout?failedOnly=false&pageSize={MAX_PAGE_SIZE}&startTime={}",
                seg(start)
            ),
            "calloutHistories",
        )
        .await
    }
}

fn seg(s: &str) -> String {
    l2f_connector_kit::http::path_segment(s)
}

/// A write's body with the current span's `traceparent` beside its causing event, when spans
/// are exported (see [`crate::mapping::with_traceparent`]).
fn stamped(body: &Value) -> std::borrow::Cow<'_, Value> {
    match l2f_bus::trace::current() {
        Some(tp) => {
            std::borrow::Cow::Owned(crate::mapping::with_traceparent(body, &tp.to_string()))
        }
        None => std::borrow::Cow::Borrowed(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)]) -> Response {
        let mut b = axum::http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        Response::from(b.body(String::new()).unwrap())
    }

    #[test]
    fn a_429_waits_for_the_rate_limit_reset_but_a_503_only_for_retry_after() {
        let limits = [
            ("RateLimit-Limit", "60000"),
            ("RateLimit-Remaining", "0"),
            ("RateLimit-Reset", "25"),
        ];
        assert_eq!(rate_limit_wait(&answer(429, &limits)), Some(25));
        assert_eq!(
            rate_limit_wait(&answer(429, &[("Retry-After", "3"), limits[2]])),
            Some(3)
        );
        // Zuora sends RateLimit-* on every answer: a 503 is not a spent window.
        assert_eq!(rate_limit_wait(&answer(503, &limits)), None);
        assert_eq!(
            rate_limit_wait(&answer(503, &[("Retry-After", "7")])),
            Some(7)
        );
    }
}
